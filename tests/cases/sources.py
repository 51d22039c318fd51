"""Role cases for the source pages (their isolation cases are in tests/test_isolation.py)."""

ROLE_CASES = [
    ("source-new", {"slug": "{slug}"}, {"name": "Checkout service", "kind": "server"}, "member"),
    ("rotate-key", {"slug": "{slug}", "source_id": "{source}"}, {}, "admin"),
]
