"""Drain leases: which drain may send a destination's deliveries. One row per destination in the
database (`DrainLease`), taken when a drain starts, renewed while it runs and given back when it ends.

The Redis lane decides which task drains a destination; this lease makes that safe when Redis cannot
be trusted (flushed, down, or a lane that ran out while its holder still sends): a second drain never
sends what the first holds. Keeping it per destination, not per delivery, spares the database a
write of every claimed row. A lease ends at `until`, and on PostgreSQL as soon as its holder's
connection is gone (a killed worker's server process exits with it), so work never waits long for a
dead holder."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from cdp.delivery.models import DrainLease

# Free when its time has passed, when it is already ours, or (PostgreSQL) when the connection that took
# it is gone.
_TAKE_PG = """
INSERT INTO cdp_delivery_lease AS l (destination_id, holder, backend, until)
VALUES (%s, %s, pg_backend_pid(), %s)
ON CONFLICT (destination_id) DO UPDATE SET holder = excluded.holder, backend = excluded.backend, until = excluded.until
WHERE l.until < %s OR l.holder = excluded.holder
   OR NOT EXISTS (SELECT 1 FROM pg_stat_activity AS a WHERE a.pid = l.backend)
RETURNING holder
"""


class Lease:
    def __init__(self, destination_id: int, seconds: float) -> None:
        self.destination_id = destination_id
        self.seconds = seconds
        self.holder = uuid.uuid4().hex
        self._renew_at = 0.0

    def take(self) -> bool:
        """Take the lease if it is free (or already ours); False while another drain holds it."""
        self._renew_at = time.monotonic() + self.seconds / 3
        now = timezone.now()
        until = now + timedelta(seconds=self.seconds)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(_TAKE_PG, [self.destination_id, self.holder, until, now])
                return cursor.fetchone() is not None
        free = Q(until__lt=now) | Q(holder=self.holder)
        try:
            with transaction.atomic():
                if DrainLease.objects.filter(free, destination_id=self.destination_id).update(
                    holder=self.holder, until=until
                ):
                    return True
                DrainLease.objects.create(destination_id=self.destination_id, holder=self.holder, until=until)
                return True
        except IntegrityError:  # held by someone else
            return False

    def keep(self) -> bool:
        """Whether the lease is still ours, renewing it once a third of its time has passed since it was
        taken or last renewed (a database write then, a clock reading otherwise)."""
        if time.monotonic() < self._renew_at:
            return True
        self._renew_at = time.monotonic() + self.seconds / 3
        return self.renew()

    def renew(self) -> bool:
        """Push the end of the lease out again; False if it is no longer ours (it ran out and another
        drain took it): the caller stops claiming."""
        self._renew_at = time.monotonic() + self.seconds / 3
        until = timezone.now() + timedelta(seconds=self.seconds)
        return bool(
            DrainLease.objects.filter(destination_id=self.destination_id, holder=self.holder).update(until=until)
        )

    def give_back(self) -> None:
        DrainLease.objects.filter(destination_id=self.destination_id, holder=self.holder).delete()
