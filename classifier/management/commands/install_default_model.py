from django.core.management.base import BaseCommand, CommandError

from ads.models import Category
from classifier.bootstrap import ShippedModelMissing, install_shipped_models
from classifier.models import ModelVersion, ServedBackbone


class Command(BaseCommand):
    help = (
        "Create the default categories and register the shipped default model, as migrate "
        "does: it becomes active unless an admin promoted a version of their own; running it "
        "again changes nothing."
    )

    def handle(self, *args, **options):
        try:
            said = install_shipped_models(Category, ModelVersion, ServedBackbone)
        except ShippedModelMissing as error:
            raise CommandError(str(error)) from error
        self.stdout.write(self.style.SUCCESS(said))
