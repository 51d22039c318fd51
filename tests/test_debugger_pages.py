"""The debugger and X-ray pages as plain HTTP: what they link to and whom they show what."""

from __future__ import annotations

import pytest

from cdp.core.models import Destination, Membership, Role
from tests.support.data import make_event

pytestmark = pytest.mark.django_db


def test_debugger_index_links_every_source_and_destination(client, alice, source):
    hook = Destination.objects.create(workspace=source.workspace, name="Hook", type="webhook")
    client.force_login(alice)

    page = client.get("/w/acme/debugger/").content.decode()

    assert f'href="/w/acme/sources/{source.pk}/debugger/"' in page
    assert f'href="/w/acme/destinations/{hook.pk}/debugger/"' in page
    assert 'aria-current="page">Debugger</a>' in page


def test_debugger_page_of_a_source_names_its_stream_and_write_key(client, make_user, source):
    viewer = make_user("vera")
    Membership.objects.create(workspace=source.workspace, user=viewer, role=Role.READ_ONLY)
    client.force_login(viewer)

    page = client.get(f"/w/acme/sources/{source.pk}/debugger/").content.decode()

    assert f'data-ws="/ws/debug/sources/{source.pk}/"' in page
    assert f'data-write-key="{source.write_key}"' in page
    assert 'data-origin="http://testserver"' in page
    assert "debugger.js" in page


def test_debugger_page_of_a_destination_names_its_stream(client, alice, source):
    hook = Destination.objects.create(workspace=source.workspace, name="Hook", type="webhook")
    client.force_login(alice)

    page = client.get(f"/w/acme/destinations/{hook.pk}/debugger/").content.decode()

    assert f'data-ws="/ws/debug/destinations/{hook.pk}/"' in page
    assert 'data-write-key=""' in page


def test_debugger_pages_need_a_login(client, source):
    response = client.get(f"/w/acme/sources/{source.pk}/debugger/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_xray_lookup_opens_the_only_match(client, alice, source):
    event = make_event(source, message_id="look-1")
    client.force_login(alice)

    response = client.get("/w/acme/xray/", {"message_id": "look-1"})

    assert response.status_code == 302 and response["Location"] == f"/w/acme/events/{event.pk}/xray/"
    assert client.get(response["Location"]).status_code == 200


def test_xray_lookup_says_when_nothing_matches(client, alice, source):
    client.force_login(alice)
    page = client.get("/w/acme/xray/", {"message_id": "never-sent"}).content.decode()
    assert 'data-testid="xray-not-found"' in page and "never-sent" in page


def test_xray_lookup_in_own_workspace_finds_nothing_of_another(client, bob, bob_workspace, source):
    make_event(source, message_id="alice-secret")
    client.force_login(bob)

    page = client.get(f"/w/{bob_workspace.slug}/xray/", {"message_id": "alice-secret"}).content.decode()

    assert 'data-testid="xray-not-found"' in page
