from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from accounts.roles import MODERATORS_GROUP

ROLES = ("seller", "moderator", "admin")


class Command(BaseCommand):
    help = (
        "Create an account: a seller (API and seller pages), a moderator (the review queue in "
        "the admin) or an admin (everything, including the model registry). Prints the "
        "account's API token."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", choices=ROLES, required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--email", default="")

    def handle(self, *args, username, role, password, email, **options):
        users = get_user_model()
        if users.objects.filter(username=username).exists():
            raise CommandError(f"an account named {username!r} already exists")
        user = users(username=username, email=email)
        try:
            validate_password(password, user)
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        user.set_password(password)
        user.is_staff = role in ("moderator", "admin")
        user.is_superuser = role == "admin"
        user.save()
        if role == "moderator":
            user.groups.add(Group.objects.get(name=MODERATORS_GROUP))
        token = Token.objects.create(user=user)
        self.stdout.write(self.style.SUCCESS(f"Created {role} {username!r}; API token {token.key}"))
