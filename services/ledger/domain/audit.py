"""What the audit log records of a change: who (the operator, or a merchant API key
by its id) and the changed fields before and after, never a secret. Pure."""

from __future__ import annotations

from typing import Any

OPERATOR = "operator"
SECRET_FIELDS = frozenset({"webhook_secret", "api_key_hash"})


def audit_fields(record: Any, changed: dict[str, Any], previous: Any = None) -> dict[str, Any]:
    """The fields named in `changed` as `record` has them, JSON-ready; a secret field
    appears only as "(set)" / "(empty)", or "(changed)" when `previous` had another, so
    the log never holds one."""
    out: dict[str, Any] = {}
    for name in sorted(changed):
        value: Any = getattr(record, name, None)
        if name in SECRET_FIELDS:
            moved = previous is not None and getattr(previous, name, None) != value
            out[name] = "(changed)" if moved else "(set)" if value else "(empty)"
        elif value is not None and hasattr(value, "to_json"):
            out[name] = value.to_json()
        else:
            out[name] = (
                value if isinstance(value, str | int | float | bool | dict | list) or value is None else str(value)
            )
    return out
