from django.core.management.base import BaseCommand


class ModelVersionCommand(BaseCommand):
    """A command with ``--version N`` meaning a model version, not Django's version."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument(
            "--version", type=int, help="Model version number (default: the active one)."
        )
