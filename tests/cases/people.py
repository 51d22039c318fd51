"""Isolation and role cases for members, API tokens and the audit log."""

DASHBOARD_CASES = [
    ("members", "get", {"slug": "{slug}"}),
    ("audit-log", "get", {"slug": "{slug}"}),
]
