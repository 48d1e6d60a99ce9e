from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import Error as DatabaseError

from avito_mod.backup import BackupError, services


class Command(BaseCommand):
    help = (
        "Restore an archive written by manage.py backup into an empty database and storage. "
        "The whole archive is checked first; the result is checked against it after."
    )
    # The database is empty until the restore: checks that read it cannot run.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path)
        parser.add_argument(
            "--force",
            action="store_true",
            help=(
                "Restore over existing data: every table is dropped (in the transaction that "
                "loads the dump) and files of the same names are overwritten; other files stay."
            ),
        )
        parser.add_argument(
            "--verify-only",
            action="store_true",
            help="Only check the archive's checksums; touch neither database nor storage.",
        )

    def handle(self, *args, archive: Path, force: bool, verify_only: bool, **options):
        try:
            if verify_only:
                summary = services.verify(archive)
            else:
                summary = services.restore(archive, force=force)
        except (BackupError, DatabaseError, OSError) as error:
            raise CommandError(f"restore failed: {error}") from error
        for note in summary.notes:
            self.stdout.write(self.style.WARNING(note))
        if verify_only:
            done = "is intact: every member's SHA-256 matches its manifest"
        else:
            done = "was restored: every row count and file's SHA-256 matches its manifest"
        self.stdout.write(
            self.style.SUCCESS(
                f"{archive} {done}. The {summary.describe()} ({summary.seconds:.1f} s)."
            )
        )
