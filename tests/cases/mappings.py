"""Isolation and role cases for the mappings pages (subscriptions list, editor, preview, what-if, versions)."""

DESTINATION = {"slug": "{slug}", "destination_id": "{destination}"}
BOB_DESTINATION = {"slug": "{bob_slug}", "destination_id": "{destination}"}
SUBSCRIPTION = {**DESTINATION, "subscription_id": "{subscription}"}
BOB_SUBSCRIPTION = {**BOB_DESTINATION, "subscription_id": "{subscription}"}

EDITOR_FORM = {
    "name": "Everything",
    "action": "send",
    "trigger": "true",
    "m.payload.mode": "path",
    "m.payload.value": "$",
}
PREVIEW_FORM = {**EDITOR_FORM, "event": "sample:track"}

DASHBOARD_CASES = [
    ("destination-mappings", "get", DESTINATION),
    ("destination-mappings", "get", BOB_DESTINATION),
    ("subscription-new", "get", DESTINATION),
    ("subscription-new", "post", BOB_DESTINATION),
    ("subscription-preview", "post", DESTINATION),
    ("subscription-preview", "post", BOB_DESTINATION),
    ("subscription", "get", SUBSCRIPTION),
    ("subscription", "get", BOB_SUBSCRIPTION),
    ("subscription", "post", SUBSCRIPTION),
    ("subscription-what-if", "post", SUBSCRIPTION),
    ("subscription-what-if", "post", BOB_SUBSCRIPTION),
    ("subscription-versions", "get", SUBSCRIPTION),
    ("subscription-versions", "get", BOB_SUBSCRIPTION),
    ("subscription-restore", "post", SUBSCRIPTION),
    ("subscription-restore", "post", BOB_SUBSCRIPTION),
    ("subscription-toggle", "post", SUBSCRIPTION),
    ("subscription-toggle", "post", BOB_SUBSCRIPTION),
    ("subscription-delete", "post", SUBSCRIPTION),
    ("subscription-delete", "post", BOB_SUBSCRIPTION),
]

ROLE_CASES = [
    ("subscription-new", DESTINATION, EDITOR_FORM, "member"),
    ("subscription-preview", DESTINATION, PREVIEW_FORM, "member"),
    ("subscription", SUBSCRIPTION, EDITOR_FORM, "member"),
    ("subscription-what-if", SUBSCRIPTION, EDITOR_FORM, "member"),
    ("subscription-restore", SUBSCRIPTION, {"version": "1"}, "member"),
    ("subscription-toggle", SUBSCRIPTION, {}, "member"),
    ("subscription-delete", SUBSCRIPTION, {}, "member"),
]
