"""The destination framework: types as data, presets, settings with secrets, versions and diffs."""

import pytest

from cdp.destinations import registry
from cdp.destinations.configuration import SECRET_MASK, clean_settings, public_settings
from cdp.destinations.diff import MISSING, json_diff
from cdp.destinations.engine import mapping_errors, run, trigger_error
from cdp.destinations.models import Subscription
from cdp.destinations.samples import SAMPLES, sample_event
from cdp.destinations.services import InvalidConfiguration, create_destination, restore_version, save_subscription

ALL_TYPES = registry.all_types()


@pytest.mark.parametrize("dtype", ALL_TYPES, ids=lambda t: t.key)
def test_registry_presets_are_valid(dtype):
    assert dtype.presets, f"{dtype.key} has no presets"
    for preset in dtype.presets:
        assert dtype.action(preset.action) is not None
        assert trigger_error(preset.trigger) is None
        assert mapping_errors(preset.mapping) == []


@pytest.mark.parametrize("dtype", ALL_TYPES, ids=lambda t: t.key)
@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_registry_presets_resolve_against_every_sample(dtype, kind):
    event = sample_event(kind)
    for preset in dtype.presets:
        outcome = run(preset.trigger, preset.mapping, event)
        assert outcome.errors == []
        if outcome.matched:
            action = dtype.action(preset.action)
            for field in action.fields:
                if field.required:
                    assert field.key in outcome.payload, f"{preset.name}: {field.key} missing for {kind}"


@pytest.mark.parametrize("dtype", ALL_TYPES, ids=lambda t: t.key)
def test_registry_type_declares_what_a_form_needs(dtype):
    assert dtype.name and dtype.description and dtype.category
    keys = [s.key for s in dtype.settings]
    assert len(keys) == len(set(keys))
    for action in dtype.actions:
        assert action.name and action.description
        assert len({f.key for f in action.fields}) == len(action.fields)


def test_webhook_default_payload_is_the_whole_event():
    webhook = registry.get("webhook")
    preset = webhook.presets[0]
    event = sample_event("track")
    outcome = run(preset.trigger, preset.mapping, event)
    assert outcome.matched
    assert outcome.payload == {"payload": event}


def test_settings_required_and_typed_fields_are_checked():
    webhook = registry.get("webhook")
    _, errors = clean_settings(webhook, {"headers": "X-Key: 1", "colour": "blue"})
    assert errors == {
        "url": "is required",
        "headers": "must be a JSON object",
        "colour": "is not a setting of this destination type",
    }
    _, errors = clean_settings(webhook, {"url": "ftp://example.com"})
    assert errors == {"url": "must be an http:// or https:// URL"}


def test_settings_secret_is_kept_when_left_out_or_masked_and_never_shown():
    webhook = registry.get("webhook")
    stored, errors = clean_settings(webhook, {"url": "https://hooks.example.com/in", "signing_secret": "s3cr3t"})
    assert errors == {}
    assert stored["signing_secret"] == "s3cr3t"
    again, _ = clean_settings(webhook, {"url": "https://hooks.example.com/v2", "signing_secret": SECRET_MASK}, stored)
    assert again["signing_secret"] == "s3cr3t"
    assert again["url"] == "https://hooks.example.com/v2"
    shown = public_settings(webhook, again)
    assert shown["signing_secret"] == SECRET_MASK
    assert "s3cr3t" not in str(shown)


def test_json_diff_names_each_changed_field():
    before = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "gone": True}
    after = {"a": 1, "b": {"c": [1, 3], "d": "y"}, "new": None}
    assert json_diff(before, after) == [
        {"path": "b.c[1]", "before": 2, "after": 3},
        {"path": "b.d", "before": "x", "after": "y"},
        {"path": "gone", "before": True, "after": MISSING},
        {"path": "new", "before": MISSING, "after": None},
    ]
    assert json_diff({"n": 1}, {"n": 1.0}) == [{"path": "n", "before": 1, "after": 1.0}]
    assert json_diff(before, before) == []


@pytest.fixture
def webhook(alice_workspace, alice):
    return create_destination(
        alice_workspace, name="Hook", type_key="webhook", settings={"url": "https://hooks.example.com/in"}, user=alice
    )


def test_create_destination_adds_a_subscription_per_preset(webhook):
    presets = registry.get("webhook").presets
    subscriptions = list(webhook.subscriptions.all())
    assert [(s.name, s.action, s.trigger, s.mapping) for s in subscriptions] == [
        (p.name, p.action, p.trigger, p.mapping) for p in presets
    ]
    assert [s.versions.count() for s in subscriptions] == [1] * len(presets)


def test_create_destination_refuses_bad_settings(alice_workspace):
    with pytest.raises(InvalidConfiguration) as caught:
        create_destination(alice_workspace, name="Hook", type_key="webhook", settings={})
    assert caught.value.errors == {"settings": {"url": "is required"}}


def test_save_subscription_keeps_versions_and_restore_brings_one_back(webhook, alice):
    subscription = webhook.subscriptions.get()
    original = (subscription.trigger, subscription.mapping)
    save_subscription(subscription, {"trigger": 'event = "Order Completed"'}, alice)
    save_subscription(subscription, {"mapping": {"payload": {"order": {"@path": "$.properties.order_id"}}}}, alice)
    assert subscription.version == 3
    assert list(subscription.versions.values_list("version", flat=True)) == [3, 2, 1]
    restore_version(subscription, 1, alice)
    subscription.refresh_from_db()
    assert subscription.version == 4
    assert (subscription.trigger, subscription.mapping) == original


def test_save_subscription_refuses_invalid_trigger_and_mapping(webhook):
    subscription = webhook.subscriptions.get()
    with pytest.raises(InvalidConfiguration) as caught:
        save_subscription(subscription, {"trigger": 'event = "unclosed', "mapping": {"payload": {"@nope": 1}}})
    assert set(caught.value.errors) == {"trigger", "mapping"}
    subscription.refresh_from_db()
    assert subscription.version == 1
    assert Subscription.objects.get(pk=subscription.pk).trigger == registry.get("webhook").presets[0].trigger


def test_save_subscription_requires_the_actions_required_fields(webhook):
    subscription = webhook.subscriptions.get()
    with pytest.raises(InvalidConfiguration) as caught:
        save_subscription(subscription, {"mapping": {"extra": 1}})
    assert caught.value.errors == {"mapping": ["extra: not a field of Send Event", "payload: is required"]}
