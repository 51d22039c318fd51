"""The Django admin: every model's pages load for a superuser; pipeline records are read-only."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from cdp.core.models import ApiToken, Destination, Source
from cdp.processing.models import Event, RejectedMessage
from cdp.tracking.models import IntakeRequest
from tests.support.data import make_event, make_rejected

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)
READ_ONLY = [IntakeRequest, Event, RejectedMessage]
OWN_APPS = {"core", "tracking", "processing"}  # auth's admins are Django's; other apps test their own


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pass-for-tests-1")
    client.force_login(user)
    return client


@pytest.fixture
def rows(alice, source):
    """At least one row of every model shown in the admin."""
    body = json.dumps({"batch": [{"type": "track", "event": "Signed Up", "userId": "u-1"}]}).encode()
    return {
        IntakeRequest: IntakeRequest.objects.create(
            source=source, received_at=timezone.now(), endpoint="batch", body=body
        ),
        Event: make_event(source, user_id="u-1"),
        RejectedMessage: make_rejected(source),
        Destination: Destination.objects.create(workspace=source.workspace, name="Hook", type="webhook"),
        ApiToken: ApiToken.issue(alice)[0],
    }


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_admin_changelist_loads_with_search_for_superuser(admin_client, rows, model):
    response = admin_client.get(admin_url(model, "changelist"))
    assert response.status_code == 200
    assert model._meta.verbose_name_plural.lower() in response.content.decode().lower()
    assert admin_client.get(admin_url(model, "changelist"), {"q": "acme"}).status_code == 200


@pytest.mark.parametrize(
    "model", [m for m in REGISTERED if m._meta.app_label in OWN_APPS], ids=lambda model: model._meta.label
)
def test_admin_every_model_has_list_display_search_and_filters(model):
    model_admin = admin.site._registry[model]
    assert model_admin.list_display != ("__str__",)
    assert model_admin.search_fields
    assert model_admin.list_filter


def test_admin_app_index_lists_pipeline_records(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()
    for model in READ_ONLY:
        assert admin_url(model, "changelist") in page


@pytest.mark.parametrize("model", READ_ONLY, ids=lambda model: model._meta.label)
def test_admin_pipeline_record_page_shows_it_without_save_or_delete(admin_client, rows, model):
    obj = rows[model]
    response = admin_client.get(admin_url(model, "change", obj.pk))
    page = response.content.decode()
    assert response.status_code == 200
    assert 'name="_save"' not in page
    assert admin_url(model, "delete", obj.pk) not in page


@pytest.mark.parametrize("model", READ_ONLY, ids=lambda model: model._meta.label)
def test_admin_pipeline_records_cannot_be_added_changed_or_deleted(admin_client, rows, model):
    obj = rows[model]
    assert admin_client.get(admin_url(model, "add")).status_code == 403
    assert admin_client.post(admin_url(model, "change", obj.pk), {}).status_code == 403
    assert admin_client.post(admin_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    changelist = admin_client.post(
        admin_url(model, "changelist"), {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"}
    )
    assert changelist.status_code in (200, 302)
    assert model.objects.filter(pk=obj.pk).exists()


def test_admin_intake_request_shows_its_body_decoded(admin_client, rows):
    intake = rows[IntakeRequest]
    page = admin_client.get(admin_url(IntakeRequest, "change", intake.pk)).content.decode()
    assert "Signed Up" in page
    changelist = admin_client.get(admin_url(IntakeRequest, "changelist")).content.decode()
    assert str(len(intake.body)) in changelist  # the size column


def test_admin_event_shows_its_payload(admin_client, rows):
    event = rows[Event]
    page = admin_client.get(admin_url(Event, "change", event.pk)).content.decode()
    assert event.message_id in page


def test_admin_event_search_finds_by_user_id(admin_client, rows, source):
    make_event(source, user_id="someone-else")
    page = admin_client.get(admin_url(Event, "changelist"), {"q": "u-1"}).content.decode()
    assert "u-1" in page and "someone-else" not in page


def test_admin_rotate_write_keys_action_gives_new_keys(admin_client, source):
    old_key = source.write_key
    response = admin_client.post(
        admin_url(Source, "changelist"), {"action": "rotate_write_keys", "_selected_action": [source.pk]}, follow=True
    )
    source.refresh_from_db()
    assert source.write_key != old_key
    assert "Rotated 1 write key(s)." in response.content.decode()


def test_admin_revoke_tokens_action_stops_the_token(admin_client, alice):
    token, secret = ApiToken.issue(alice)
    admin_client.post(admin_url(ApiToken, "changelist"), {"action": "revoke_tokens", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_admin_api_tokens_cannot_be_added_by_hand(admin_client):
    assert admin_client.get(admin_url(ApiToken, "add")).status_code == 403
