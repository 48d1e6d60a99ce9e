from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from classifier.ml.dataset import DatasetError
from classifier.models import TrainingImage
from classifier.services import ClassifierError
from classifier.services.retraining import find_label_errors, request_label_check


class Command(BaseCommand):
    help = (
        "Look for suspected label errors among the training images: train on all folds "
        "but one, predict the held-out fold, flag the labels the model confidently "
        "contradicts. Admins review the list in the admin (training images, filter "
        "'suspected label error')."
    )

    def add_arguments(self, parser):
        parser.add_argument("--folds", type=int, default=3, help="Number of folds (default 3).")
        parser.add_argument(
            "--epochs", type=int, default=0, help="Epochs per fold (default: the recipe's)."
        )
        parser.add_argument(
            "--queue", action="store_true", help="Send it to the training queue and return."
        )

    def handle(self, *args, folds: int, epochs: int, queue: bool, **options):
        if folds < 2:
            raise CommandError("--folds must be at least 2")
        if epochs < 0:
            raise CommandError("--epochs must be at least 1 (or 0 for the recipe's)")
        try:
            if queue:
                check = request_label_check(None, folds, epochs)
                self.stdout.write(
                    self.style.SUCCESS(
                        f"{check} sent to the {settings.CLASSIFIER_TRAINING_QUEUE!r} queue."
                    )
                )
                return
            check = find_label_errors(None, folds, epochs)
        except (DatasetError, ClassifierError) as error:
            raise CommandError(str(error)) from error
        if check.status == check.Status.FAILED:
            raise CommandError(f"the label check failed: {check.error}")
        self._print(check)

    def _print(self, check) -> None:
        suspects = (
            TrainingImage.objects.filter(suspected_category__isnull=False)
            .select_related("category", "suspected_category")
            .order_by("-suspected_margin")
        )
        for image in suspects[:50]:
            self.stdout.write(
                f"{image.pk}\t{image.original_name or image.sha256[:12]}\tlabelled "
                f"{image.category.slug}, looks like {image.suspected_category.slug} "
                f"({image.suspected_confidence:.1%})"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"{check.flagged} suspected label errors among {check.checked} training images."
            )
        )
