from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import Error as DatabaseError

from avito_mod.backup import BackupError, services


class Command(BaseCommand):
    help = (
        "Back up the database (its engine's own consistent dump) and every stored file "
        "(photos, training images, model artifacts) into one archive; restore it with "
        "manage.py restore."
    )
    # A backup must work precisely when something is wrong (a broken model file).
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path, help="The archive to write (a .tar file).")
        parser.add_argument("--force", action="store_true", help="Replace ARCHIVE if it exists.")

    def handle(self, *args, archive: Path, force: bool, **options):
        try:
            summary = services.backup(archive, force=force)
        except (BackupError, DatabaseError, OSError) as error:
            raise CommandError(f"backup failed: {error}") from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Backed up the {summary.describe()} to {archive} in {summary.seconds:.1f} s."
            )
        )
