from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from knox.models import AuthToken


class Command(BaseCommand):
    help = "Create an API token for a user and print it; only its digest is stored, so it cannot be shown again."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--replace", action="store_true", help="delete the user's other tokens first (they stop working)")

    def handle(self, *args, **options):
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: options["username"]})
        except User.DoesNotExist:
            raise CommandError(f"there is no user '{options['username']}'", returncode=2) from None
        if options["replace"]:
            AuthToken.objects.filter(user=user).delete()
        _, key = AuthToken.objects.create(user=user)
        self.stdout.write(key)
