from django.core.management.base import BaseCommand

from ads.models import Category
from classifier.bootstrap import install_shipped_models
from classifier.models import ModelVersion, ServedBackbone


class Command(BaseCommand):
    help = (
        "Create the default categories and register the shipped models, as migrate does: "
        "the default (v4) becomes active unless an admin promoted a version of their own; "
        "running it again changes nothing."
    )

    def handle(self, *args, **options):
        said = install_shipped_models(Category, ModelVersion, ServedBackbone)
        self.stdout.write(self.style.SUCCESS(said))
