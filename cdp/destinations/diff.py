"""Field-level differences between two JSON values, as a list of {path, before, after}."""

from __future__ import annotations

from typing import Any

MISSING = "<missing>"


def json_diff(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in before:
                changes.append({"path": sub, "before": MISSING, "after": after[key]})
            elif key not in after:
                changes.append({"path": sub, "before": before[key], "after": MISSING})
            else:
                changes.extend(json_diff(before[key], after[key], sub))
        return changes
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        changes = []
        for index, (left, right) in enumerate(zip(before, after, strict=True)):
            changes.extend(json_diff(left, right, f"{path}[{index}]"))
        return changes
    if before == after and type(before) is type(after):
        return []
    return [{"path": path or "$", "before": before, "after": after}]
