"""Roles: read-only members look, members change sources, destinations and mappings, admins also manage
people and keys, owners also delete the workspace — on every dashboard page and API endpoint.

Each area lists its POST pages in tests/cases/<area>.py as ROLE_CASES (URL name, URL kwargs, POST data,
least role allowed) and its API calls as API_ROLE_CASES (method, URL, JSON body, least role allowed); every
role below gets 403 and changes nothing, the least role allowed does not get 403. The generic tests below
need no list: a read-only member POSTing to every workspace page, or calling every API route that writes,
is refused. A page or route whose URL cannot be filled in fails with a message saying what to add.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import URLPattern, resolve, reverse

import dashboard.urls
from cdp.api.access import WorkspaceScopedViewSet
from cdp.api.urls import router
from cdp.core.models import ApiToken, AuditEntry, Invitation, Membership, Role, Workspace
from cdp.destinations.models import Subscription
from tests import cases, test_isolation
from tests.conftest import api_client_for
from tests.test_isolation import API_OBJECT_CASES, DASHBOARD_CASES, route_names, snapshot

pytestmark = pytest.mark.django_db

# The same placeholder objects as the isolation tests: one of each kind in alice's workspace.
alice_objects = test_isolation.alice_objects

ROLES = ["read_only", "member", "admin", "owner"]
WRITE_METHODS = ("post", "put", "patch", "delete")

ROLE_CASES = cases.gather("ROLE_CASES")

# The core API routes; areas add theirs in tests/cases/<area>.py.
API_ROLE_CASES = [
    ("patch", "/api/v1/workspaces/{workspace}/", {"name": "Renamed"}, "admin"),
    ("put", "/api/v1/workspaces/{workspace}/", {"name": "Renamed", "slug": "renamed"}, "admin"),
    ("post", "/api/v1/sources/", {"workspace": "{workspace}", "name": "Checkout"}, "member"),
    ("patch", "/api/v1/sources/{source}/", {"enabled": False}, "member"),
    ("put", "/api/v1/sources/{source}/", {"name": "Shop", "kind": "website"}, "member"),
    ("post", "/api/v1/sources/{source}/rotate_key/", None, "admin"),
    ("post", "/api/v1/destinations/", {"workspace": "{workspace}", "name": "Hook 2", "type": "webhook"}, "member"),
    ("patch", "/api/v1/destinations/{destination}/", {"enabled": True}, "member"),
    ("delete", "/api/v1/destinations/{destination}/", None, "member"),
    (
        "post",
        "/api/v1/subscriptions/",
        {"destination": "{destination}", "name": "All", "action": "send", "trigger": "true", "mapping": {}},
        "member",
    ),
    ("patch", "/api/v1/subscriptions/{subscription}/", {"enabled": False}, "member"),
    (
        "put",
        "/api/v1/subscriptions/{subscription}/",
        {"name": "All", "action": "send", "trigger": "true", "mapping": {}},
        "member",
    ),
    ("delete", "/api/v1/subscriptions/{subscription}/", None, "member"),
    ("post", "/api/v1/subscriptions/{subscription}/restore/", {"version": 1}, "member"),
    ("post", "/api/v1/destinations/{destination}/replay/", {"source": "{source}", "since": "2026-01-01"}, "member"),
    ("post", "/api/v1/dead-letters/{dead_letter}/redrive/", None, "member"),
    ("post", "/api/v1/dead-letters/redrive/", {"workspace": "{workspace}"}, "member"),
    *cases.gather("API_ROLE_CASES"),
]

# API routes that take a write method yet change nothing of a workspace: read-only members may call them.
NOT_WORKSPACE_WRITES = {
    ("workspace-list", "post"),  # creates a new workspace of the caller's own
    ("destination-preview", "post"),  # runs an event through the mappings, stores nothing
    ("subscription-what-if", "post"),  # compares mappings over stored events, stores nothing
    *cases.gather("API_NOT_WORKSPACE_WRITES"),
}


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def team(alice, alice_objects, make_user) -> dict[str, Any]:
    """One user of each role in alice's workspace; alice is its owner."""
    users = {"owner": alice}
    for role in ("read_only", "member", "admin"):
        users[role] = make_user(f"{role.replace('_', '-')}-of-acme")
        Membership.objects.create(workspace_id=alice_objects["workspace"], user=users[role], role=role)
    return users


def fill(value: Any, objects: dict[str, Any]) -> Any:
    """Placeholders replaced: "{source}" alone becomes the id itself, inside text it is formatted in."""
    if isinstance(value, dict):
        return {key: fill(item, objects) for key, item in value.items()}
    if isinstance(value, str):
        if value.startswith("{") and value.endswith("}") and value[1:-1] in objects:
            return objects[value[1:-1]]
        return value.format(**objects)
    return value


