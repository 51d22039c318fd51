"""Isolation and role cases for the deliveries pages: a destination's delivery page, dead letters, re-drive,
replay, and the jobs pages."""

_ONE = {"slug": "{slug}", "destination_id": "{destination}"}
_ONE_UNDER_BOB = {"slug": "{bob_slug}", "destination_id": "{destination}"}
_LETTER = {**_ONE, "delivery_id": "{dead_letter}"}
_LETTER_UNDER_BOB = {**_ONE_UNDER_BOB, "delivery_id": "{dead_letter}"}

DASHBOARD_CASES = [
    ("destination-delivery", "get", _ONE),
    ("destination-delivery", "get", _ONE_UNDER_BOB),
    ("destination-dead-letters", "get", _ONE),
    ("destination-dead-letters", "get", _ONE_UNDER_BOB),
    ("dead-letter", "get", _LETTER),
    ("dead-letter", "get", _LETTER_UNDER_BOB),
    ("dead-letter-redrive", "post", _ONE),
    ("dead-letter-redrive", "post", _ONE_UNDER_BOB),
    ("destination-replay", "get", _ONE),
    ("destination-replay", "get", _ONE_UNDER_BOB),
    ("destination-replay", "post", _ONE),
    ("destination-replay", "post", _ONE_UNDER_BOB),
    ("destination-load", "post", _ONE),
    ("destination-load", "post", _ONE_UNDER_BOB),
    ("jobs", "get", {"slug": "{slug}"}),
    ("job", "get", {"slug": "{slug}", "job_id": "{job}"}),
    ("job", "get", {"slug": "{bob_slug}", "job_id": "{job}"}),
    ("job-progress", "get", {"slug": "{slug}", "job_id": "{job}"}),
    ("job-progress", "get", {"slug": "{bob_slug}", "job_id": "{job}"}),
]

# (URL name, URL kwargs, POST data, the least role allowed)
ROLE_CASES = [
    ("dead-letter-redrive", _ONE, {"delivery": "{dead_letter}"}, "member"),
    ("dead-letter-redrive", _ONE, {}, "member"),
    ("destination-replay", _ONE, {"source": "{source}", "since": "2026-01-01T00:00"}, "member"),
    ("destination-load", _ONE, {}, "member"),
]

API_OBJECT_CASES = [
    ("destination-delivery-load", "post", "/api/v1/destinations/{destination}/load/", {}),
]

API_ROLE_CASES = [
    ("post", "/api/v1/destinations/{destination}/load/", {}, "member"),
]
