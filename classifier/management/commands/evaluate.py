import json
from pathlib import Path

from django.core.management.base import CommandError

from classifier.management import ModelVersionCommand
from classifier.ml.dataset import DatasetError
from classifier.services import ClassifierError, evaluate_version, resolve_version


class Command(ModelVersionCommand):
    help = (
        "Evaluate a model version on a folder-per-class directory: accuracy, per-class "
        "figures, confusion matrix, coverage and error at the version's threshold."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("directory", type=Path)
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="Print one JSON object."
        )

    def handle(self, *args, directory: Path, version: int | None, as_json: bool, **options):
        try:
            model_version = resolve_version(version)
            report = evaluate_version(model_version, directory)
        except (DatasetError, ClassifierError) as error:
            raise CommandError(str(error)) from error
        if as_json:
            self.stdout.write(json.dumps(report))
            return
        for path, reason in report["unreadable"]:
            self.stderr.write(f"skipped {path}: {reason}")
        self._print(model_version, report)

    def _print(self, version, report: dict) -> None:
        classes = version.classes
        self.stdout.write(
            f"Model v{version.number} on {report['n']} images: accuracy {report['accuracy']:.2%}"
        )
        for name, scores in report["per_class"].items():
            self.stdout.write(
                f"  {name:<16} precision {scores['precision']:.3f}  recall "
                f"{scores['recall']:.3f}  F1 {scores['f1']:.3f}  n={scores['support']}"
            )
        self.stdout.write("Confusion matrix (rows: true, columns: predicted)")
        width = max(8, *(len(c) for c in classes)) + 2
        self.stdout.write(" " * width + "".join(f"{c:>{width}}" for c in classes))
        for name, row in zip(classes, report["confusion_matrix"], strict=True):
            self.stdout.write(f"{name:<{width}}" + "".join(f"{v:>{width}}" for v in row))
        self.stdout.write(
            f"At threshold {version.threshold or 1.0:.4f}: decides "
            f"{report['coverage_at_threshold']:.1%} alone, with "
            f"{report['error_at_threshold']:.2%} errors."
        )
