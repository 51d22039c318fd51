"""One realistic, normalised sample event per Segment type, for previews and registry checks."""

from __future__ import annotations

import copy
from typing import Any

_CONTEXT = {
    "ip": "203.0.113.7",
    "library": {"name": "analytics.js", "version": "next-1.84.3"},
    "locale": "en-GB",
    "page": {"path": "/checkout", "title": "Checkout", "url": "https://shop.example.com/checkout", "referrer": ""},
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "traits": {"email": "ada@example.com"},
}
_COMMON = {
    "anonymousId": "5d1b7a3e-2f4c-4b8e-9a61-0c2f7d9e8b10",
    "userId": "user-42",
    "context": _CONTEXT,
    "integrations": {},
    "originalTimestamp": "2026-11-23T09:59:58.900Z",
    "sentAt": "2026-11-23T09:59:59.000Z",
    "receivedAt": "2026-11-23T10:00:00.100Z",
    "timestamp": "2026-11-23T10:00:00.000Z",
}

SAMPLES: dict[str, dict[str, Any]] = {
    "identify": {
        "type": "identify", "messageId": "sample-identify",
        "traits": {"email": "Ada@Example.com ", "first_name": "Ada", "last_name": "Lovelace",
                   "phone": "+44 20 7946 0958", "plan": "pro", "created_at": "2025-03-01T12:00:00Z"},
    },
    "track": {
        "type": "track", "messageId": "sample-track", "event": "Order Completed",
        "properties": {
            "order_id": "o-1001", "total": 129.9, "currency": "EUR", "coupon": None,
            "products": [
                {"product_id": "p-1", "sku": "SKU-1", "name": "Notebook", "price": 19.9, "quantity": 2},
                {"product_id": "p-2", "sku": "SKU-2", "name": "Fountain pen", "price": 90.1, "quantity": 1},
            ],
        },
    },
    "page": {"type": "page", "messageId": "sample-page", "name": "Checkout",
             "properties": {"path": "/checkout", "title": "Checkout", "url": "https://shop.example.com/checkout"}},
    "screen": {"type": "screen", "messageId": "sample-screen", "name": "Cart", "properties": {"items": 3}},
    "group": {"type": "group", "messageId": "sample-group", "groupId": "acme",
              "traits": {"name": "Acme Inc.", "employees": 120, "industry": "Manufacturing"}},
    "alias": {"type": "alias", "messageId": "sample-alias", "previousId": "5d1b7a3e-2f4c-4b8e-9a61-0c2f7d9e8b10"},
}  # fmt: skip


def sample_event(kind: str) -> dict[str, Any]:
    """A fresh copy (callers may change it) of the sample of `kind`; KeyError for unknown kinds."""
    return copy.deepcopy({**_COMMON, **SAMPLES[kind]})
