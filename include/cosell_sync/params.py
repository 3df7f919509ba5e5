"""Run params of the co-sell DAGs: the checks a run's first task applies to what it was triggered with.

Airflow validates each declared param against its schema, but lets any other key through in the run
conf, so a typo such as ``{"mdoe": "full"}`` would otherwise run an incremental sync and look fine.
:func:`check_conf_keys` refuses it, naming the valid keys; :func:`param_timestamp` reads a timestamp
param the way the trigger form describes it (ISO 8601, UTC when it has no offset).

DAG files import :data:`ISO_TIMESTAMP` at parse time, so this module stays cheap: no I/O, no heavy imports.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from cosell_sync.common import parse_ts
from cosell_sync.errors import ParamError

__all__ = ["ISO_TIMESTAMP", "check_conf_keys", "param_timestamp"]

#: An ISO 8601 date or date-time, offset optional (no offset: UTC), as a JSON-schema ``pattern`` body.
#: Used instead of ``format: date-time``, which requires an offset and so refuses ``2026-11-02T10:00``.
ISO_TIMESTAMP = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?"


def check_conf_keys(conf: Mapping[str, Any] | None, valid: Iterable[str], dag_id: str) -> None:
    """Refuse a run conf with keys the DAG has no param for.

    Args:
        conf: the run's conf (what it was triggered with); None or empty passes.
        valid: the DAG's param names.
        dag_id: the DAG, for the message.

    Raises:
        ParamError: a key is not a param; the message names each such key (with the closest valid one,
            if any) and lists the valid keys. Keys only, never values.
    """
    names = sorted(str(k) for k in valid)
    unknown = sorted(str(k) for k in (conf or {}) if str(k) not in names)
    if not unknown:
        return
    described = []
    for key in unknown:
        close = difflib.get_close_matches(key, names, n=1)
        described.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    raise ParamError(
        f"{dag_id}: unknown run conf key(s) {', '.join(described)}; valid keys: {', '.join(names)}. "
        "Nothing was run: trigger it again with the right keys."
    )


def param_timestamp(name: str, value: Any) -> datetime | None:
    """A timestamp param as an aware UTC datetime (``Z`` or any offset; no offset means UTC).

    Args:
        name: the param, for the message.
        value: the param's value; None or ``""`` gives None.

    Raises:
        ParamError: the value is not an ISO 8601 date or date-time.
    """
    if value is None or value == "":
        return None
    try:
        return parse_ts(str(value))
    except ValueError as err:
        raise ParamError(
            f"{name}: not an ISO 8601 timestamp (e.g. 2026-11-02T10:00:00Z; UTC when it has no offset)"
        ) from err
