import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils.text import slugify

from cdp.core.models import Membership, Role, Source, SourceKind, Workspace


class Command(BaseCommand):
    help = "Create a source (and its workspace if needed) and print its id and write key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("workspace", help="Workspace slug or name; created if it does not exist.")
        parser.add_argument("name", help="Source name, unique in the workspace.")
        parser.add_argument("--owner", required=True, help="Existing username that becomes the workspace owner.")
        parser.add_argument("--kind", default=SourceKind.SERVER, choices=SourceKind.values)
        parser.add_argument("--json", action="store_true", help="Print JSON instead of text.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["owner"]).first()
        if user is None:
            raise CommandError(
                f"No user named {options['owner']!r}; create it first (python manage.py createsuperuser)."
            )
        name = options["name"].strip()
        if not name:
            raise CommandError("Give the source a name.")
        if max(len(name), len(options["workspace"])) > 200:
            raise CommandError("Names are limited to 200 characters.")
        slug = slugify(options["workspace"])[:100]
        if not slug:
            raise CommandError("The workspace name needs at least one letter or digit.")
        with transaction.atomic():
            workspace, _ = Workspace.objects.get_or_create(slug=slug, defaults={"name": options["workspace"]})
            Membership.objects.update_or_create(workspace=workspace, user=user, defaults={"role": Role.OWNER})
            if Source.objects.filter(workspace=workspace, name=name).exists():
                raise CommandError(f"Workspace {workspace.slug!r} already has a source named {name!r}.")
            source = Source.objects.create(workspace=workspace, name=name, kind=options["kind"])
        result = {
            "id": source.pk,
            "name": source.name,
            "workspace": workspace.slug,
            "workspace_id": workspace.pk,
            "write_key": source.write_key,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(f"Source {source.name!r} (id {source.pk}) in workspace {workspace.slug!r}")
            self.stdout.write(f"Write key: {source.write_key}")
