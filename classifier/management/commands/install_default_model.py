from django.core.management.base import BaseCommand

from ads.models import Category
from classifier.bootstrap import install_defaults
from classifier.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Create the default categories and register the shipped model as the active "
        "version, as a fresh migrate does; a registry that already has versions is left alone."
    )

    def handle(self, *args, **options):
        had_versions = ModelVersion.objects.exists()
        install_defaults(Category, ModelVersion)
        if had_versions:
            self.stdout.write("The registry already has versions; only categories were checked.")
        else:
            self.stdout.write(self.style.SUCCESS("Registered the shipped model as active v1."))
