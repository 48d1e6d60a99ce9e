import json
from pathlib import Path

from django.core.management.base import CommandError

from ads.models import Category
from ads.verdicts import is_confident
from classifier.management import ModelVersionCommand
from classifier.ml.preprocess import ImageError
from classifier.models import top_categories
from classifier.services import ClassifierError, classify_images, resolve_version


class Command(ModelVersionCommand):
    help = "Classify image files with the active model (or --version N)."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--category", help="Category slug the photos were posted under.")
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="One JSON object per file."
        )

    def handle(self, *args, files, category, version, as_json, **options):
        if category is not None and not Category.objects.filter(slug=category).exists():
            known = ", ".join(Category.objects.values_list("slug", flat=True))
            raise CommandError(f"unknown category {category!r} (known: {known or 'none'})")
        try:
            model_version = resolve_version(version)
        except ClassifierError as error:
            raise CommandError(str(error)) from error
        failures = 0
        for path in files:
            try:
                line = self._classify(path, category, model_version, as_json)
            except (OSError, ImageError, ClassifierError) as error:
                failures += 1
                self.stderr.write(f"{path}: {_reason(error)}")
                continue
            self.stdout.write(line)
        if failures:
            raise CommandError(f"{failures} of {len(files)} files could not be classified")

    def _classify(self, path: Path, category, version, as_json: bool) -> str:
        result = classify_images([path.read_bytes()], version)[0]
        none_of_these = bool(result.none_of_these)
        shown = None if none_of_these else result.category
        matched = None if category is None else shown == category
        # Would decide without a moderator: sure enough, and of one of the categories.
        confident = is_confident(result.confidence, version.threshold) and not none_of_these
        if as_json:
            return json.dumps(
                {
                    "file": str(path),
                    "class": shown,
                    "confidence": round(result.confidence, 4),
                    "categories_matched": matched,
                    "confident": confident,
                    "decided_automatically": confident,  # the earlier name, kept for scripts
                    "none_of_these": none_of_these,
                    "model_version": version.number,
                    # Every class of the version, in its order: the runners-up among N.
                    "probabilities": {c: round(p, 4) for c, p in result.probabilities.items()},
                }
            )
        if none_of_these:
            return (
                f"{path}: none of the categories (the likeliest, {result.category}, "
                f"{result.confidence:.1%})"
            )
        text = f"{path}: {result.category} ({result.confidence:.1%})"
        if matched is not None:
            text += " matches" if matched else f" does not match {category}"
        runners_up = top_categories(result.probabilities)[1:]
        if runners_up:
            text += "; then " + ", ".join(f"{c} ({p:.1%})" for c, p in runners_up)
        return text


def _reason(error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, IsADirectoryError):
        return "is a directory"
    return str(error)
