from pathlib import Path

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

from avito_mod.backup import BackupError, media
from avito_mod.storage import describe


class Command(BaseCommand):
    help = (
        "Copy every file of a local media folder (the old AVITO_MEDIA_ROOT) into the storage "
        "the settings name (AVITO_STORAGE_URL's bucket) under the same names; files already "
        "there with the same content are skipped, nothing is overwritten. Run it again after "
        "stopping the processes to take the files written meanwhile."
    )
    requires_system_checks = []  # the active model's file may be the one still to copy

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path, help="The local media folder to copy.")

    def handle(self, *args, folder: Path, **options):
        if not folder.is_dir():
            raise CommandError(f"{folder}: no such folder")
        target = describe(default_storage)
        if Path(target).resolve() == folder.resolve():
            raise CommandError(
                f"{folder} is the storage already: set AVITO_STORAGE_URL to the bucket first"
            )
        try:
            copied, size, present = media.copy_folder(folder, default_storage)
        except (BackupError, OSError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Copied {copied} files ({size / 1e6:.1f} MB) from {folder} to {target}; "
                f"{present} were there already."
            )
        )
