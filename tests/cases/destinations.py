"""Isolation and role cases for the destination pages (catalog, add, settings, enable/disable, test, delete)."""

_ONE = {"slug": "{slug}", "destination_id": "{destination}"}
_ONE_UNDER_BOB = {"slug": "{bob_slug}", "destination_id": "{destination}"}  # alice's destination, bob's workspace

DASHBOARD_CASES = [
    ("destinations", "get", {"slug": "{slug}"}),
    ("destination-catalog", "get", {"slug": "{slug}"}),
    ("destination-new", "get", {"slug": "{slug}", "type_key": "webhook"}),
    ("destination-new", "post", {"slug": "{slug}", "type_key": "webhook"}),
    ("destination", "get", _ONE),
    ("destination", "get", _ONE_UNDER_BOB),
    ("destination", "post", _ONE),
    ("destination", "post", _ONE_UNDER_BOB),
    ("destination-toggle", "post", _ONE),
    ("destination-toggle", "post", _ONE_UNDER_BOB),
    ("destination-test", "post", _ONE),
    ("destination-test", "post", _ONE_UNDER_BOB),
    ("destination-delete", "post", _ONE),
    ("destination-delete", "post", _ONE_UNDER_BOB),
]

# (URL name, URL kwargs, POST data, the least role allowed)
ROLE_CASES = [
    (
        "destination-new",
        {"slug": "{slug}", "type_key": "webhook"},
        {
            "name": "Added by a role test",
            "setting_url": "http://127.0.0.1:9/hook",
            **{
                "max_in_flight": 4,
                "batch_size": 100,
                "batch_wait_seconds": 0,
                "timeout_seconds": 10,
                "retry_hours": 4,
            },
        },
        "member",
    ),
    (
        "destination",
        _ONE,
        {
            "name": "Renamed by a role test",
            "setting_url": "http://127.0.0.1:9/other",
            "max_in_flight": 4,
            "batch_size": 100,
            "batch_wait_seconds": 0,
            "timeout_seconds": 10,
            "retry_hours": 4,
        },
        "member",
    ),
    ("destination-toggle", _ONE, {}, "member"),
    ("destination-test", _ONE, {}, "member"),
    ("destination-delete", _ONE, {}, "admin"),
]
