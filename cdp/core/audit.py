"""The audit log: one call per change a user makes, from the dashboard, the API, the admin or a command.

    record(request.user, workspace, "destination.updated", target=destination,
           changes=diff_fields(before, after), via="dashboard")

Secrets never reach the log: values of keys that look secret are masked before they are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Model

from cdp.core.models import AuditEntry, Workspace

SECRET_MARKERS = ("secret", "password", "token", "key", "credential", "authorization")
MASK = "••••••"


def is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def masked(value: Any, name: str = "") -> Any:
    """A copy of `value` with every secret-looking key's value replaced by a mask."""
    if name and is_secret(name) and value not in (None, "", {}, []):
        return MASK
    if isinstance(value, Mapping):
        return {key: masked(item, str(key)) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


def diff_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Field → [before, after] for the fields that differ (nested settings are compared whole)."""
    changes = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            changes[name] = [masked(old, name), masked(new, name)]
    return changes


def record(
    actor: AbstractBaseUser | AnonymousUser | None,
    workspace: Workspace | int,
    action: str,
    *,
    target: Model | None = None,
    target_repr: str = "",
    changes: Mapping[str, Any] | None = None,
    via: str = "",
) -> AuditEntry:
    user = actor if actor is not None and actor.is_authenticated else None
    workspace_id = workspace.pk if isinstance(workspace, Workspace) else workspace
    return AuditEntry.objects.create(
        workspace_id=workspace_id,
        actor=user,
        actor_name=user.get_username() if user is not None else "",
        action=action,
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=(target_repr or (str(target) if target is not None else ""))[:300],
        changes=masked(dict(changes or {})),
        via=via,
    )
