import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from classifier.ml.dataset import DatasetError
from classifier.services import ClassifierError
from classifier.services.retraining import (
    PromotionRefused,
    promote,
    request_training,
    train_in_process,
)


class Command(BaseCommand):
    help = (
        "Train a new model version on the training images (or --data DIR), register it as "
        "a candidate, measure it and the active version on the evaluation set, and print "
        "its figures. --queue sends the training to the training queue's worker instead."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--data", type=Path, help="Train on this folder-per-class directory instead."
        )
        parser.add_argument(
            "--activate", action="store_true", help="Make the new version the active one."
        )
        parser.add_argument("--epochs", type=int, help="Epochs of the head's training.")
        parser.add_argument(
            "--size", type=int, help="The backbone's input size in pixels (default 240)."
        )
        parser.add_argument(
            "--hidden", type=int, help="Width of the head's hidden layer; 0: a linear head."
        )
        parser.add_argument("--seed", type=int, help="Random seed (default 1234).")
        parser.add_argument(
            "--without-shipped",
            action="store_true",
            help="Train on this database's photos alone, without the shipped photos' features.",
        )
        parser.add_argument("--json", action="store_true", help="Print the metrics as JSON.")
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Send the training (default recipe) to the training queue and return.",
        )

    def handle(self, *args, **options):
        if options["queue"]:
            self._enqueue(options)
            return
        from classifier.ml.progress import EpochProgressBar

        config = _config(options)
        if options["data"] is not None and not options["data"].is_dir():
            raise CommandError(f"{options['data']} is not a directory")
        try:
            version = train_in_process(
                data_dir=options["data"],
                config=config,
                callbacks=[EpochProgressBar(self.stderr)],
                with_shipped=not options["without_shipped"],
            )
        except (DatasetError, ClassifierError, ValueError) as error:
            raise CommandError(str(error)) from error
        if options["activate"] and version.status == version.Status.CANDIDATE:
            try:
                promote(version, None, note="manage.py train --activate")
            except PromotionRefused as refusal:
                self._print(version, options["json"])
                raise CommandError(
                    f"v{version.number} stays a candidate. {refusal} "
                    f"(manage.py promote {version.number} --reason ...)"
                ) from refusal
            version.refresh_from_db()
        self._print(version, options["json"])

    def _enqueue(self, options) -> None:
        chosen = [f"--{name}" for name in RECIPE_OPTIONS if options[name] not in (None, False)]
        if chosen:
            raise CommandError(f"--queue trains the default recipe; drop {', '.join(chosen)}")
        try:
            version = request_training(None, with_shipped=not options["without_shipped"])
        except ClassifierError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            self.style.SUCCESS(
                f"v{version.number} sent to the {settings.CLASSIFIER_TRAINING_QUEUE!r} queue; "
                "the model registry in the admin shows its progress."
            )
        )

    def _print(self, version, as_json: bool) -> None:
        m = version.metrics
        if as_json:
            self.stdout.write(
                json.dumps({"version": version.number, "evaluation": version.evaluation, **m})
            )
            return
        self.stdout.write(
            f"Model v{version.number} ({version.get_status_display().lower()}), "
            f"classes {', '.join(version.classes)}, trained on {m['train_size']} images "
            f"in {m['training_seconds']:.0f}s ({m['epochs_run']} epochs)."
        )
        self.stdout.write(
            f"Validation ({m['n']} images): accuracy {m['accuracy']:.2%}; at threshold "
            f"{version.threshold:.4f} the model decides {m['coverage_at_threshold']:.1%} "
            f"alone with {m['error_at_threshold']:.2%} errors (target {m['target_risk']:.1%})."
        )
        for name, scores in m["per_class"].items():
            self.stdout.write(
                f"  {name}: precision {scores['precision']:.3f} recall {scores['recall']:.3f} "
                f"F1 {scores['f1']:.3f} (n={scores['support']})"
            )
        self._print_evaluation(version)
        self.stdout.write(self.style.SUCCESS(f"Registered model v{version.number}."))

    def _print_evaluation(self, version) -> None:
        e = version.evaluation
        if not e.get("n"):
            self.stdout.write("Evaluation set: no photos of these classes yet.")
            return
        self.stdout.write(
            f"Evaluation set ({e['n']} held-out images): accuracy {e['accuracy']:.2%}; "
            f"decides {e['coverage_at_threshold']:.1%} alone with "
            f"{e['error_at_threshold']:.2%} errors."
        )
        if "auto_promotion" in e:
            self.stdout.write(f"Auto-promotion: {e['auto_promotion']}")


RECIPE_OPTIONS = ("data", "activate", "epochs", "size", "hidden", "seed")


def _config(options):
    from dataclasses import replace

    from classifier.ml.train import TrainingConfig

    config = TrainingConfig(target_risk=settings.CLASSIFIER_TARGET_RISK)
    if options["size"] is not None:
        if options["size"] < 32:
            raise CommandError("--size must be at least 32 pixels")
        config = replace(config, input_size=options["size"])
    if options["hidden"] is not None:
        if options["hidden"] < 0:
            raise CommandError("--hidden must be 0 (a linear head) or more")
        config = replace(config, head=replace(config.head, hidden=options["hidden"]))
    if options["epochs"] is not None:
        if options["epochs"] < 1:
            raise CommandError("--epochs must be at least 1")
        config = replace(config, epochs=options["epochs"])
    if options["seed"] is not None:
        config = replace(config, seed=options["seed"])
    return config
