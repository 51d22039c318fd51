"""Isolation and role cases for the destination pages (catalog, add, settings, enable/disable)."""

DASHBOARD_CASES = [
    ("destinations", "get", {"slug": "{slug}"}),
]
