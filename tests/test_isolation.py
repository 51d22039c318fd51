"""Workspace isolation: bob, a user of another workspace, finds nothing of alice's workspace.

Every object URL of the API and the dashboard is listed once below; an object of another workspace
answers 404 exactly like one that never existed. The coverage tests at the end fail when a view is
added without a line here, so a new view cannot skip this check.
"""

from __future__ import annotations

import json

import pytest
from django.urls import URLPattern, URLResolver, reverse

import dashboard.urls
from cdp.api.urls import router
from cdp.core.models import Destination, Membership, Role, Source, Workspace
from cdp.delivery.models import Delivery, Job
from cdp.destinations.models import Subscription
from tests import cases
from tests.conftest import api_client_for
from tests.support.data import make_event, make_rejected
from tests.support.jobs import make_dead_letter

pytestmark = pytest.mark.django_db

MISSING = 987654321  # an id no test creates


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice_objects(source):
    """One object of each kind in alice's workspace ("acme"), by the placeholder names used in URLs."""
    destination = Destination.objects.create(workspace=source.workspace, name="Hook", type="webhook", settings={})
    subscription = Subscription.objects.create(
        destination=destination, name="All tracks", action="send", trigger="type = 'track'", mapping={}
    )
    objects = {
        "workspace": source.workspace_id,
        "slug": source.workspace.slug,
        "source": source.pk,
        "event": make_event(source).pk,
        "rejected": make_rejected(source).pk,
        "destination": destination.pk,
        "subscription": subscription.pk,
        "dead_letter": make_dead_letter(destination, subscription=subscription).pk,
        "job": Job.objects.create(workspace=source.workspace, destination=destination, kind="replay").pk,
    }
    for module in cases.modules():
        if hasattr(module, "objects"):
            objects.update(module.objects(source, objects))
    return objects


OBJECT_KINDS = ["workspace", "source", "event", "rejected", "destination", "subscription", "dead_letter", "job"]


class _Missing(dict):
    def __missing__(self, key: str) -> int:
        return MISSING


def missing_objects():
    """Placeholder values naming nothing: an unknown slug, and an id no test creates for every other kind."""
    return _Missing({"slug": "no-such-workspace", **dict.fromkeys(OBJECT_KINDS, MISSING)})


# --- API -------------------------------------------------------------------------------------------

REPLAY_BODY = {"source": 1, "since": "2026-01-01T00:00:00Z"}

# (route name, method, URL, JSON body)
API_OBJECT_CASES = [
    ("workspace-detail", "get", "/api/v1/workspaces/{workspace}/", None),
    ("workspace-detail", "patch", "/api/v1/workspaces/{workspace}/", {"name": "Taken over"}),
    ("workspace-detail", "put", "/api/v1/workspaces/{workspace}/", {"name": "Taken over", "slug": "taken"}),
    ("source-detail", "get", "/api/v1/sources/{source}/", None),
    ("source-detail", "patch", "/api/v1/sources/{source}/", {"enabled": False}),
    ("source-detail", "put", "/api/v1/sources/{source}/", {"name": "Mine now", "enabled": False}),
    ("source-rotate-key", "post", "/api/v1/sources/{source}/rotate_key/", None),
    ("event-detail", "get", "/api/v1/events/{event}/", None),
    ("xray-event", "get", "/api/v1/events/{event}/xray/", None),
    ("rejected-message-detail", "get", "/api/v1/rejected-messages/{rejected}/", None),
    ("destination-detail", "get", "/api/v1/destinations/{destination}/", None),
    ("destination-detail", "patch", "/api/v1/destinations/{destination}/", {"enabled": True}),
    ("destination-detail", "put", "/api/v1/destinations/{destination}/", {"name": "Mine now", "settings": {}}),
    ("destination-detail", "delete", "/api/v1/destinations/{destination}/", None),
    ("destination-preview", "post", "/api/v1/destinations/{destination}/preview/", {"sample": "track"}),
    ("subscription-detail", "get", "/api/v1/subscriptions/{subscription}/", None),
    ("subscription-detail", "patch", "/api/v1/subscriptions/{subscription}/", {"enabled": False}),
    ("subscription-detail", "delete", "/api/v1/subscriptions/{subscription}/", None),
    ("subscription-versions", "get", "/api/v1/subscriptions/{subscription}/versions/", None),
    ("subscription-diff", "get", "/api/v1/subscriptions/{subscription}/diff/?from=1", None),
    ("subscription-restore", "post", "/api/v1/subscriptions/{subscription}/restore/", {"version": 1}),
    ("subscription-what-if", "post", "/api/v1/subscriptions/{subscription}/what-if/", {"limit": 5}),
    ("destination-delivery-metrics", "get", "/api/v1/destinations/{destination}/metrics/", None),
    ("destination-delivery-replay", "post", "/api/v1/destinations/{destination}/replay/", REPLAY_BODY),
    ("dead-letter-detail", "get", "/api/v1/dead-letters/{dead_letter}/", None),
    ("dead-letter-redrive", "post", "/api/v1/dead-letters/{dead_letter}/redrive/", None),
    ("job-detail", "get", "/api/v1/jobs/{job}/", None),
    *cases.gather("API_OBJECT_CASES"),
]

