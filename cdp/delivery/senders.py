"""What a destination type's sender receives and returns. A sender turns mapped deliveries into
requests; the engine does claiming, retries, rate limits and bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson

from cdp.core.models import Destination
from cdp.delivery.transport import HttpResult, Transport


@dataclass(slots=True)
class Item:
    """One delivery as a sender sees it. `document` holds the mapped fields, or their JSON text as the
    engine claimed them; `fields` parses that on first read, in the sender's thread, where the parsed
    copy lives only as long as the request it goes into."""

    delivery_id: int
    action: str
    document: str | dict[str, Any]
    event_id: int
    source_id: int
    message_id: str
    received_at: datetime

    @property
    def fields(self) -> dict[str, Any]:
        if isinstance(self.document, str):
            self.document = orjson.loads(self.document)
        return self.document


@dataclass
class Result:
    """The outcome of one item. `retryable` decides between a retry and a permanent failure."""

    delivery_id: int
    ok: bool
    duration_ms: float = 0.0
    request: dict[str, Any] = field(default_factory=dict)
    response_status: int | None = None
    response_body: str = ""
    error_class: str = ""
    error: str = ""
    retryable: bool = False
    retry_after: float | None = None

    @classmethod
    def from_http(cls, delivery_id: int, http: HttpResult, request: dict[str, Any]) -> Result:
        return cls(
            delivery_id=delivery_id, ok=http.ok, duration_ms=http.duration_ms, request=request,
            response_status=http.status, response_body=http.body, error_class=http.error_class, error=http.error,
            retryable=http.retryable, retry_after=http.retry_after,
        )  # fmt: skip


class Sender(Protocol):
    def takes_batches(self, destination: Destination) -> bool:
        """Whether send() may get many items at once (up to the destination's batch size)."""
        ...

    def send(self, destination: Destination, items: list[Item], transport: Transport) -> list[Result]: ...
