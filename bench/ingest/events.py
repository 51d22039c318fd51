"""Realistic Segment track events, as the published libraries send them (see /work/shared/CLIENTS.md).

Bodies are written as templates for wrk: every messageId holds the placeholder `@@ID@@`, which the
Lua script replaces by a per-request tag, so that no two requests carry the same messageId.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

# As long as the tag post.lua puts in its place (8 hex run nonce, 2 digits thread, 10 digits counter),
# so that a body's size on the wire is the size measured here.
TAG_LENGTH = 20
PLACEHOLDER = "@@ID@@".ljust(TAG_LENGTH, "@")

_EVENTS = [
    (
        "Product Viewed",
        lambda r: {
            "product_id": f"sku-{r.randint(1000, 99999)}",
            "category": r.choice(["Shoes", "Bags", "Hats"]),
            "price": round(r.uniform(5, 400), 2),
            "currency": "EUR",
        },
    ),
    (
        "Product Added",
        lambda r: {
            "product_id": f"sku-{r.randint(1000, 99999)}",
            "quantity": r.randint(1, 4),
            "price": round(r.uniform(5, 400), 2),
            "cart_id": uuid.UUID(int=r.getrandbits(128)).hex[:16],
        },
    ),
    (
        "Order Completed",
        lambda r: {
            "order_id": f"ord-{r.randint(10**6, 10**7)}",
            "total": round(r.uniform(20, 900), 2),
            "revenue": round(r.uniform(15, 800), 2),
            "currency": "EUR",
            "coupon": None,
        },
    ),
    (
        "Signed Up",
        lambda r: {"plan": r.choice(["free", "pro", "team"]), "referrer": r.choice(["google", "newsletter", ""])},
    ),
    (
        "Video Played",
        lambda r: {
            "video_id": r.randint(1, 5000),
            "position": r.randint(0, 3600),
            "quality": "1080p",
            "muted": r.random() < 0.5,
        },
    ),
]
_PAGES = ["/", "/pricing", "/products/{n}", "/blog/how-we-ship-{n}", "/checkout/step-{n}", "/account/settings"]
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
]
_START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _iso(moment: datetime, micro: bool) -> str:
    """analytics.js sends `...123Z`; the server libraries `...123456+00:00`."""
    if micro:
        return moment.isoformat(timespec="microseconds")
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def track_event(rng: random.Random, index: int, message_tag: str = PLACEHOLDER) -> dict[str, Any]:
    """One track call; browser-style (analytics-next) or server-style (analytics-python/node)."""
    name, props = rng.choice(_EVENTS)
    moment = _START + timedelta(milliseconds=rng.randint(0, 86_400_000))
    anonymous_id = str(uuid.UUID(int=rng.getrandbits(128)))
    user_id = f"user-{rng.randint(1, 10**6)}" if rng.random() < 0.6 else None
    if rng.random() < 0.7:  # the browser library
        path = rng.choice(_PAGES).format(n=rng.randint(1, 999))
        return {
            "type": "track",
            "event": name,
            "properties": props(rng),
            "userId": user_id,
            "anonymousId": anonymous_id,
            "messageId": f"ajs-next-{message_tag}-{index:04d}",
            "timestamp": _iso(moment, False),
            "context": {
                "library": {"name": "analytics.js", "version": "npm:next-1.84.3"},
                "page": {"path": path, "referrer": "", "url": f"https://shop.example.com{path}"},
                "userAgent": rng.choice(_AGENTS),
                "timezone": "Europe/Berlin",
            },
            "integrations": {},
        }
    library = rng.choice([("analytics-python", "2.4.0"), ("@segment/analytics-node", "3.1.0")])
    return {
        "type": "track",
        "event": name,
        "properties": props(rng),
        "userId": user_id or f"user-{rng.randint(1, 10**6)}",
        "anonymousId": anonymous_id if rng.random() < 0.3 else None,
        "messageId": f"node-next-{message_tag}-{index:04d}",
        "timestamp": _iso(moment, True),
        "context": {"library": {"name": library[0], "version": library[1]}, "ip": "203.0.113.7"},
        "integrations": {},
    }


def batch_body(rng: random.Random, count: int, write_key: str, message_tag: str = PLACEHOLDER) -> bytes:
    """A `/v1/batch` body as analytics-python and analytics-node send it."""
    events = [track_event(rng, i, message_tag) for i in range(count)]
    return orjson.dumps({"batch": events, "sentAt": _iso(_START, False), "writeKey": write_key})


def batch_body_of_size(rng: random.Random, max_bytes: int, write_key: str) -> tuple[bytes, int]:
    """The largest batch whose body stays under `max_bytes`; returns the body and its event count."""
    events: list[dict[str, Any]] = []
    envelope = {"batch": events, "sentAt": _iso(_START, False), "writeKey": write_key}
    size = len(orjson.dumps(envelope))
    while True:
        event = track_event(rng, len(events))
        grown = size + len(orjson.dumps(event)) + 1
        if grown > max_bytes:
            return orjson.dumps(envelope), len(events)
        events.append(event)
        size = grown
