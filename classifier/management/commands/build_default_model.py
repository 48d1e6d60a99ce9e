import json
from dataclasses import replace
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from classifier.bootstrap import DEFAULT_MODEL_DIR
from classifier.ml.dataset import DatasetError
from classifier.models import photo_keys
from classifier.services import default_training_config, folder_set, shipped, train_and_package
from classifier.services.backbones import convert_backbone


class Command(BaseCommand):
    help = (
        "Build the model avito-mod ships from a folder-per-class dataset and write it to "
        "classifier/default_model/ (backbone.tflite: the int8 backbone; heads.npz: the heads "
        "and the none-of-these detector; features.npz: the backbone features of every photo, "
        "which retrains and evaluations use; manifest.json). The photos an import of the same "
        "folder puts in the evaluation subset are left out of training, so the registry "
        "compares the shipped model fairly."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR)
        parser.add_argument("--epochs", type=int, help="Override the default recipe's epochs.")
        parser.add_argument(
            "--size", type=int, help="Override the default recipe's input size (tests: 32)."
        )

    def handle(
        self, *args, directory: Path, out: Path, epochs: int | None, size: int | None, **options
    ):
        from classifier.ml.progress import EpochProgressBar

        config = default_training_config()
        if epochs is not None:
            config = replace(config, epochs=epochs)
        if size is not None:
            config = replace(config, input_size=size)
        try:
            every = folder_set(directory, config.input_size)
        except DatasetError as error:
            raise CommandError(str(error)) from error
        data = every.select(~every.held_out)
        for path, reason in data.unreadable:
            self.stderr.write(f"skipped {path}: {reason}")
        log_dir = Path(settings.CLASSIFIER_TENSORBOARD_DIR) / "default_model"
        # The backbone's int8 form, calibrated as a retrain's is; installed as the served
        # backbone of its id, which retrains here then reuse.
        backbone, calibrated_on = convert_backbone(data, config)
        result, packaged = train_and_package(
            data, config, log_dir, callbacks=[EpochProgressBar(self.stderr)], backbone=backbone
        )
        out.mkdir(parents=True, exist_ok=True)
        (out / "backbone.tflite").write_bytes(backbone)
        (out / "heads.npz").write_bytes(packaged.serving_bytes)
        # What the model knows travels with it (services.shipped): the features of every
        # photo, its label, its content and near-copy hashes, its side of the split.
        shipped.write(
            out / "features.npz", shipped.ShippedPhotos.of_folder(every, config.input_size)
        )
        manifest = {
            "classes": result.classes,
            "input_size": config.input_size,
            "backbone": result.metrics["backbone"],
            "threshold": packaged.metrics["threshold"],
            "trained_on": int(len(data.labels)),
            "built_with": f"python manage.py build_default_model {directory}",
            "metrics": packaged.metrics,
            "history": result.history,
            "training_photos": photo_keys(data.sha256),
            "calibrated_on": calibrated_on,
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        m = packaged.metrics
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {out}: validation accuracy {m['accuracy']:.2%} on {m['n']} images; "
                f"threshold {m['threshold']:.4f} decides {m['coverage_at_threshold']:.1%} "
                f"alone with {m['error_at_threshold']:.2%} errors; "
                f"served model agrees with Keras on {m['serving_agreement']:.1%}; "
                f"head trained in {m['training_seconds']:.0f}s."
            )
        )