def state(objects: dict[str, Any]) -> tuple:
    """Everything of alice's workspace a refused request must leave as it was."""
    workspace = objects["workspace"]
    return (
        snapshot(objects),
        list(Membership.objects.filter(workspace_id=workspace).order_by("id").values_list("id", "role")),
        list(Invitation.objects.filter(workspace_id=workspace).order_by("id").values_list("id", "revoked_at")),
        list(ApiToken.objects.order_by("id").values_list("id", "revoked_at")),
        list(Subscription.objects.filter(destination__workspace_id=workspace).values_list("id", "name", "version")),
        AuditEntry.objects.filter(workspace_id=workspace).count(),
        Workspace.objects.count(),
    )


def below(least: str) -> list[str]:
    assert least in ROLES[1:], f"least role must be one of {ROLES[1:]}, not {least!r}"
    return ROLES[: ROLES.index(least)]


# --- Listed cases ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kwargs", "data", "least"), ROLE_CASES, ids=[f"{c[0]} {c[3]}" for c in ROLE_CASES])
def test_roles_dashboard_post_is_refused_below_the_least_role(client, team, alice_objects, name, kwargs, data, least):
    url = reverse(f"dashboard:{name}", kwargs=fill(kwargs, alice_objects))
    for role in below(least):
        client.force_login(team[role])
        before = state(alice_objects)
        response = client.post(url, fill(data, alice_objects))
        assert response.status_code == 403, f"{role} POSTing to {name}: {response.status_code}"
        assert state(alice_objects) == before, f"{role} POSTing to {name} changed something"
    client.force_login(team[least])
    response = client.post(url, fill(data, alice_objects))
    assert response.status_code not in (403, 404), f"{least} POSTing to {name}: {response.status_code}"


@pytest.mark.parametrize(
    ("method", "url", "body", "least"), API_ROLE_CASES, ids=[f"{c[0]} {c[1]} {c[3]}" for c in API_ROLE_CASES]
)
def test_roles_api_write_is_refused_below_the_least_role(team, alice_objects, method, url, body, least):
    url = url.format(**alice_objects)
    for role in below(least):
        client = api_client_for(team[role])
        before = state(alice_objects)
        response = call(client, method, url, fill(body, alice_objects))
        assert response.status_code == 403, f"{role}: {response.status_code} {response.content[:300]!r}"
        assert response.json()["code"] == "permission_denied"
        assert state(alice_objects) == before, f"{role}: {method} {url} changed something"
    response = call(api_client_for(team[least]), method, url, fill(body, alice_objects))
    assert response.status_code not in (403, 404), f"{least}: {response.status_code} {response.content[:300]!r}"


def test_roles_api_refusal_says_which_role_is_needed(team, alice_objects):
    response = api_client_for(team["member"]).post(f"/api/v1/sources/{alice_objects['source']}/rotate_key/")
    assert response.status_code == 403
    assert response.json()["message"] == (
        "Only owners and admins can rotate write keys; your role in this workspace is member."
    )


def call(client: Any, method: str, url: str, body: Any) -> Any:
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


# --- Every workspace page: a read-only member changes nothing --------------------------------------------


def workspace_patterns() -> dict[str, URLPattern]:
    found: dict[str, URLPattern] = {}
    for entry in dashboard.urls.urlpatterns:
        if isinstance(entry, URLPattern) and entry.name and "<slug:slug>" in str(entry.pattern):
            found.setdefault(entry.name, entry)
    return found


def url_kwargs(name: str, pattern: URLPattern, objects: dict[str, Any]) -> dict[str, Any]:
    """The kwargs of the route's own isolation or role case under alice's slug; else `slug` and `<kind>_id`
    from the placeholder objects; anything else is a test to extend."""
    for case_name, _, kwargs in DASHBOARD_CASES:
        if case_name == name and kwargs.get("slug") == "{slug}":
            return fill(kwargs, objects)
    for case_name, kwargs, *_ in ROLE_CASES:
        if case_name == name:
            return fill(kwargs, objects)
    kwargs = {}
    for kwarg in pattern.pattern.converters:
        kind = kwarg.removesuffix("_id")
        if kind not in objects:
            pytest.fail(
                f"dashboard route {name!r} has <{kwarg}>: define objects(source, objects) in tests/cases/<area>.py "
                f"returning {{{kind!r}: <id of an object of alice's workspace>}}"
            )
        kwargs[kwarg] = objects[kind]
    return kwargs


POST_DATA = {name: data for name, _, data, _ in ROLE_CASES}

# Workspace pages that take a POST yet change nothing (previews): read-only members may use them.
READ_ONLY_POSTS = set(cases.gather("READ_ONLY_POSTS"))


