"""Shared pieces of the HubSpot backend: the record and event types, the stores, ids, clock and helpers.

Every resource mixin in this package subclasses :class:`BackendBase`, which owns the state (created by
:meth:`BackendBase.reset`), the single lock, id generation and event emission. No HTTP here.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from emulators.hubspot import schema
from emulators.hubspot.exceptions import ValidationError

BATCH_MAX = 100
BATCH_MAX_WITH_HISTORY = 50
#: A deal property HubSpot calculates from its contact associations; a change of them modifies the deal.
NUM_ASSOCIATED_CONTACTS = "num_associated_contacts"


def now_ms() -> int:
    """Current wall time in epoch milliseconds."""
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    """Epoch ms as HubSpot's ISO-8601 form with milliseconds (``2024-01-02T03:04:05.678Z``)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_time(value: Any) -> int | None:
    """Epoch ms from what HubSpot accepts for dates: epoch-ms numbers/strings, ISO datetimes, ISO dates."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if not text:
        return None
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return int(float(text))
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            d = date.fromisoformat(text)
            return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


@dataclass
class Record:
    """One CRM object. ``properties`` holds stored values; system properties are derived on read."""

    id: str
    object_type: str
    properties: dict[str, str]
    created_ms: int
    updated_ms: int
    history: dict[str, list[tuple[str, int, str]]] = field(default_factory=dict)
    archived: bool = False
    archived_ms: int | None = None


@dataclass
class Event:
    """A change webhooks may report (built by the backend, formatted and sent by ``webhooks.py``)."""

    kind: str  # creation | propertyChange | deletion | associationChange
    object_type: str
    object_id: str
    occurred_ms: int
    property_name: str | None = None
    property_value: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def unique_key(name: str, value: str) -> str:
    """The key a unique property's value is indexed under (emails are case-insensitive)."""
    return value.lower() if name == "email" else value


class BackendBase:
    """State of one emulated HubSpot portal and the helpers every resource mixin shares."""

    portal_id = 12345678

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.listeners: list[Callable[[list[Event]], None]] = []
        # ids of records whose batch writes fail per item (``/_emulator/faults`` ``fail_ids``).
        self.fail_ids: set[str] = set()
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget everything and return to a fresh portal (default properties, pipeline, owners)."""
        with self.lock:
            start = now_ms()
            self._ids = itertools.count(10_001)
            self.objects: dict[str, dict[str, Record]] = {t: {} for t in schema.OBJECT_TYPES}
            self.properties = schema.default_properties(iso(start))
            self.groups: dict[str, dict[str, dict[str, Any]]] = {
                t: {
                    name: {"name": name, "label": label, "displayOrder": -1, "archived": False}
                    for name, label in groups
                }
                for t, groups in schema.DEFAULT_GROUPS.items()
            }
            self.unique: dict[tuple[str, str], dict[str, str]] = {}
            for t, props in self.properties.items():
                for name, p in props.items():
                    if p.get("hasUniqueValue"):
                        self.unique[(t, name)] = {}
            self.assoc_types: dict[int, schema.AssociationType] = {}
            self.default_assoc: dict[tuple[str, str], int] = {}
            for a in schema.association_types():
                self.assoc_types[a.type_id] = a
                if a.label is None:
                    self.default_assoc[(a.from_type, a.to_type)] = a.type_id
            self._label_ids = itertools.count(1000)
            # (from_type, from_id, to_type) -> {to_id: {type_id}}
            self.assoc: dict[tuple[str, str, str], dict[str, set[int]]] = {}
            self.owners: list[dict[str, Any]] = [
                {
                    "id": oid,
                    "userId": uid,
                    "userIdIncludingInactive": uid,
                    "firstName": fn,
                    "lastName": ln,
                    "email": email,
                    "type": "PERSON",
                    "archived": False,
                    "createdAt": iso(start),
                    "updatedAt": iso(start),
                    "teams": [],
                }
                for oid, uid, fn, ln, email in schema.DEFAULT_OWNERS
            ]
            stages = [
                {
                    "id": sid,
                    "label": label,
                    "displayOrder": i,
                    "archived": False,
                    "createdAt": iso(start),
                    "updatedAt": iso(start),
                    "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                    "metadata": {"isClosed": str(closed).lower(), "probability": prob},
                }
                for i, (sid, label, prob, closed) in enumerate(schema.DEFAULT_DEAL_STAGES)
            ]
            self.pipelines: dict[str, dict[str, dict[str, Any]]] = {
                "deals": {
                    "default": {
                        "id": "default",
                        "label": "Sales Pipeline",
                        "displayOrder": 0,
                        "archived": False,
                        "createdAt": iso(start),
                        "updatedAt": iso(start),
                        "stages": stages,
                    }
                },
            }
            self._pipeline_ids = itertools.count(95_000_001)
            self.fail_ids = set()
            self.seeding = False

    def next_id(self) -> str:
        """A fresh numeric object id (HubSpot ids are numeric strings)."""
        return str(next(self._ids))

    def next_label_id(self) -> int:
        """A fresh association type id for a USER_DEFINED label."""
        return next(self._label_ids)

    def next_pipeline_id(self) -> str:
        """A fresh pipeline or stage id."""
        return str(next(self._pipeline_ids))

    def emit(self, events: list[Event]) -> None:
        """Hand events to the listeners (webhooks), unless seeding; call without holding the lock."""
        if self.seeding or not events:
            return
        for listener in list(self.listeners):
            listener(events)

    @staticmethod
    def object_type(value: str) -> str:
        """Canonical object type name, or HubSpot's 400 for an unknown type."""
        name = schema.object_type_name(value)
        if name is None:
            raise ValidationError(f"Unable to infer object type from: {value}")
        return name

    def value(self, rec: Record, name: str) -> str | None:
        """A property value as the API returns it (system properties derived from the record)."""
        ot = schema.OBJECT_TYPES[rec.object_type]
        if name == "hs_object_id":
            return rec.id
        if name == ot.modified_prop:
            return iso(rec.updated_ms)
        if name == ot.created_prop:
            stored = rec.properties.get(name)
            return stored if stored else iso(rec.created_ms)
        if name == NUM_ASSOCIATED_CONTACTS and rec.object_type == "deals":
            # Calculated by HubSpot: the deal's live contact associations.
            linked = self.assoc.get(("deals", rec.id, "contacts"), {})
            contacts = self.objects.get("contacts", {})
            return str(sum(1 for cid in linked if cid in contacts and not contacts[cid].archived))
        return rec.properties.get(name)

    def check_batch_size(self, inputs: Any, maximum: int = BATCH_MAX) -> list[dict[str, Any]]:
        """A batch's ``inputs`` list, or HubSpot's 400 when it is not a list or is over ``maximum``."""
        if not isinstance(inputs, list):
            raise ValidationError("Invalid input JSON: inputs must be an array")
        if len(inputs) > maximum:
            raise ValidationError(
                f"Batch input limit is {maximum}; {len(inputs)} inputs were provided.",
                context={"limit": [str(maximum)]},
            )
        return inputs
