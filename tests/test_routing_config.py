"""The routing configuration a processing process keeps between batches: every change of sources,
destinations, their connections and subscriptions takes effect with the next batch, however it was
made (save(), QuerySet.update(), m2m changes, deletes), on PostgreSQL and SQLite alike."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction

from cdp.core.models import Destination, Source
from cdp.delivery import routing
from cdp.delivery.models import Delivery, FilteredCount
from cdp.destinations.models import Subscription
from cdp.insights import observe
from cdp.processing import config_version
from tests.support.delivery import ingest, track, webhook

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_lanes")]

NOWHERE = "http://127.0.0.1:9/hook"  # routing never sends


@pytest.fixture(autouse=True)
def _cache_on(settings: Any) -> Iterator[None]:
    """The cache on, empty; and nothing a committed batch taught this process leaks to later tests."""
    settings.CDP_ROUTING_CACHE = True
    routing.forget_config()
    yield
    routing.forget_config()
    observe.forget()


@pytest.fixture
def web(make_workspace) -> Source:
    return Source.objects.create(workspace=make_workspace("acme"), name="Website", kind="website")


@pytest.fixture
def hook(web: Source) -> Destination:
    return webhook(web.workspace, NOWHERE, name="Hook")


def delivered() -> Counter[str]:
    return Counter(Delivery.objects.values_list("destination__name", flat=True))


def config_queries_of_one_event(source: Source) -> list[str]:
    """The statements reading sources, destinations or subscriptions while one event is processed."""
    seen: list[str] = []

    def record(execute: Any, sql: str, *args: Any) -> Any:
        seen.append(sql)
        return execute(sql, *args)

    with connection.execute_wrapper(record):
        ingest(source, track())
    tables = ('FROM "core_source"', 'FROM "core_destination"', 'FROM "destinations_subscription"')
    return [sql for sql in seen if any(table in sql for table in tables)]


def test_unchanged_configuration_is_not_read_again(web, hook, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # what a committed batch teaches the process
        ingest(web, track())

    assert config_queries_of_one_event(web) == []
    assert delivered() == {"Hook": 2}


def test_destination_disabled_by_queryset_update_gets_nothing_from_the_next_event(web, hook):
    ingest(web, track())
    Destination.objects.filter(pk=hook.pk).update(enabled=False)
    ingest(web, track())
    Destination.objects.filter(pk=hook.pk).update(enabled=True)
    ingest(web, track())

    assert delivered() == {"Hook": 2}
    assert FilteredCount.objects.get(destination=hook).reason == routing.DISABLED


def test_new_destination_and_new_subscription_get_the_next_event(web, hook):
    ingest(web, track())
    webhook(web.workspace, NOWHERE, name="Other")
    ingest(web, track())
    [preset] = hook.subscriptions.all()
    Subscription.objects.create(
        destination=hook, name="Second", action=preset.action, trigger=preset.trigger, mapping=preset.mapping
    )
    ingest(web, track())

    assert delivered() == {"Hook": 4, "Other": 2}


def test_subscription_edits_take_effect_at_once(web, hook):
    ingest(web, track())
    Subscription.objects.filter(destination=hook).update(trigger='event = "Signed Up"')
    ingest(web, track())
    ingest(web, track(event="Signed Up"))
    Subscription.objects.filter(destination=hook).update(enabled=False)
    ingest(web, track(event="Signed Up"))

    assert delivered() == {"Hook": 2}


def test_connecting_sources_and_new_sources_take_effect_at_once(web, hook):
    app = Source.objects.create(workspace=web.workspace, name="App", kind="mobile")
    ingest(app, track())
    hook.sources.set([web])
    ingest(app, track())
    ingest(web, track())
    hook.sources.clear()
    ingest(app, track())

    assert delivered() == {"Hook": 3}


def test_deleted_destination_gets_nothing(web, hook):
    ingest(web, track())
    Destination.objects.filter(pk=hook.pk).delete()
    ingest(web, track())

    assert not Delivery.objects.exists()  # the cascade took the first one; the second was never made


def test_version_changes_with_every_change_and_never_comes_back_after_a_rollback(hook):
    before = config_version.current()
    assert before is not None
    with pytest.raises(RuntimeError), transaction.atomic():
        Destination.objects.filter(pk=hook.pk).update(enabled=False)
        taken = config_version.current()
        assert taken != before
        raise RuntimeError("roll back")
    assert config_version.current() == before
    Destination.objects.filter(pk=hook.pk).update(enabled=False)
    assert config_version.current() not in (before, taken)


def test_without_its_triggers_routing_reads_the_configuration_every_time(web, hook):
    ingest(web, track())
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("DROP TRIGGER cdp_routing_changed ON core_destination")
        else:
            cursor.execute("DROP TRIGGER cdp_routing_changed_core_destination_update")
    assert config_version.current() is None
    Destination.objects.filter(pk=hook.pk).update(enabled=False)
    ingest(web, track())
    assert delivered() == {"Hook": 1}

    config_version.install()  # what every migrate does
    assert config_version.current() is not None
    Destination.objects.filter(pk=hook.pk).update(enabled=True)
    ingest(web, track())
    assert delivered() == {"Hook": 2}


def test_routing_reads_the_configuration_every_time_with_the_cache_off(web, hook, settings):
    settings.CDP_ROUTING_CACHE = False
    ingest(web, track())

    assert config_queries_of_one_event(web)
    assert delivered() == {"Hook": 2}
