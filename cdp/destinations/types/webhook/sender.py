"""Webhook delivery: JSON POST of the mapped payload, optionally batched, signed with HMAC-SHA256.

Signature header: `X-CDP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`;
receivers recompute it over the raw body and reject old timestamps to stop replays."""

from __future__ import annotations

import hashlib
import hmac
import time

import orjson

from cdp.core.models import Destination
from cdp.delivery.senders import Item, Result
from cdp.delivery.transport import Transport, request_summary

SIGNATURE_HEADER = "X-CDP-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookSender:
    def takes_batches(self, destination: Destination) -> bool:
        return bool(destination.settings.get("batch"))

    def send(self, destination: Destination, items: list[Item], transport: Transport) -> list[Result]:
        settings = destination.settings
        payloads = [item.fields.get("payload") for item in items]
        body = orjson.dumps({"batch": payloads} if settings.get("batch") else payloads[0])
        headers = {"Content-Type": "application/json", "User-Agent": "cdp-webhook/1"}
        extra = settings.get("headers") or {}
        headers.update({str(k): str(v) for k, v in extra.items()})
        secret = settings.get("signing_secret")
        if secret:
            headers[SIGNATURE_HEADER] = signature(secret, int(time.time()), body)
        http = transport.post(settings["url"], body, headers, destination.timeout_seconds)
        summary = request_summary("POST", settings["url"], headers, body, secret_names=set(extra))
        return [Result.from_http(item.delivery_id, http, summary) for item in items]