@pytest.mark.parametrize("name", sorted(workspace_patterns()))
def test_roles_read_only_member_changes_nothing_through_any_page(client, team, alice_objects, name):
    pattern = workspace_patterns()[name]
    url = reverse(f"dashboard:{name}", kwargs=url_kwargs(name, pattern, alice_objects))
    client.force_login(team["read_only"])
    before = state(alice_objects)
    response = client.post(url, fill(POST_DATA.get(name, {}), alice_objects))
    if name in READ_ONLY_POSTS:
        allowed = {200, 403, 405}
    elif name in POST_DATA:
        allowed = {403, 405}
    else:  # a page that only shows something takes no POST at all
        allowed = {405}
    assert response.status_code in allowed, (
        f"a read-only member POSTing to {name} got {response.status_code}: refuse it (PermissionDenied) or allow "
        f"only GET (require_safe); a POST page needs a ROLE_CASES line, a POST that changes nothing (a preview) "
        f"goes in READ_ONLY_POSTS in tests/cases"
    )
    assert state(alice_objects) == before


def test_roles_read_only_member_sees_no_controls_on_the_people_pages(client, team, alice_objects):
    client.force_login(team["read_only"])
    slug = alice_objects["slug"]
    members = client.get(reverse("dashboard:members", args=[slug])).content.decode()
    assert "alice" in members and "read-only-of-acme" in members
    assert "<select" not in members and "Remove</button>" not in members
    assert "Create invitation link" not in members and "dave@example.com" not in members
    settings_page = client.get(reverse("dashboard:workspace-settings", args=[slug])).content.decode()
    assert "Rename</button>" not in settings_page and "Delete workspace" not in settings_page
    client.force_login(team["admin"])
    settings_page = client.get(reverse("dashboard:workspace-settings", args=[slug])).content.decode()
    assert "Rename</button>" in settings_page and "Delete workspace" not in settings_page


# --- Every API route that writes: a read-only member is refused ------------------------------------------


def api_write_routes() -> list[tuple[str, str, type, str]]:
    """(route name, method, viewset class, action) for every write method of the router's routes."""
    found = {}
    for entry in router.urls:
        callback = getattr(entry, "callback", None)
        actions = getattr(callback, "actions", None)
        if not entry.name or not actions:
            continue
        for method, action in actions.items():
            if method in WRITE_METHODS:
                found[(entry.name, method)] = (entry.name, method, callback.cls, action)
    return sorted(found.values(), key=lambda row: row[:2])


def api_call_for(route: str, method: str) -> tuple[str, Any]:
    for case_route, case_method, url, body in API_OBJECT_CASES:
        if (case_route, case_method) == (route, method):
            return url, body
    for case_method, url, body, _ in API_ROLE_CASES:
        if case_method == method and resolve(url.split("?")[0].format_map(_AnyId())).url_name == route:
            return url, body
    pytest.fail(
        f"API route {route!r} takes {method.upper()}: add an API_ROLE_CASES line (method, URL, JSON body, least role) "
        f"in tests/cases/<area>.py, or API_NOT_WORKSPACE_WRITES if it changes nothing of a workspace"
    )


class _AnyId(dict):
    def __missing__(self, key: str) -> str:
        return "1"


@pytest.mark.parametrize(
    ("route", "method", "viewset", "action"), api_write_routes(), ids=[f"{r[1]} {r[0]}" for r in api_write_routes()]
)
def test_roles_read_only_member_is_refused_by_every_api_write(team, alice_objects, route, method, viewset, action):
    if not issubclass(viewset, WorkspaceScopedViewSet):
        pytest.skip(f"{viewset.__name__} is not workspace data (personal tokens, the type catalog)")
    if (route, method) in NOT_WORKSPACE_WRITES:
        pytest.skip("changes nothing of a workspace")
    rule = viewset.rules.get(action)
    if rule is not None:
        assert Role.READ_ONLY not in rule.roles, f"{viewset.__name__}.rules[{action!r}] lets read-only members write"
    url, body = api_call_for(route, method)
    client = api_client_for(team["read_only"])
    before = state(alice_objects)
    response = call(client, method, url.format(**alice_objects), fill(body, alice_objects))
    assert response.status_code == 403, f"{method} {url}: {response.status_code} {response.content[:300]!r}"
    assert response.json()["code"] == "permission_denied"
    assert state(alice_objects) == before


def test_roles_every_api_write_route_is_checked():
    """Guards the generic test above: it must see the routes, not an empty list."""
    routes = {(route, method) for route, method, *_ in api_write_routes()}
    assert {("source-rotate-key", "post"), ("member-detail", "patch"), ("invitation-list", "post")} <= routes


def test_roles_route_names_of_dashboard_are_all_checked():
    scoped = {name for name, pattern in route_names(dashboard.urls.urlpatterns) if "<slug:slug>" in pattern}
    assert scoped == set(workspace_patterns())
