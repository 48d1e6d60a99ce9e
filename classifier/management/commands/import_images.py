from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from classifier.ml.dataset import DatasetError
from classifier.services import import_images


class Command(BaseCommand):
    help = (
        "Import a folder-per-class dataset (DIR/<category-slug>/*.jpg) as labelled training "
        "images. Unreadable files are listed and skipped; nothing is half-imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument(
            "--create-categories",
            action="store_true",
            help="Create a category for each folder whose name is not a known slug.",
        )

    def handle(self, *args, directory: Path, create_categories: bool, **options):
        try:
            report = import_images(directory, create_categories=create_categories)
        except DatasetError as error:
            raise CommandError(str(error)) from error
        for path, reason in report.unreadable:
            self.stderr.write(f"skipped {path}: {reason}")
        for slug, count in sorted(report.imported.items()):
            self.stdout.write(f"{slug}: {count} imported")
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {sum(report.imported.values())} images; "
                f"{report.duplicates} duplicates and {len(report.unreadable)} unreadable "
                "files skipped."
            )
        )
