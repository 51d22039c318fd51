"""Isolation cases for the overview pages: a source's live volume and its observed schema (the
workspace, sources and source pages are in tests/test_isolation.py). These pages only read, so there
are no role cases: a POST to them answers 405 for everyone (tests/test_roles.py checks it)."""

DASHBOARD_CASES = [
    ("source-volume", "get", {"slug": "{slug}", "source_id": "{source}"}),
    ("source-volume", "get", {"slug": "{bob_slug}", "source_id": "{source}"}),  # alice's source under bob's slug
    ("source-schema", "get", {"slug": "{slug}", "source_id": "{source}"}),
    ("source-schema", "get", {"slug": "{bob_slug}", "source_id": "{source}"}),
]
