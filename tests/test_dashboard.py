"""Dashboard pages through the Django test client: login, what each page shows, roles, query counts."""

from __future__ import annotations

import html
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from cdp.core.models import Destination, Membership, Role, Source
from dashboard import snippets
from tests.support.data import make_event, make_events

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice_client(client, alice, alice_workspace):
    client.force_login(alice)
    return client


@pytest.fixture
def client_as(client, make_user, alice_workspace):
    """The test client logged in as a new user holding `role` in alice's workspace."""

    def login(role: str):
        user = make_user(f"user-{role}")
        Membership.objects.create(workspace=alice_workspace, user=user, role=role)
        client.force_login(user)
        return client

    return login


def text(response) -> str:
    return html.unescape(response.content.decode())


def count_stored_events() -> None:
    """The overview's figures come from aggregates the processor keeps; events made directly in the database
    are counted the way an operator would count events stored before the aggregates existed."""
    call_command("rebuild_insights", stdout=io.StringIO())


def page_urls(source: Source) -> dict[str, str]:
    slug = source.workspace.slug
    return {
        "home": reverse("dashboard:home"),
        "workspace": reverse("dashboard:workspace", args=[slug]),
        "sources": reverse("dashboard:sources", args=[slug]),
        "source-new": reverse("dashboard:source-new", args=[slug]),
        "source": reverse("dashboard:source", args=[slug, source.pk]),
    }


# --- Login -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["home", "workspace", "sources", "source-new", "source"])
def test_dashboard_pages_require_login(client, source, page):
    url = page_urls(source)[page]
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('dashboard:login')}?next={url}"


