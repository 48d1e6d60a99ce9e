from django.core.management.base import BaseCommand, CommandError

from classifier.services import ClassifierError, resolve_version
from classifier.services.retraining import promote


class Command(BaseCommand):
    help = (
        "Make a candidate version the active one, as the registry's button does: refused "
        "when it is worse than the active version on a category (McNemar's exact test on "
        "the evaluation photos both answered), unless --reason says why to promote it anyway."
    )

    def add_arguments(self, parser):
        parser.add_argument("version", type=int, help="The candidate's number.")
        parser.add_argument(
            "--reason",
            help="Why to promote it although the guard refuses it (kept in the registry's events).",
        )

    def handle(self, *args, **options):
        try:
            version = resolve_version(options["version"])
            event = promote(
                version, None, note="manage.py promote", override_reason=options["reason"]
            )
        except ClassifierError as error:
            raise CommandError(str(error)) from error
        was = f" (was v{event.previous.number})" if event.previous else ""
        self.stdout.write(self.style.SUCCESS(f"Model v{version.number} is now active{was}."))
        if event.refused:
            self.stdout.write(
                f"Promoted despite the guard ({event.refused}), because: {event.override_reason}"
            )
