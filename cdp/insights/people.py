"""Monthly tracked users: each userId once per month, plus each anonymousId seen that month that was
never seen together with a userId (identify, alias's previousId, or any call carrying both).

Ties and sightings go through the same identity rows (see models.Identity), so that concurrent
batches serialise on them and the monthly counts cannot drift."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from django.db import transaction

from cdp.insights import sql

_IDENTIFIER = 255
Row = tuple[int, str, str, bool, date | None]  # workspace, kind, value, tie?, month seen (sightings)
Known = tuple[bool, date | None]  # tied, month counted in

# What this process knows of identities as committed: (workspace id, its creation time, kind, value)
# → (tied, counted month). An identity only moves forward (its counted month grows, a tie is for
# good), so what is known here may be behind the database, never ahead of it: a batch's people already
# counted this month are skipped without a query. The creation time keeps a reused workspace id (test
# databases rolled back) from inheriting another workspace's people.
_known: dict[tuple[int, datetime, str, str], Known] = {}
_KNOWN_MAX = 500_000


def count_people(
    people: dict[int, list[tuple[dict[str, Any], date]]], workspaces: dict[int, tuple[int, datetime]]
) -> None:
    """`people`: per source, (event payload, month received) of the batch; `workspaces`: per source,
    its workspace's id and creation time."""
    created = dict(workspaces.values())
    rows = _rows(people, {source_id: workspace_id for source_id, (workspace_id, _) in workspaces.items()})
    rows = _unsure(rows, created)
    deltas: dict[tuple[int, date], list[int]] = defaultdict(lambda: [0, 0])
    by_key = {row[:3]: row for row in rows}
    changed = sql.upsert_identities(sorted(rows, key=lambda row: row[:3]))
    # A row the upsert left alone changed nothing: its identity is tied, or counted in this month or
    # later, and may be skipped from now on (what is learned may be behind the database, never ahead).
    learned: dict[tuple[int, datetime, str, str], Known] = {
        (ws, created[ws], kind, value): (True, None) if tie else (False, month) for ws, kind, value, tie, month in rows
    }
    for workspace_id, kind, value, counted_month in changed:
        row = by_key[(workspace_id, kind, value)]
        key = (workspace_id, created[workspace_id], kind, value)
        if row[3]:
            learned[key] = (True, counted_month)
            if counted_month is not None:  # it had counted as an anonymous visitor: no longer
                deltas[(workspace_id, counted_month)][1] -= 1
        else:
            learned[key] = (False, row[4])
            deltas[(workspace_id, row[4])][0 if kind == "user" else 1] += 1
    sql.add_monthly_users(sorted((ws, month, u, a) for (ws, month), (u, a) in deltas.items() if u or a))
    if learned:
        transaction.on_commit(lambda: _learn(learned))


def _rows(people: dict[int, list[tuple[dict[str, Any], date]]], workspaces: dict[int, int]) -> list[Row]:
    users: dict[tuple[int, str], date] = {}
    anonymous: dict[tuple[int, str], date] = {}
    ties: set[tuple[int, str]] = set()
    for source_id, seen in people.items():
        workspace_id = workspaces.get(source_id)
        if workspace_id is None:
            continue
        for payload, month in seen:
            user_id = (payload.get("userId") or "")[:_IDENTIFIER]
            anonymous_id = (payload.get("anonymousId") or "")[:_IDENTIFIER]
            if user_id:
                key = (workspace_id, user_id)
                users[key] = max(month, users.get(key, month))
                if anonymous_id:
                    ties.add((workspace_id, anonymous_id))
                previous_id = payload.get("previousId") if payload["type"] == "alias" else None
                if isinstance(previous_id, str) and previous_id:
                    ties.add((workspace_id, previous_id[:_IDENTIFIER]))
            elif anonymous_id:
                key = (workspace_id, anonymous_id)
                anonymous[key] = max(month, anonymous.get(key, month))
    # An anonymousId tied anywhere in the batch is never counted, even if seen alone before the tie.
    rows: list[Row] = [(ws, "user", value, False, month) for (ws, value), month in users.items()]
    rows += [
        (ws, "anonymous", value, False, month) for (ws, value), month in anonymous.items() if (ws, value) not in ties
    ]
    rows += [(ws, "anonymous", value, True, None) for ws, value in ties]
    return rows


def _settled(known: Known, row: Row) -> bool:
    """Nothing this row could change: tied for good, or already counted in this month (or later)."""
    tied, counted = known
    return tied or (not row[3] and counted is not None and row[4] is not None and counted >= row[4])


def _unsure(rows: list[Row], created: dict[int, datetime]) -> list[Row]:
    """The rows that may change anything: most people of a batch were already counted this month, and
    upserting them anyway would lock their rows for nothing. Judged on what this process knows; skipping
    is safe because identities only move forward, and the upsert settles the rest under row locks (it
    leaves a row it cannot change as it is). A person unknown to this process is upserted once, then
    known: this costs fewer queries than reading first, as most unknown people of a batch are new."""
    return [
        row for row in rows if not _settled(_known.get((row[0], created[row[0]], row[1], row[2]), (False, None)), row)
    ]


def _learn(learned: dict[tuple[int, datetime, str, str], Known]) -> None:
    if len(_known) + len(learned) > _KNOWN_MAX:
        _known.clear()
    _known.update(learned)


def forget() -> None:
    """Drop what this process knows of identities (after the tables were emptied)."""
    _known.clear()
