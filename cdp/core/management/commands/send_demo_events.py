import base64
import json
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp.core.models import Source
from cdp.tracking.models import IntakeRequest

_PAGES = [("/", "Home"), ("/pricing", "Pricing"), ("/docs", "Docs"), ("/signup", "Sign up")]


def demo_batch(now: datetime) -> list[dict[str, Any]]:
    """A small, realistic day of a website: visits, a sign-up, an order."""
    messages: list[dict[str, Any]] = []
    context = {"library": {"name": "demo", "version": "1"}, "userAgent": "Mozilla/5.0 (X11; Linux x86_64)"}
    for visitor in range(6):
        anonymous_id = str(uuid.uuid4())
        at = now - timedelta(minutes=90 - visitor * 12)
        for step, (path, title) in enumerate(_PAGES[: 2 + visitor % 3]):
            page_context = {**context, "page": {"path": path, "title": title, "url": f"https://example.com{path}"}}
            seen = (at + timedelta(seconds=40 * step)).isoformat()
            messages.append(
                {"type": "page", "name": title, "anonymousId": anonymous_id, "context": page_context,
                 "properties": {"path": path, "title": title}, "timestamp": seen}
            )  # fmt: skip
        if visitor % 2 == 0:
            user_id = f"user-{visitor + 1}"
            signed_up = (at + timedelta(minutes=3)).isoformat()
            messages += [
                {"type": "identify", "userId": user_id, "anonymousId": anonymous_id, "timestamp": signed_up,
                 "traits": {"email": f"{user_id}@example.com", "plan": "trial"}, "context": context},
                {"type": "track", "event": "Signed Up", "userId": user_id, "timestamp": signed_up,
                 "properties": {"plan": "trial"}, "context": context},
                {"type": "track", "event": "Order Completed", "userId": user_id, "context": context,
                 "timestamp": (at + timedelta(minutes=9)).isoformat(),
                 "properties": {"order_id": f"o-{visitor}", "total": 29.0 + visitor * 10, "currency": "EUR"}},
            ]  # fmt: skip
    messages.append({"type": "group", "userId": "user-1", "groupId": "acme", "traits": {"name": "Acme Inc."}})
    return messages


class Command(BaseCommand):
    help = "Send a small set of demo events to the demo source through the running Tracking API (once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", required=True, help="Base URL of the running server, e.g. http://127.0.0.1:8000")
        parser.add_argument("--workspace", default="demo")
        parser.add_argument("--source", default="Demo website")
        parser.add_argument("--force", action="store_true", help="Send even if the source already received data.")

    def handle(self, *args: Any, **options: Any) -> None:
        source = Source.objects.filter(workspace__slug=options["workspace"], name=options["source"]).first()
        if source is None:
            raise CommandError("No demo source; run `python manage.py setup_demo` first.")
        if not options["force"] and IntakeRequest.objects.filter(source=source).exists():
            self.stdout.write("The demo source already has data; nothing sent.")
            return
        now = datetime.now(UTC)
        body = json.dumps({"batch": demo_batch(now), "sentAt": now.isoformat()}).encode()
        auth = base64.b64encode(f"{source.write_key}:".encode()).decode()
        request = urllib.request.Request(
            f"{options['url'].rstrip('/')}/v1/batch",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - operator-given URL
            answer = json.loads(response.read())
        self.stdout.write(f"Sent demo events: {answer}")
