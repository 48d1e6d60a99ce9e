from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from classifier.ml.dataset import DatasetError
from classifier.models import TrainingImage
from classifier.services import export_dataset


class Command(BaseCommand):
    help = (
        "Write the labelled training images as DIR/<category-slug>/<file>, the layout "
        "import_images reads. Negative examples and excluded images are left out."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument(
            "--subset",
            choices=TrainingImage.Subset.values,
            help="Only the training or only the evaluation images (default: both).",
        )
        parser.add_argument(
            "--force", action="store_true", help="Write into DIR even if it is not empty."
        )

    def handle(self, *args, directory: Path, subset: str | None, force: bool, **options):
        try:
            report = export_dataset(directory, force=force, subset=subset)
        except (DatasetError, OSError) as error:
            raise CommandError(str(error)) from error
        for name in report.missing:
            self.stderr.write(f"skipped {name}: the file is missing from storage")
        for slug, count in sorted(report.written.items()):
            self.stdout.write(f"{slug}: {count} written")
        self.stdout.write(
            self.style.SUCCESS(
                f"Exported {sum(report.written.values())} images to {directory}; "
                f"{len(report.missing)} missing from storage."
            )
        )