def test_login_with_right_password_lands_on_the_only_workspace(client, alice, alice_workspace):
    response = client.post(
        reverse("dashboard:login"), {"username": "alice", "password": "pass-for-tests-1"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("dashboard:workspace", args=["acme"])
    assert "<h1>Acme</h1>" in text(response)


def test_login_with_wrong_password_says_so(client, alice):
    response = client.post(reverse("dashboard:login"), {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in text(response)
    assert 'value="alice"' in text(response)


def test_login_page_sends_a_logged_in_user_on(alice_client):
    assert alice_client.get(reverse("dashboard:login")).status_code == 302


def test_logout_ends_the_session(alice_client):
    alice_client.post(reverse("dashboard:logout"))
    assert alice_client.get(reverse("dashboard:home")).status_code == 302


# --- Home ------------------------------------------------------------------------------------------


def test_home_lists_every_workspace_with_role_and_source_count(client, alice, source, make_workspace):
    make_workspace("initech", owner=alice, role=Role.READ_ONLY)
    client.force_login(alice)
    page = text(client.get(reverse("dashboard:home")))
    assert "Acme" in page and "Initech" in page
    assert "1 source" in page and "0 sources" in page
    assert "Read-only" in page


def test_home_without_a_workspace_explains_how_to_get_one(client, bob):
    client.force_login(bob)
    page = text(client.get(reverse("dashboard:home")))
    assert "You are not in a workspace yet" in page
    assert "create_source" in page and "--owner bob" in page


# --- Workspace and sources -------------------------------------------------------------------------


def test_workspace_page_shows_sources_and_events_of_the_last_day(alice_client, source):
    backend = Source.objects.create(workspace=source.workspace, name="Backend", enabled=False)
    make_events(source, 3)
    make_event(backend, received_at=timezone.now() - timedelta(days=2))
    count_stored_events()
    response = alice_client.get(reverse("dashboard:workspace", args=["acme"]))
    page = text(response)
    assert response.context["events_24h"] == 3
    assert 'data-testid="events-24h">3<' in page
    assert 'data-testid="source-count">2</span> sources, 1 enabled' in page
    assert "Website" in page and "Backend" in page and "disabled" in page


def test_workspace_page_labels_latest_events(alice_client, source):
    make_event(source, "track", event="Order Completed", user_id="u-42")
    page_view = make_event(source, "page", anonymous_id="anon-7")
    page_view.payload = {"type": "page", "name": "Pricing"}
    page_view.save()
    page = text(alice_client.get(reverse("dashboard:workspace", args=["acme"])))
    assert "Order Completed" in page and "u-42" in page
    assert "Pricing" in page and "anon-7" in page


def test_workspace_page_without_sources_invites_adding_one(alice_client, alice_workspace):
    page = text(alice_client.get(reverse("dashboard:workspace", args=["acme"])))
    assert "Add your first source" in page
    assert reverse("dashboard:source-new", args=["acme"]) in page


def test_workspace_page_without_events_says_where_to_start(alice_client, source):
    page = text(alice_client.get(reverse("dashboard:workspace", args=["acme"])))
    assert "No events yet" in page


def test_workspace_page_for_read_only_user_offers_no_add_button(client_as, alice_workspace):
    page = text(client_as(Role.READ_ONLY).get(reverse("dashboard:workspace", args=["acme"])))
    assert "Add your first source" in page
    assert reverse("dashboard:source-new", args=["acme"]) not in page
    assert "Your role is read-only" in page


def test_sources_page_lists_sources_with_links(alice_client, source):
    Source.objects.create(workspace=source.workspace, name="Backend", kind="server")
    page = text(alice_client.get(reverse("dashboard:sources", args=["acme"])))
    assert page.index("Backend") < page.index("Website")
    assert reverse("dashboard:source", args=["acme", source.pk]) in page


# --- Adding a source -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.MEMBER])
def test_source_new_creates_the_source_and_shows_it(client_as, alice_workspace, role):
    client = client_as(role)
    response = client.post(
        reverse("dashboard:source-new", args=["acme"]), {"name": " Shop ", "kind": "website"}, follow=True
    )
    created = Source.objects.get(workspace=alice_workspace)
    assert (created.name, created.kind) == ("Shop", "website")
    assert response.redirect_chain[-1][0] == reverse("dashboard:source", args=["acme", created.pk])
    assert created.write_key in text(response)
    assert "Source “Shop” created" in text(response)


def test_source_new_with_a_taken_name_shows_the_error(alice_client, source):
    response = alice_client.post(reverse("dashboard:source-new", args=["acme"]), {"name": "Website", "kind": "server"})
    assert response.status_code == 200
    assert "already has a source with that name" in text(response)
    assert Source.objects.count() == 1


def test_source_new_is_refused_for_read_only(client_as, alice_workspace):
    client = client_as(Role.READ_ONLY)
    assert client.get(reverse("dashboard:source-new", args=["acme"])).status_code == 403
    response = client.post(reverse("dashboard:source-new", args=["acme"]), {"name": "Shop", "kind": "website"})
    assert response.status_code == 403
    assert "Read-only members cannot add sources" in text(response)
    assert not Source.objects.exists()


# --- Source page -----------------------------------------------------------------------------------


def test_source_page_shows_write_key_and_working_snippets(alice_client, source):
    response = alice_client.get(reverse("dashboard:source", args=["acme", source.pk]))
    page = text(response)
    assert f'data-testid="write-key">{source.write_key}<' in page
    origin = "http://testserver"
    for make in (snippets.browser_snippet, snippets.python_snippet, snippets.node_snippet, snippets.curl_snippet):
        assert make(source, origin) in page  # exactly as the snippet module writes it, key and address filled in
    assert f'analytics._writeKey = "{source.write_key}"' in page
    assert f'curl {origin}/v1/track \\\n  -u "{source.write_key}:"' in page


def test_source_page_counts_recent_events_and_lists_them(alice_client, source):
    make_events(source, 4, event="Signed Up")
    count_stored_events()
    page = text(alice_client.get(reverse("dashboard:source", args=["acme", source.pk])))
    assert 'data-testid="source-events-24h">4<' in page
    assert page.count("Signed Up") == 4
    assert "last event received just now" in page


def test_source_page_without_events_waits_for_the_first(alice_client, source):
    page = text(alice_client.get(reverse("dashboard:source", args=["acme", source.pk])))
    assert "Waiting for the first event" in page


def test_source_page_warns_when_the_source_is_disabled(alice_client, source):
    source.enabled = False
    source.save()
    page = text(alice_client.get(reverse("dashboard:source", args=["acme", source.pk])))
    assert "This source is disabled" in page


@pytest.mark.parametrize(
    ("role", "sees_button"), [(Role.OWNER, True), (Role.ADMIN, True), (Role.MEMBER, False), (Role.READ_ONLY, False)]
)
def test_source_page_shows_rotate_button_only_to_owners_and_admins(client_as, source, role, sees_button):
    page = text(client_as(role).get(reverse("dashboard:source", args=["acme", source.pk])))
    assert ("Rotate write key" in page) is sees_button
    assert source.write_key in page  # everyone who can read the source sees its key


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_rotate_key_by_owner_or_admin_gives_a_new_key(client_as, source, role):
    old_key = source.write_key
    response = client_as(role).post(reverse("dashboard:rotate-key", args=["acme", source.pk]), follow=True)
    source.refresh_from_db()
    assert source.write_key != old_key
    page = text(response)
    assert source.write_key in page and old_key not in page
    assert "The write key was rotated" in page


@pytest.mark.parametrize("role", [Role.MEMBER, Role.READ_ONLY])
def test_rotate_key_is_refused_for_member_and_read_only(client_as, source, role):
    old_key = source.write_key
    response = client_as(role).post(reverse("dashboard:rotate-key", args=["acme", source.pk]))
    assert response.status_code == 403
    assert "Only owners and admins" in text(response)
    source.refresh_from_db()
    assert source.write_key == old_key


def test_rotate_key_needs_a_post(alice_client, source):
    old_key = source.write_key
    assert alice_client.get(reverse("dashboard:rotate-key", args=["acme", source.pk])).status_code == 405
    source.refresh_from_db()
    assert source.write_key == old_key


def test_rotate_key_needs_the_csrf_token(alice, source):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    old_key = source.write_key
    assert client.post(reverse("dashboard:rotate-key", args=["acme", source.pk])).status_code == 403
    source.refresh_from_db()
    assert source.write_key == old_key


def test_unknown_page_is_a_friendly_404(alice_client):
    response = alice_client.get("/no/such/page/")
    assert response.status_code == 404
    assert "Back to your workspaces" in text(response)


# --- Query counts ----------------------------------------------------------------------------------


@pytest.fixture
def busy_workspace(alice_workspace, make_workspace, alice):
    """Many sources, destinations and events, so a query per row would show."""
    make_workspace("initech", owner=alice)
    sources = Source.objects.bulk_create(
        Source(workspace=alice_workspace, name=f"Source {n:02}", write_key=f"key-{n:02}") for n in range(40)
    )
    for source in sources[:5]:
        make_events(source, 60, user_id="u-1")
    Destination.objects.bulk_create(
        Destination(workspace=alice_workspace, name=f"Hook {n:02}", type="webhook") for n in range(20)
    )
    count_stored_events()
    return sources[0]


# What each page needs whatever the number of rows. The workspace page also reads the aggregates (the sources'
# events of the last day, events per hour for the chart, monthly users) and the delivery health of all its
# destinations at once (5 queries, the same as the delivery pages' metrics).
QUERY_BUDGET = {"home": 6, "workspace": 14, "sources": 6, "source-new": 6, "source": 6}


@pytest.mark.parametrize("page", ["home", "workspace", "sources", "source-new", "source"])
def test_dashboard_page_queries_do_not_grow_with_rows(
    alice_client, busy_workspace, page, django_assert_max_num_queries
):
    url = page_urls(busy_workspace)[page]
    with django_assert_max_num_queries(QUERY_BUDGET[page]):
        response = alice_client.get(url)
    assert response.status_code == 200