# Routes that are the same for every user (a catalog), so there is nothing of another workspace to find.
API_GLOBAL_ROUTES = {"destination-type-list", "destination-type-detail", *cases.gather("API_GLOBAL_ROUTES")}

# (route name, URL, query, kind of object listed) — bob's lists, even filtered on alice's ids, hold none
# of alice's objects.
API_LIST_CASES = [
    ("workspace-list", "/api/v1/workspaces/", {}, "workspace"),
    ("source-list", "/api/v1/sources/", {}, "source"),
    ("source-list", "/api/v1/sources/", {"workspace": "{workspace}"}, "source"),
    ("event-list", "/api/v1/events/", {}, "event"),
    ("event-list", "/api/v1/events/", {"source": "{source}"}, "event"),
    ("rejected-message-list", "/api/v1/rejected-messages/", {}, "rejected"),
    ("rejected-message-list", "/api/v1/rejected-messages/", {"source": "{source}"}, "rejected"),
    ("destination-list", "/api/v1/destinations/", {}, "destination"),
    ("destination-list", "/api/v1/destinations/", {"workspace": "{workspace}"}, "destination"),
    ("subscription-list", "/api/v1/subscriptions/", {}, "subscription"),
    ("subscription-list", "/api/v1/subscriptions/", {"destination": "{destination}"}, "subscription"),
    ("dead-letter-list", "/api/v1/dead-letters/", {}, "dead_letter"),
    ("dead-letter-list", "/api/v1/dead-letters/", {"destination": "{destination}"}, "dead_letter"),
    ("job-list", "/api/v1/jobs/", {}, "job"),
    ("job-list", "/api/v1/jobs/", {"workspace": "{workspace}"}, "job"),
    ("job-list", "/api/v1/jobs/", {"destination": "{destination}"}, "job"),
    *cases.gather("API_LIST_CASES"),
]


def api_call(client, method, url, body):
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


@pytest.mark.parametrize(
    ("route", "method", "url", "body"), API_OBJECT_CASES, ids=[f"{c[1]} {c[2]}" for c in API_OBJECT_CASES]
)
def test_api_object_of_another_workspace_is_404(bob_api, bob_workspace, alice_objects, route, method, url, body):
    before = snapshot(alice_objects)
    response = api_call(bob_api, method, url.format(**alice_objects), body)
    assert response.status_code == 404, response.content
    assert response.json()["code"] == "not_found"
    assert snapshot(alice_objects) == before


@pytest.mark.parametrize(
    ("route", "method", "url", "body"), API_OBJECT_CASES, ids=[f"{c[1]} {c[2]}" for c in API_OBJECT_CASES]
)
def test_api_404_for_another_workspace_reads_like_a_missing_object(
    bob_api, bob_workspace, alice_objects, route, method, url, body
):
    theirs = api_call(bob_api, method, url.format(**alice_objects), body)
    missing = api_call(bob_api, method, url.format_map(missing_objects()), body)
    assert (theirs.status_code, theirs.json()) == (missing.status_code, missing.json())


