import json
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from cdp.core.models import Membership, Role, Source, SourceKind, Workspace


class Command(BaseCommand):
    help = "Create (once) an admin login, a demo workspace and a demo website source; print how to log in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default="", help="Default: a random one, printed.")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model().objects
        with transaction.atomic():
            user = users.filter(username=options["username"]).first()
            password = None
            if user is None:
                password = options["password"] or secrets.token_urlsafe(12)
                user = users.create_superuser(options["username"], f"{options['username']}@example.com", password)
            elif options["password"]:
                password = options["password"]
                user.set_password(password)
                user.save(update_fields=["password"])
            workspace, _ = Workspace.objects.get_or_create(slug="demo", defaults={"name": "Demo"})
            Membership.objects.get_or_create(workspace=workspace, user=user, defaults={"role": Role.OWNER})
            source, _ = Source.objects.get_or_create(
                workspace=workspace, name="Demo website", defaults={"kind": SourceKind.WEBSITE}
            )
        result = {
            "username": user.username,
            "password": password,
            "workspace": workspace.slug,
            "source_id": source.pk,
            "write_key": source.write_key,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(f"Login:     {user.username}")
        self.stdout.write(f"Password:  {password or '(unchanged since it was first printed; reset with --password)'}")
        self.stdout.write(f"Workspace: {workspace.slug}, source {source.name!r} with write key {source.write_key}")