@pytest.mark.parametrize(
    ("route", "url", "query", "kind"), API_LIST_CASES, ids=[f"{c[1]}?{c[2]}" for c in API_LIST_CASES]
)
def test_api_list_holds_nothing_of_another_workspace(bob_api, bob_workspace, alice_objects, route, url, query, kind):
    bob_source = Source.objects.create(workspace=bob_workspace, name="Bob's site")
    make_event(bob_source)
    make_rejected(bob_source)
    bob_destination = Destination.objects.create(workspace=bob_workspace, name="Bob's hook", type="webhook")
    Subscription.objects.create(destination=bob_destination, name="Bob's", action="send", trigger="true", mapping={})
    make_dead_letter(bob_destination)
    Job.objects.create(workspace=bob_workspace, destination=bob_destination, kind="redrive")
    response = bob_api.get(url, {key: value.format(**alice_objects) for key, value in query.items()})
    assert response.status_code == 200
    listed = {row["id"] for row in response.json()["results"]}
    assert alice_objects[kind] not in listed
    if not query:
        assert listed, "bob's own objects are listed"


def test_api_cannot_create_a_source_in_another_workspace(bob_api, bob_workspace, alice_objects):
    payload = {"workspace": alice_objects["workspace"], "name": "Sneaky"}
    response = bob_api.post("/api/v1/sources/", payload, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["workspace"] == [f"You have no workspace with id {alice_objects['workspace']}."]
    assert not Source.objects.filter(name="Sneaky").exists()


@pytest.mark.parametrize("field", ["destination", "workspace"])
def test_api_cannot_redrive_dead_letters_of_another_workspace(bob_api, bob_workspace, alice_objects, field):
    before = snapshot(alice_objects)
    theirs = bob_api.post("/api/v1/dead-letters/redrive/", {field: alice_objects[field]})
    missing = bob_api.post("/api/v1/dead-letters/redrive/", {field: MISSING})
    assert theirs.status_code == missing.status_code == 400
    assert theirs.json() == json.loads(json.dumps(missing.json()).replace(str(MISSING), str(alice_objects[field])))
    everything = bob_api.post("/api/v1/dead-letters/redrive/", {})
    assert (everything.status_code, everything.json()["workspace"]) == (202, bob_workspace.pk)
    assert snapshot(alice_objects) == before


def test_api_superuser_outside_the_workspace_still_gets_404(bob, bob_api, alice_objects):
    bob.is_superuser = bob.is_staff = True
    bob.save()
    assert bob_api.get(f"/api/v1/sources/{alice_objects['source']}/").status_code == 404


def test_api_former_member_loses_access(make_user, alice_objects):
    carol = make_user("carol")
    membership = Membership.objects.create(workspace_id=alice_objects["workspace"], user=carol, role=Role.ADMIN)
    client = api_client_for(carol)
    assert client.get(f"/api/v1/sources/{alice_objects['source']}/").status_code == 200
    membership.delete()
    assert client.get(f"/api/v1/sources/{alice_objects['source']}/").status_code == 404


def snapshot(objects):
    """What bob must not be able to change: alice's objects as stored."""
    return (
        Workspace.objects.values("name", "slug").get(pk=objects["workspace"]),
        Source.objects.values("name", "enabled", "write_key").get(pk=objects["source"]),
        list(Destination.objects.filter(workspace_id=objects["workspace"]).values("id", "name", "enabled")),
        list(Subscription.objects.filter(destination_id=objects["destination"]).values("id", "enabled", "version")),
        list(Delivery.objects.filter(destination_id=objects["destination"]).values("id", "status", "payload")),
        list(Job.objects.filter(workspace_id=objects["workspace"]).values("id", "status")),
    )


# --- Dashboard -------------------------------------------------------------------------------------

# (URL name, method, URL kwargs)
DASHBOARD_CASES = [
    ("workspace", "get", {"slug": "{slug}"}),
    ("sources", "get", {"slug": "{slug}"}),
    ("source-new", "get", {"slug": "{slug}"}),
    ("source-new", "post", {"slug": "{slug}"}),
    ("source", "get", {"slug": "{slug}", "source_id": "{source}"}),
    ("source", "get", {"slug": "{bob_slug}", "source_id": "{source}"}),  # alice's source under bob's workspace
    ("rotate-key", "post", {"slug": "{slug}", "source_id": "{source}"}),
    ("rotate-key", "post", {"slug": "{bob_slug}", "source_id": "{source}"}),
    ("debugger", "get", {"slug": "{slug}"}),
    ("source-debugger", "get", {"slug": "{slug}", "source_id": "{source}"}),
    ("source-debugger", "get", {"slug": "{bob_slug}", "source_id": "{source}"}),
    ("destination-debugger", "get", {"slug": "{slug}", "destination_id": "{destination}"}),
    ("destination-debugger", "get", {"slug": "{bob_slug}", "destination_id": "{destination}"}),
    ("xray", "get", {"slug": "{slug}"}),
    ("event-xray", "get", {"slug": "{slug}", "event_id": "{event}"}),
    ("event-xray", "get", {"slug": "{bob_slug}", "event_id": "{event}"}),
    *cases.gather("DASHBOARD_CASES"),
]


@pytest.mark.parametrize(
    ("name", "method", "kwargs"), DASHBOARD_CASES, ids=[f"{c[1]} {c[0]} {c[2]}" for c in DASHBOARD_CASES]
)
def test_dashboard_page_of_another_workspace_is_404(client, bob, bob_workspace, alice_objects, name, method, kwargs):
    client.force_login(bob)
    values = {**alice_objects, "bob_slug": bob_workspace.slug}
    url = reverse(f"dashboard:{name}", kwargs={key: value.format(**values) for key, value in kwargs.items()})
    before = snapshot(alice_objects)
    response = getattr(client, method)(url, {"name": "Sneaky", "kind": "server"} if method == "post" else None)
    assert response.status_code == 404
    assert b"Not found" in response.content
    assert alice_objects["slug"].encode() not in response.content
    assert snapshot(alice_objects) == before
    assert not Source.objects.filter(name="Sneaky").exists()


def test_dashboard_home_lists_only_own_workspaces(client, bob, bob_workspace, alice_objects, make_workspace):
    make_workspace("initech", owner=bob)
    client.force_login(bob)
    response = client.get("/")
    assert b"Globex" in response.content and b"Initech" in response.content
    assert b"Acme" not in response.content


# --- Coverage: a new view must be added above --------------------------------------------------------


def route_names(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from route_names(entry.url_patterns, prefix)
        elif isinstance(entry, URLPattern) and entry.name:
            yield entry.name, str(entry.pattern)


def test_every_api_object_route_has_an_isolation_case():
    covered = {route for route, *_ in API_OBJECT_CASES}
    object_routes = {name for name, pattern in route_names(router.urls) if "<pk>" in pattern or "(?P<pk>" in pattern}
    missing = object_routes - covered - API_GLOBAL_ROUTES
    assert not missing, f"add API_OBJECT_CASES lines in tests/test_isolation.py for {sorted(missing)}"


def test_every_api_list_route_has_an_isolation_case():
    covered = {route for route, *_ in API_LIST_CASES}
    list_routes = {name for name, _ in route_names(router.urls) if name.endswith("-list")}
    missing = list_routes - covered - API_GLOBAL_ROUTES
    assert not missing, f"add API_LIST_CASES lines in tests/test_isolation.py for {sorted(missing)}"


def test_every_workspace_dashboard_page_has_an_isolation_case():
    covered = {name for name, *_ in DASHBOARD_CASES}
    scoped = {name for name, pattern in route_names(dashboard.urls.urlpatterns) if "<slug:slug>" in pattern}
    missing = scoped - covered
    assert not missing, f"add DASHBOARD_CASES lines in tests/test_isolation.py for {sorted(missing)}"
