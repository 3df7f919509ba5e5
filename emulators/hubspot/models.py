"""In-memory HubSpot CRM state and rules: objects, properties, search, associations, owners, pipelines.

No HTTP here (moto's split): handlers in ``responses.py`` call these methods, which raise the errors of
``exceptions.py``. All state lives in one :class:`HubSpotBackend`, guarded by one lock.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from emulators.hubspot import schema
from emulators.hubspot.exceptions import (
    AlreadyExists,
    Conflict,
    HubSpotError,
    NotFound,
    ValidationError,
    property_error,
    property_errors_message,
)

# HubSpot search limits (developers.hubspot.com/docs/api/crm/search, "Limitations").
SEARCH_MAX_LIMIT = 200
SEARCH_MAX_RESULTS = 10_000
SEARCH_MAX_GROUPS = 5
SEARCH_MAX_FILTERS_PER_GROUP = 6
SEARCH_MAX_FILTERS = 18
SEARCH_MAX_QUERY = 3000
BATCH_MAX = 100
BATCH_MAX_WITH_HISTORY = 50
OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}


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


class HubSpotBackend:
    """All state of one emulated HubSpot portal."""

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

    def _emit(self, events: list[Event]) -> None:
        if self.seeding or not events:
            return
        for listener in list(self.listeners):
            listener(events)

    # ------------------------------------------------------------------ types and properties
    @staticmethod
    def object_type(value: str) -> str:
        """Canonical object type name, or HubSpot's 400 for an unknown type."""
        name = schema.object_type_name(value)
        if name is None:
            raise ValidationError(f"Unable to infer object type from: {value}")
        return name

    def property_defs(self, object_type: str) -> dict[str, dict[str, Any]]:
        """Live (non-archived) property definitions of a type."""
        return {n: p for n, p in self.properties[object_type].items() if not p.get("archived")}

    def public_property(self, object_type: str, prop: dict[str, Any]) -> dict[str, Any]:
        """A property definition as the API shows it (dynamic options such as deal stages filled in)."""
        out = {k: copy.deepcopy(v) for k, v in prop.items() if not k.startswith("_")}
        dynamic = prop.get("_dynamic")
        if dynamic:
            out["options"] = self._dynamic_options(object_type, dynamic)
        return out

    def _dynamic_options(self, object_type: str, dynamic: str) -> list[dict[str, Any]]:
        pipes = sorted(self.pipelines.get(object_type, {}).values(), key=lambda p: p["displayOrder"])
        if dynamic == "pipeline":
            return [
                {
                    "label": p["label"],
                    "value": p["id"],
                    "displayOrder": p["displayOrder"],
                    "hidden": False,
                    "description": "",
                }
                for p in pipes
            ]
        return [
            {
                "label": s["label"],
                "value": s["id"],
                "displayOrder": s["displayOrder"],
                "hidden": False,
                "description": f"{p['label']}",
            }
            for p in pipes
            for s in p["stages"]
        ]

    def list_properties(self, object_type: str, archived: bool = False) -> list[dict[str, Any]]:
        """Property definitions of a type (archived ones only when asked)."""
        with self.lock:
            return [
                self.public_property(object_type, p)
                for p in self.properties[object_type].values()
                if bool(p.get("archived")) == archived
            ]

    def get_property(self, object_type: str, name: str) -> dict[str, Any]:
        """One property definition or 404."""
        with self.lock:
            prop = self.properties[object_type].get(name)
            if prop is None or prop.get("archived"):
                raise NotFound(f"Unable to find property {name} for object type {object_type}")
            return self.public_property(object_type, prop)

    _TYPE_FIELDS = {
        "string": {"text", "textarea", "phonenumber", "html", "file", "select", "radio"},
        "number": {"number", "calculation_equation"},
        "bool": {"booleancheckbox", "radio", "checkbox", "select"},
        "enumeration": {"select", "radio", "checkbox", "booleancheckbox"},
        "date": {"date"},
        "datetime": {"date"},
        "phone_number": {"phonenumber", "text"},
    }

    def create_property(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a custom property (``PropertyCreate``), enforcing HubSpot's type/fieldType/group rules."""
        with self.lock:
            prop = self._validate_property_create(object_type, body)
            self.properties[object_type][prop["name"]] = prop
            if prop["hasUniqueValue"]:
                self.unique[(object_type, prop["name"])] = {}
            return self.public_property(object_type, prop)

    def _validate_property_create(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        for key in ("name", "label", "type", "fieldType", "groupName"):
            if not body.get(key):
                raise ValidationError(
                    f"Invalid input JSON: missing required field {key}",
                    errors=[{"message": f"{key} is required", "in": key}],
                )
        name = str(body["name"])
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValidationError(
                f"Property name {name!r} is invalid: use lowercase letters, digits and "
                "underscores, starting with a letter"
            )
        existing = self.properties[object_type].get(name)
        if existing is not None and not existing.get("archived"):
            raise AlreadyExists(f"Property named '{name}' already exists.")
        type_, field_type = body["type"], body["fieldType"]
        if type_ not in self._TYPE_FIELDS:
            raise ValidationError(f"Invalid property type {type_!r}")
        if field_type not in self._TYPE_FIELDS[type_]:
            raise ValidationError(f"Invalid fieldType {field_type!r} for property type {type_!r}")
        if body["groupName"] not in self.groups[object_type]:
            raise ValidationError(f"Property group {body['groupName']} does not exist.")
        options = body.get("options") or []
        if type_ == "enumeration" and not options and field_type != "booleancheckbox":
            raise ValidationError(f"Enumeration property {name} must have at least one option.")
        if type_ == "bool" and not options:
            options = [
                {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
            ]
        seen: set[str] = set()
        clean_options = []
        for i, opt in enumerate(options):
            if "label" not in opt or "value" not in opt:
                raise ValidationError("Each option needs a label and a value")
            if opt["value"] in seen:
                raise ValidationError(f"Duplicate option value {opt['value']!r} for property {name}")
            seen.add(opt["value"])
            clean_options.append(
                {
                    "label": str(opt["label"]),
                    "value": str(opt["value"]),
                    "displayOrder": opt.get("displayOrder", i),
                    "hidden": bool(opt.get("hidden")),
                    "description": opt.get("description", ""),
                }
            )
        stamp = iso(now_ms())
        prop = {
            "name": name,
            "label": body["label"],
            "type": type_,
            "fieldType": field_type,
            "description": body.get("description", ""),
            "groupName": body["groupName"],
            "options": clean_options,
            "displayOrder": body.get("displayOrder", -1),
            "calculated": False,
            "externalOptions": bool(body.get("externalOptions", False)),
            "hasUniqueValue": bool(body.get("hasUniqueValue", False)),
            "hidden": bool(body.get("hidden", False)),
            "hubspotDefined": False,
            "formField": bool(body.get("formField", False)),
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
            "modificationMetadata": {
                "archivable": True,
                "readOnlyDefinition": False,
                "readOnlyValue": False,
                "readOnlyOptions": False,
            },
        }
        for key in (
            "numberDisplayHint",
            "textDisplayHint",
            "showCurrencySymbol",
            "dataSensitivity",
            "referencedObjectType",
            "currencyPropertyName",
            "calculationFormula",
        ):
            if key in body:
                prop[key] = body[key]
        return prop

    def update_property(self, object_type: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH a property (label, description, group, options, displayOrder, hidden, fieldType)."""
        with self.lock:
            prop = self.properties[object_type].get(name)
            if prop is None or prop.get("archived"):
                raise NotFound(f"Unable to find property {name} for object type {object_type}")
            if prop.get("hubspotDefined") and ("options" in body or "type" in body):
                raise ValidationError(
                    f"Property {name} is a HubSpot-defined property; its definition is read-only"
                )
            if "groupName" in body and body["groupName"] not in self.groups[object_type]:
                raise ValidationError(f"Property group {body['groupName']} does not exist.")
            for key in (
                "label",
                "description",
                "groupName",
                "displayOrder",
                "hidden",
                "formField",
                "fieldType",
                "type",
            ):
                if key in body:
                    prop[key] = body[key]
            if "options" in body:
                prop["options"] = [
                    {
                        "label": o["label"],
                        "value": o["value"],
                        "displayOrder": o.get("displayOrder", i),
                        "hidden": bool(o.get("hidden")),
                        "description": o.get("description", ""),
                    }
                    for i, o in enumerate(body["options"])
                ]
            prop["updatedAt"] = iso(now_ms())
            return self.public_property(object_type, prop)

    def archive_property(self, object_type: str, name: str) -> None:
        """Archive a custom property (HubSpot-defined ones cannot be archived)."""
        with self.lock:
            prop = self.properties[object_type].get(name)
            if prop is None or prop.get("archived"):
                raise NotFound(f"Unable to find property {name} for object type {object_type}")
            if prop.get("hubspotDefined"):
                raise ValidationError(f"Property {name} is a HubSpot-defined property and cannot be archived")
            prop["archived"] = True
            prop["archivedAt"] = iso(now_ms())
            self.unique.pop((object_type, name), None)

    def create_group(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a property group (``PropertyGroupCreate``)."""
        with self.lock:
            name, label = body.get("name"), body.get("label")
            if not name or not label:
                raise ValidationError("Property group requires name and label")
            if name in self.groups[object_type] and not self.groups[object_type][name]["archived"]:
                raise AlreadyExists(f"Property group named '{name}' already exists.")
            group = {
                "name": name,
                "label": label,
                "displayOrder": body.get("displayOrder", -1),
                "archived": False,
            }
            self.groups[object_type][name] = group
            return dict(group)

    def get_group(self, object_type: str, name: str) -> dict[str, Any]:
        """One property group or 404."""
        with self.lock:
            group = self.groups[object_type].get(name)
            if group is None or group["archived"]:
                raise NotFound(f"Unable to find property group {name} for object type {object_type}")
            return dict(group)

    def update_group(self, object_type: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH a group's label or display order."""
        with self.lock:
            group = self.groups[object_type].get(name)
            if group is None or group["archived"]:
                raise NotFound(f"Unable to find property group {name} for object type {object_type}")
            for key in ("label", "displayOrder"):
                if key in body:
                    group[key] = body[key]
            return dict(group)

    def archive_group(self, object_type: str, name: str) -> None:
        """Archive a property group."""
        with self.lock:
            group = self.groups[object_type].get(name)
            if group is None or group["archived"]:
                raise NotFound(f"Unable to find property group {name} for object type {object_type}")
            group["archived"] = True

    # ------------------------------------------------------------------ property values
    def _modified_prop(self, object_type: str) -> str:
        return schema.OBJECT_TYPES[object_type].modified_prop

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
        return rec.properties.get(name)

    def _normalise_value(
        self, object_type: str, name: str, raw: Any, errors: list[dict[str, Any]], current: dict[str, str]
    ) -> str | None:
        """Validate and normalise one value the way HubSpot stores it; append a HubSpot error if invalid."""
        defs = self.properties[object_type]
        prop = defs.get(name)
        if prop is None or prop.get("archived"):
            errors.append(property_error(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
            return None
        if name in schema.READ_ONLY or prop["modificationMetadata"].get("readOnlyValue"):
            errors.append(
                property_error(
                    name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.'
                )
            )
            return None
        if raw is None:
            return ""
        if isinstance(raw, bool):
            text = "true" if raw else "false"
        elif isinstance(raw, float) and raw.is_integer():
            text = str(int(raw))
        else:
            text = str(raw)
        if text == "":
            return ""  # an empty string clears the value
        type_ = prop["type"]
        if type_ == "number":
            try:
                float(text)
            except ValueError:
                errors.append(property_error(name, "INVALID_FLOAT", f"{text} was not a valid number."))
                return None
            return text.strip()
        if type_ == "bool":
            if text.lower() not in ("true", "false"):
                errors.append(property_error(name, "INVALID_BOOLEAN", f"{text} was not a valid boolean."))
                return None
            return text.lower()
        if type_ in ("date", "datetime"):
            ms = parse_time(text)
            if ms is None:
                errors.append(property_error(name, "INVALID_DATE", f"{text} was not a valid date."))
                return None
            if type_ == "date":
                if ms % 86_400_000 != 0:
                    errors.append(
                        property_error(
                            name,
                            "INVALID_DATE",
                            f"{text} is at not midnight! (date properties need a UTC midnight timestamp)",
                        )
                    )
                    return None
                return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")
            return iso(ms)
        if type_ == "enumeration":
            allowed = self._allowed_values(object_type, name, prop, current)
            if allowed is None:
                return text
            values = text.split(";") if prop["fieldType"] == "checkbox" else [text]
            bad = [v for v in values if v not in allowed]
            if bad:
                shown = ", ".join(sorted(allowed)[:20])
                errors.append(
                    property_error(
                        name, "INVALID_OPTION", f"{bad[0]} was not one of the allowed options: [{shown}]"
                    )
                )
                return None
            return text
        return text

    def _allowed_values(
        self, object_type: str, name: str, prop: dict[str, Any], current: dict[str, str]
    ) -> set[str] | None:
        if name == "hubspot_owner_id":
            return {o["id"] for o in self.owners if not o["archived"]}
        dynamic = prop.get("_dynamic")
        if dynamic == "pipeline":
            return set(self.pipelines.get(object_type, {}))
        if dynamic == "dealstage":
            pipeline = current.get("pipeline") or "default"
            pipe = self.pipelines.get(object_type, {}).get(pipeline)
            return {s["id"] for s in pipe["stages"]} if pipe else set()
        if prop.get("externalOptions"):
            return None
        return {o["value"] for o in prop.get("options", [])}

    def validate_properties(
        self, object_type: str, props: dict[str, Any], existing: Record | None = None
    ) -> dict[str, str]:
        """Normalised values for a write, or HubSpot's 400 naming every invalid property."""
        if not isinstance(props, dict):
            raise ValidationError("Invalid input JSON: properties must be an object")
        errors: list[dict[str, Any]] = []
        current = dict(existing.properties) if existing else {}
        if "pipeline" in props and props["pipeline"] not in (None, ""):
            current["pipeline"] = str(props["pipeline"])
        out: dict[str, str] = {}
        for name, raw in props.items():
            value = self._normalise_value(object_type, name, raw, errors, current)
            if value is not None:
                out[name] = value
        if errors:
            raise ValidationError(
                property_errors_message(errors),
                errors=[
                    {"message": e["message"], "code": e["error"], "context": {"propertyName": [e["name"]]}}
                    for e in errors
                ],
            )
        return out

    def _unique_key(self, name: str, value: str) -> str:
        return value.lower() if name == "email" else value

    def _check_unique(self, object_type: str, values: dict[str, str], own_id: str | None) -> None:
        for name, value in values.items():
            index = self.unique.get((object_type, name))
            if index is None or value == "":
                continue
            holder = index.get(self._unique_key(name, value))
            if holder is not None and holder != own_id:
                label = schema.OBJECT_TYPES[object_type].singular.capitalize()
                raise Conflict(
                    f"{label} already exists. Existing ID: {holder}",
                    context={"existingId": [holder], "propertyName": [name]},
                )

    def _apply(self, rec: Record, values: dict[str, str], ts: int, source: str) -> list[str]:
        """Write values into a record; returns the names whose value changed."""
        changed = []
        for name, value in values.items():
            if name == "email":
                value = value.lower()
            old = rec.properties.get(name)
            index = self.unique.get((rec.object_type, name))
            if index is not None:
                if old:
                    index.pop(self._unique_key(name, old), None)
                if value:
                    index[self._unique_key(name, value)] = rec.id
            if value == "":
                if old is not None:
                    rec.properties.pop(name, None)
                    changed.append(name)
            elif old != value:
                rec.properties[name] = value
                changed.append(name)
            rec.history.setdefault(name, []).append((value, ts, source))
        return changed

    def _touch(self, rec: Record) -> int:
        # Strictly increasing per record even when two writes land in the same millisecond, so callers can
        # use hs_lastmodifieddate as a watermark.
        ts = max(now_ms(), rec.updated_ms + 1)
        rec.updated_ms = ts
        return ts

    # ------------------------------------------------------------------ objects
    def get_record(
        self, object_type: str, object_id: str, archived: bool = False, id_property: str | None = None
    ) -> Record:
        """A record by id (or by a unique ``idProperty``), or HubSpot's 404."""
        with self.lock:
            rec = self._find(object_type, object_id, id_property)
            if rec is None or rec.archived != archived:
                raise NotFound()
            return rec

    def _find(self, object_type: str, object_id: str, id_property: str | None = None) -> Record | None:
        if id_property and id_property != "hs_object_id":
            index = self.unique.get((object_type, id_property))
            if index is None:
                raise ValidationError(
                    f"{id_property} is not a unique property and cannot be used as idProperty",
                    subCategory="crm.objects.INVALID_ID_PROPERTY",
                )
            found = index.get(self._unique_key(id_property, str(object_id)))
            return self.objects[object_type].get(found) if found else None
        return self.objects[object_type].get(str(object_id))

    def create(
        self,
        object_type: str,
        props: dict[str, Any],
        associations: list[dict[str, Any]] | None = None,
        source: str = "API",
        created_ms: int | None = None,
    ) -> Record:
        """Create one record (with inline associations), as ``POST /crm/v3/objects/{type}``."""
        with self.lock:
            values = self.validate_properties(object_type, props)
            self._check_unique(object_type, values, None)
            assoc = self._validate_inline_associations(object_type, associations or [])
            rec, events = self._create_validated(object_type, values, assoc, source, created_ms)
        self._emit(events)
        return rec

    def _create_validated(
        self,
        object_type: str,
        values: dict[str, str],
        assoc: list[tuple[str, str, list[int]]],
        source: str,
        created_ms: int | None = None,
    ) -> tuple[Record, list[Event]]:
        ts = created_ms if created_ms is not None else now_ms()
        rec = Record(id=self.next_id(), object_type=object_type, properties={}, created_ms=ts, updated_ms=ts)
        created_prop = schema.OBJECT_TYPES[object_type].created_prop
        if created_prop in values:
            parsed = parse_time(values[created_prop])
            if parsed is not None:
                rec.created_ms = parsed
        self._apply(rec, values, ts, source)
        self.objects[object_type][rec.id] = rec
        events = [Event("creation", object_type, rec.id, ts)]
        for to_type, to_id, type_ids in assoc:
            events += self._associate(object_type, rec.id, to_type, to_id, type_ids)
        return rec, events

    def _validate_inline_associations(
        self, object_type: str, associations: list[dict[str, Any]]
    ) -> list[tuple[str, str, list[int]]]:
        out = []
        for item in associations:
            to_id = str((item.get("to") or {}).get("id", ""))
            type_ids = []
            to_type = None
            for spec in item.get("types") or []:
                type_id = int(spec.get("associationTypeId", -1))
                atype = self.assoc_types.get(type_id)
                if atype is None or atype.from_type != object_type:
                    raise ValidationError(
                        f"{type_id} is not a valid association type id from {object_type}",
                        subCategory="crm.associations.INVALID_ASSOCIATION_TYPE",
                    )
                to_type = atype.to_type
                type_ids.append(type_id)
            if to_type is None:
                raise ValidationError("Each association needs at least one type")
            target = self.objects[to_type].get(to_id)
            if target is None or target.archived:
                raise ValidationError(
                    f"No {schema.OBJECT_TYPES[to_type].singular} with ID {to_id} exists",
                    subCategory="crm.associations.INVALID_OBJECT_IDS",
                )
            out.append((to_type, to_id, type_ids))
        return out

    def update(
        self,
        object_type: str,
        object_id: str,
        props: dict[str, Any],
        id_property: str | None = None,
        source: str = "API",
    ) -> Record:
        """PATCH one record."""
        with self.lock:
            rec = self._find(object_type, object_id, id_property)
            if rec is None or rec.archived:
                raise NotFound()
            values = self.validate_properties(object_type, props, rec)
            self._check_unique(object_type, values, rec.id)
            events = self._update_validated(rec, values, source)
        self._emit(events)
        return rec

    def _update_validated(self, rec: Record, values: dict[str, str], source: str) -> list[Event]:
        ts = self._touch(rec)
        changed = self._apply(rec, values, ts, source)
        events = [
            Event("propertyChange", rec.object_type, rec.id, ts, name, rec.properties.get(name, ""))
            for name in changed
        ]
        if changed:
            events.append(
                Event(
                    "propertyChange",
                    rec.object_type,
                    rec.id,
                    ts,
                    self._modified_prop(rec.object_type),
                    iso(ts),
                )
            )
        return events

    def archive(self, object_type: str, object_id: str) -> None:
        """Archive (soft-delete) one record; HubSpot answers 204 even when it does not exist."""
        with self.lock:
            rec = self.objects[object_type].get(str(object_id))
            if rec is None or rec.archived:
                return
            events = self._archive(rec)
        self._emit(events)

    def _archive(self, rec: Record) -> list[Event]:
        ts = self._touch(rec)
        rec.archived = True
        rec.archived_ms = ts
        for (t, name), index in self.unique.items():
            if t == rec.object_type and rec.properties.get(name):
                index.pop(self._unique_key(name, rec.properties[name]), None)
        events = [Event("deletion", rec.object_type, rec.id, ts)]
        for (ft, fid, tt), targets in list(self.assoc.items()):
            if ft == rec.object_type and fid == rec.id:
                for to_id in list(targets):
                    events += self._dissociate(ft, fid, tt, to_id, None)
        return events

    def list_records(
        self, object_type: str, limit: int, after: str | None, archived: bool
    ) -> tuple[list[Record], str | None]:
        """One page of records in id order; ``after`` is the id to start from (HubSpot's cursor)."""
        with self.lock:
            start = int(after) if after and after.isdigit() else 0
            recs = sorted(
                (
                    r
                    for r in self.objects[object_type].values()
                    if r.archived == archived and int(r.id) >= start
                ),
                key=lambda r: int(r.id),
            )
            page = recs[:limit]
            nxt = str(int(recs[limit].id)) if len(recs) > limit else None
            return page, nxt

    # ------------------------------------------------------------------ batch
    def _check_batch_size(self, inputs: Any, maximum: int = BATCH_MAX) -> list[dict[str, Any]]:
        if not isinstance(inputs, list):
            raise ValidationError("Invalid input JSON: inputs must be an array")
        if len(inputs) > maximum:
            raise ValidationError(
                f"Batch input limit is {maximum}; {len(inputs)} inputs were provided.",
                context={"limit": [str(maximum)]},
            )
        return inputs

    def batch_read(
        self, object_type: str, inputs: Any, id_property: str | None, with_history: bool
    ) -> tuple[list[Record], list[str]]:
        """Records for ``inputs`` and the ids that were not found."""
        inputs = self._check_batch_size(inputs, BATCH_MAX_WITH_HISTORY if with_history else BATCH_MAX)
        with self.lock:
            found, missing = [], []
            for item in inputs:
                key = str(item.get("id", ""))
                rec = self._find(object_type, key, id_property)
                if rec is None or rec.archived:
                    missing.append(key)
                elif rec not in found:
                    found.append(rec)
            return found, missing

    def batch_create(self, object_type: str, inputs: Any) -> list[Record]:
        """Create up to 100 records; any invalid input fails the whole batch (HubSpot validates first)."""
        inputs = self._check_batch_size(inputs)
        with self.lock:
            prepared = []
            seen: dict[tuple[str, str], int] = {}
            for item in inputs:
                values = self.validate_properties(object_type, item.get("properties") or {})
                self._check_unique(object_type, values, None)
                for name, value in values.items():
                    if (object_type, name) in self.unique and value:
                        key = (name, self._unique_key(name, value))
                        if key in seen:
                            raise Conflict(f"Duplicate {name} in batch input: {value}")
                        seen[key] = 1
                assoc = self._validate_inline_associations(object_type, item.get("associations") or [])
                prepared.append((values, assoc))
            events: list[Event] = []
            out = []
            for values, assoc in prepared:
                rec, evs = self._create_validated(object_type, values, assoc, "API")
                out.append(rec)
                events += evs
        self._emit(events)
        return out

    def batch_update(
        self, object_type: str, inputs: Any, id_property: str | None = None
    ) -> tuple[list[Record], list[dict[str, Any]]]:
        """Update up to 100 records; returns updated records and per-item failures.

        Invalid property values fail the whole batch with 400 (as HubSpot does); ids that do not exist and
        ids listed in ``fail_ids`` fail per item, giving a 207.
        """
        inputs = self._check_batch_size(inputs)
        with self.lock:
            ids = [str(i.get("id", "")) for i in inputs]
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValidationError(f"Duplicate IDs found in batch input: {dupes}. IDs must be unique")
            prepared, failures = [], []
            for item in inputs:
                key = str(item.get("id", ""))
                rec = self._find(object_type, key, item.get("idProperty") or id_property)
                if rec is None or rec.archived:
                    failures.append({"kind": "missing", "id": key})
                    continue
                values = self.validate_properties(object_type, item.get("properties") or {}, rec)
                self._check_unique(object_type, values, rec.id)
                if rec.id in self.fail_ids:
                    failures.append({"kind": "fault", "id": rec.id})
                    continue
                prepared.append((rec, values))
            events: list[Event] = []
            for rec, values in prepared:
                events += self._update_validated(rec, values, "API")
        self._emit(events)
        return [r for r, _ in prepared], failures

    def batch_upsert(
        self, object_type: str, inputs: Any
    ) -> tuple[list[tuple[Record, bool]], list[dict[str, Any]]]:
        """Create-or-update by a unique ``idProperty``; returns (record, created) pairs and failures."""
        inputs = self._check_batch_size(inputs)
        with self.lock:
            plan: list[tuple[Record | None, dict[str, str]]] = []
            failures: list[dict[str, Any]] = []
            seen: set[str] = set()
            for item in inputs:
                id_prop = item.get("idProperty") or "hs_object_id"
                key = str(item.get("id", ""))
                if id_prop != "hs_object_id" and (object_type, id_prop) not in self.unique:
                    raise ValidationError(
                        f"{id_prop} is not a unique property and cannot be used as idProperty",
                        subCategory="crm.objects.INVALID_ID_PROPERTY",
                    )
                if (id_prop, key) in seen:
                    raise ValidationError(f"Duplicate IDs found in batch input: [{key}]. IDs must be unique")
                seen.add((id_prop, key))  # type: ignore[arg-type]
                rec = self._find(object_type, key, id_prop)
                if rec is not None and rec.archived:
                    rec = None
                props = dict(item.get("properties") or {})
                if rec is None:
                    if id_prop == "hs_object_id":
                        failures.append({"kind": "missing", "id": key})
                        continue
                    props.setdefault(id_prop, key)
                values = self.validate_properties(object_type, props, rec)
                self._check_unique(object_type, values, rec.id if rec else None)
                if rec is not None and rec.id in self.fail_ids:
                    failures.append({"kind": "fault", "id": rec.id})
                    continue
                plan.append((rec, values))
            out: list[tuple[Record, bool]] = []
            events: list[Event] = []
            for rec, values in plan:
                if rec is None:
                    new, evs = self._create_validated(object_type, values, [], "API")
                    out.append((new, True))
                else:
                    evs = self._update_validated(rec, values, "API")
                    out.append((rec, False))
                events += evs
        self._emit(events)
        return out, failures

    def batch_archive(self, object_type: str, inputs: Any) -> None:
        """Archive up to 100 records (missing ids are ignored, as HubSpot answers 204 regardless)."""
        inputs = self._check_batch_size(inputs)
        with self.lock:
            events: list[Event] = []
            for item in inputs:
                rec = self.objects[object_type].get(str(item.get("id", "")))
                if rec is not None and not rec.archived:
                    events += self._archive(rec)
        self._emit(events)

    # ------------------------------------------------------------------ search
    def search(self, object_type: str, body: dict[str, Any]) -> tuple[int, list[Record], str | None]:
        """Run a CRM search: total matches, one page of records, and the next ``after`` cursor."""
        if not isinstance(body, dict):
            raise ValidationError("Invalid input JSON: search body must be an object")
        limit = body.get("limit")
        limit = 10 if limit is None else limit
        if not isinstance(limit, int) or limit < 0:
            raise ValidationError(f"limit must be a non-negative integer, got {limit!r}")
        if limit > SEARCH_MAX_LIMIT:
            raise ValidationError(
                f"Limit {limit} is larger than the maximum of {SEARCH_MAX_LIMIT}.",
                context={"limit": [str(limit)]},
            )
        after_raw = body.get("after")
        try:
            offset = int(after_raw) if after_raw not in (None, "") else 0
        except (TypeError, ValueError):
            raise ValidationError(f"Invalid after value: {after_raw}") from None
        if offset >= SEARCH_MAX_RESULTS:
            # HubSpot: "The search endpoints are limited to 10,000 total results for any given query.
            # Attempting to page beyond 10,000 will result in a 400 error."
            raise ValidationError(
                f"Paging beyond {SEARCH_MAX_RESULTS} results is not supported: the search endpoints are "
                f"limited to {SEARCH_MAX_RESULTS} total results for any given query.",
                context={"after": [str(after_raw)]},
            )
        query = body.get("query")
        if query is not None and len(str(query)) > SEARCH_MAX_QUERY:
            raise ValidationError(f"query is longer than {SEARCH_MAX_QUERY} characters")
        groups = body.get("filterGroups") or []
        if len(groups) > SEARCH_MAX_GROUPS:
            raise ValidationError(f"Too many filter groups: {len(groups)} (maximum {SEARCH_MAX_GROUPS})")
        total_filters = 0
        with self.lock:
            defs = self.properties[object_type]
            compiled_groups = []
            for group in groups:
                filters = group.get("filters") or []
                if len(filters) > SEARCH_MAX_FILTERS_PER_GROUP:
                    raise ValidationError(
                        f"Too many filters in a group: {len(filters)} "
                        f"(maximum {SEARCH_MAX_FILTERS_PER_GROUP})"
                    )
                total_filters += len(filters)
                compiled_groups.append([self._compile_filter(object_type, defs, f) for f in filters])
            if total_filters > SEARCH_MAX_FILTERS:
                raise ValidationError(f"Too many filters: {total_filters} (maximum {SEARCH_MAX_FILTERS})")
            sort_key = self._compile_sorts(object_type, defs, body.get("sorts") or [])
            tokens = [t for t in re.split(r"\s+", str(query).lower().strip()) if t] if query else []
            qprops = schema.OBJECT_TYPES[object_type].query_props
            matches = []
            for rec in self.objects[object_type].values():
                if rec.archived:
                    continue
                if compiled_groups and not any(all(f(rec) for f in g) for g in compiled_groups):
                    continue
                if tokens and not self._query_match(rec, tokens, qprops):
                    continue
                matches.append(rec)
            matches.sort(key=sort_key)
            total = len(matches)
            visible = min(total, SEARCH_MAX_RESULTS)
            page = matches[offset : min(offset + limit, visible)]
            nxt = str(offset + limit) if offset + limit < total else None
            return total, page, nxt

    def _query_match(self, rec: Record, tokens: list[str], props: tuple[str, ...]) -> bool:
        words: list[str] = []
        for p in props:
            v = self.value(rec, p)
            if v:
                low = v.lower()
                words.append(low)
                words += [w for w in re.split(r"[^\w@.\-]+|[\s]+", low) if w]
        words.append(rec.id)
        return all(any(w.startswith(t) or (t in w and "@" in t) for w in words) for t in tokens)

    def _typed(self, prop: dict[str, Any] | None, value: str | None) -> Any:
        if value is None or value == "":
            return None
        type_ = prop["type"] if prop else "string"
        if type_ == "number":
            try:
                return float(value)
            except ValueError:
                return None
        if type_ in ("date", "datetime"):
            return parse_time(value)
        return str(value).lower()

    def typed_value(self, rec: Record, name: str, prop: dict[str, Any] | None) -> Any:
        """A property value converted for comparison (numbers, epoch ms, lower-cased strings)."""
        ot = schema.OBJECT_TYPES[rec.object_type]
        if name == ot.modified_prop:
            return rec.updated_ms
        if name == "hs_object_id":
            return float(rec.id)
        if name == ot.created_prop and not rec.properties.get(name):
            return rec.created_ms
        return self._typed(prop, self.value(rec, name))

    def _compile_filter(
        self, object_type: str, defs: dict[str, dict[str, Any]], f: dict[str, Any]
    ) -> Callable[[Record], bool]:
        name = f.get("propertyName")
        op = f.get("operator")
        if not name or not op:
            raise ValidationError("Each filter needs a propertyName and an operator")
        if op not in OPERATORS:
            raise ValidationError(f"Invalid operator {op!r}; use one of {sorted(OPERATORS)}")
        prop = defs.get(name)
        if prop is None:
            raise ValidationError(
                f"Unable to find property {name} for object type {object_type}",
                context={"propertyName": [name]},
            )
        if name == "hs_object_id":
            prop = {"type": "number"}

        def get(rec: Record) -> Any:
            return self.typed_value(rec, name, prop)

        if op == "HAS_PROPERTY":
            return lambda r: get(r) is not None
        if op == "NOT_HAS_PROPERTY":
            return lambda r: get(r) is None
        if op in ("IN", "NOT_IN"):
            values = f.get("values")
            if not isinstance(values, list):
                raise ValidationError(f"Operator {op} requires values")
            wanted = {self._typed(prop, str(v)) for v in values}
            if op == "IN":
                return lambda r: get(r) in wanted
            return lambda r: get(r) not in wanted
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            pattern = str(f.get("value", "")).lower()

            def contains(r: Record) -> bool:
                raw = self.value(r, name)
                if not raw:
                    return False
                low = raw.lower()
                tokens = [low, *(t for t in re.split(r"[\s,;]+", low) if t)]
                if "*" in pattern:
                    return any(fnmatch.fnmatchcase(t, pattern) for t in tokens)
                return pattern in tokens or pattern in re.split(r"[^\w]+", low)

            if op == "CONTAINS_TOKEN":
                return contains
            return lambda r: not contains(r)
        if "value" not in f and op != "BETWEEN":
            raise ValidationError(f"Operator {op} requires a value")
        target = self._typed(prop, None if f.get("value") is None else str(f.get("value")))
        if target is None and prop["type"] in ("number", "date", "datetime") and op != "BETWEEN":
            raise ValidationError(
                f"{f.get('value')} is not a valid value for {name}", context={"propertyName": [name]}
            )
        if op == "EQ":
            return lambda r: get(r) == target
        if op == "NEQ":
            return lambda r: get(r) != target
        if op == "BETWEEN":
            low = self._typed(prop, str(f.get("value")))
            high = self._typed(prop, str(f.get("highValue")))
            if low is None or high is None:
                raise ValidationError("BETWEEN requires value and highValue")
            return lambda r: (v := get(r)) is not None and low <= v <= high
        cmp = {
            "LT": lambda a, b: a < b,
            "LTE": lambda a, b: a <= b,
            "GT": lambda a, b: a > b,
            "GTE": lambda a, b: a >= b,
        }[op]
        return lambda r: (v := get(r)) is not None and cmp(v, target)

    def _compile_sorts(
        self, object_type: str, defs: dict[str, dict[str, Any]], sorts: list[Any]
    ) -> Callable[[Record], Any]:
        # HubSpot accepts ``"sorts": ["-createdate"]``-style strings and
        # ``[{"propertyName": ..., "direction": "ASCENDING"|"DESCENDING"}]``; only one sort rule applies.
        if len(sorts) > 1:
            raise ValidationError("Only one sort is allowed per search request")
        if not sorts:
            return lambda r: int(r.id)
        spec = sorts[0]
        if isinstance(spec, str):
            desc = spec.startswith("-")
            name = spec.lstrip("-")
        elif isinstance(spec, dict):
            name = spec.get("propertyName", "")
            direction = str(spec.get("direction", "ASCENDING")).upper()
            if direction not in ("ASCENDING", "DESCENDING"):
                raise ValidationError(f"Invalid sort direction {direction}")
            desc = direction == "DESCENDING"
        else:
            raise ValidationError("Invalid sort")
        prop = defs.get(name)
        if prop is None:
            raise ValidationError(f"Unable to find property {name} for object type {object_type}")
        if name == "hs_object_id":
            prop = {"type": "number"}

        def key(rec: Record) -> Any:
            v = self.typed_value(rec, name, prop)
            # Records without the value sort last; ties break by id so paging is stable.
            if desc:
                if v is None:
                    return (1, 0, int(rec.id))
                return (0, _Neg(v), int(rec.id))
            return (v is None, v if v is not None else 0, int(rec.id))

        return key

    # ------------------------------------------------------------------ associations
    def assoc_type_name(self, type_id: int) -> str:
        """v3 association type name, e.g. ``deal_to_contact`` or ``deal_to_company_unlabeled``."""
        a = self.assoc_types[type_id]
        base = f"{schema.OBJECT_TYPES[a.from_type].singular}_to_{schema.OBJECT_TYPES[a.to_type].singular}"
        if a.category != "HUBSPOT_DEFINED":
            return a.label or base
        has_primary = any(
            t.label == "Primary" and t.from_type == a.from_type and t.to_type == a.to_type
            for t in self.assoc_types.values()
        )
        if has_primary and a.label is None:
            return base + "_unlabeled"
        return base

    def _associate(
        self, from_type: str, from_id: str, to_type: str, to_id: str, type_ids: Iterable[int]
    ) -> list[Event]:
        events = []
        for type_id in type_ids:
            atype = self.assoc_types[type_id]
            fwd = self.assoc.setdefault((from_type, from_id, to_type), {}).setdefault(to_id, set())
            back = self.assoc.setdefault((to_type, to_id, from_type), {}).setdefault(from_id, set())
            if type_id in fwd:
                continue
            fwd.add(type_id)
            back.add(atype.inverse_id)
            events += self._assoc_events(atype, from_type, from_id, to_type, to_id, removed=False)
        return events

    def _assoc_events(
        self,
        atype: schema.AssociationType,
        from_type: str,
        from_id: str,
        to_type: str,
        to_id: str,
        removed: bool,
    ) -> list[Event]:
        ts = now_ms()
        inv = self.assoc_types[atype.inverse_id]
        out = []
        for a, ft, fid, tt, tid in (
            (atype, from_type, from_id, to_type, to_id),
            (inv, to_type, to_id, from_type, from_id),
        ):
            name = (f"{schema.OBJECT_TYPES[ft].singular}_to_{schema.OBJECT_TYPES[tt].singular}").upper()
            out.append(
                Event(
                    "associationChange",
                    ft,
                    fid,
                    ts,
                    extra={
                        "associationType": name,
                        "fromObjectId": int(fid),
                        "toObjectId": int(tid),
                        "associationRemoved": removed,
                        "isPrimaryAssociation": a.label == "Primary",
                        "associationCategory": a.category,
                        "associationTypeId": a.type_id,
                    },
                )
            )
        return out

    def _dissociate(
        self, from_type: str, from_id: str, to_type: str, to_id: str, type_ids: Iterable[int] | None
    ) -> list[Event]:
        fwd = self.assoc.get((from_type, from_id, to_type), {}).get(to_id)
        if not fwd:
            return []
        remove = set(fwd) if type_ids is None else set(type_ids) & fwd
        events = []
        back = self.assoc.get((to_type, to_id, from_type), {}).get(from_id, set())
        for type_id in remove:
            atype = self.assoc_types[type_id]
            fwd.discard(type_id)
            back.discard(atype.inverse_id)
            events += self._assoc_events(atype, from_type, from_id, to_type, to_id, removed=True)
        if not fwd:
            self.assoc[(from_type, from_id, to_type)].pop(to_id, None)
        if not back:
            self.assoc.get((to_type, to_id, from_type), {}).pop(from_id, None)
        return events

    def _require_live(self, object_type: str, object_id: str) -> Record:
        rec = self.objects[object_type].get(str(object_id))
        if rec is None or rec.archived:
            raise NotFound(
                f"No {schema.OBJECT_TYPES[object_type].singular} with ID {object_id} exists",
                subCategory="crm.associations.INVALID_OBJECT_IDS",
            )
        return rec

    def _check_specs(self, from_type: str, to_type: str, specs: list[dict[str, Any]]) -> list[int]:
        if not isinstance(specs, list) or not specs:
            raise ValidationError("At least one association type is required")
        out = []
        for spec in specs:
            try:
                type_id = int(spec.get("associationTypeId"))
            except (TypeError, ValueError):
                raise ValidationError("associationTypeId is required") from None
            atype = self.assoc_types.get(type_id)
            if atype is None or atype.from_type != from_type or atype.to_type != to_type:
                raise ValidationError(
                    f"{type_id} is not a valid association type between {from_type} and {to_type}",
                    subCategory="crm.associations.INVALID_ASSOCIATION_TYPE",
                )
            category = spec.get("associationCategory")
            if category and category != atype.category:
                raise ValidationError(f"associationCategory {category} does not match type {type_id}")
            out.append(type_id)
        return out

    def associate(
        self, from_type: str, from_id: str, to_type: str, to_id: str, specs: list[dict[str, Any]] | None
    ) -> list[int]:
        """Create an association (labeled when specs are given, else the default type)."""
        with self.lock:
            self._require_live(from_type, from_id)
            self._require_live(to_type, to_id)
            if specs is None:
                default = self.default_assoc.get((from_type, to_type))
                if default is None:
                    raise ValidationError(f"No default association between {from_type} and {to_type}")
                type_ids = [default]
            else:
                type_ids = self._check_specs(from_type, to_type, specs)
            events = self._associate(from_type, str(from_id), to_type, str(to_id), type_ids)
            current = sorted(self.assoc[(from_type, str(from_id), to_type)][str(to_id)])
        self._emit(events)
        return current

    def dissociate(
        self, from_type: str, from_id: str, to_type: str, to_id: str, type_ids: list[int] | None = None
    ) -> None:
        """Remove all (or only the given) association types between two records."""
        with self.lock:
            events = self._dissociate(from_type, str(from_id), to_type, str(to_id), type_ids)
        self._emit(events)

    def associations_of(self, from_type: str, from_id: str, to_type: str) -> list[tuple[str, list[int]]]:
        """(to_id, type ids) pairs, in id order, for live targets."""
        with self.lock:
            targets = self.assoc.get((from_type, str(from_id), to_type), {})
            live = self.objects[to_type]
            return [
                (tid, sorted(types))
                for tid, types in sorted(targets.items(), key=lambda kv: int(kv[0]))
                if types and tid in live and not live[tid].archived
            ]

    def label_of(self, type_id: int) -> dict[str, Any]:
        """``AssociationSpecWithLabel`` for one association type id."""
        a = self.assoc_types[type_id]
        # HubSpot sends "label": null for unlabeled types; the spec types label as a string, so omit it.
        out: dict[str, Any] = {"category": a.category, "typeId": a.type_id}
        if a.label is not None:
            out["label"] = a.label
        return out

    def create_label(self, from_type: str, to_type: str, label: str, inverse: str | None) -> list[int]:
        """Define a USER_DEFINED association label (and its inverse); returns the new type ids."""
        with self.lock:
            for a in self.assoc_types.values():
                if a.from_type == from_type and a.to_type == to_type and a.label == label:
                    raise AlreadyExists(f"Association label {label!r} already exists")
            fwd = next(self._label_ids)
            back = next(self._label_ids)
            self.assoc_types[fwd] = schema.AssociationType(
                from_type, to_type, fwd, back, label, "USER_DEFINED"
            )
            self.assoc_types[back] = schema.AssociationType(
                to_type, from_type, back, fwd, inverse or label, "USER_DEFINED"
            )
            return [fwd, back]

    def labels_between(self, from_type: str, to_type: str) -> list[dict[str, Any]]:
        """Association types defined from one object type to another."""
        with self.lock:
            return [
                self.label_of(a.type_id)
                for a in self.assoc_types.values()
                if a.from_type == from_type and a.to_type == to_type
            ]

    # ------------------------------------------------------------------ owners
    def list_owners(self, email: str | None, archived: bool) -> list[dict[str, Any]]:
        """Owners, optionally filtered by email."""
        with self.lock:
            return [
                dict(o)
                for o in self.owners
                if o["archived"] == archived and (email is None or o["email"].lower() == email.lower())
            ]

    def get_owner(self, owner_id: str, id_property: str = "id") -> dict[str, Any]:
        """One owner by ``id`` or ``userId``."""
        with self.lock:
            for o in self.owners:
                if str(o["userId" if id_property == "userId" else "id"]) == str(owner_id):
                    return dict(o)
        raise NotFound(f"No owner with {id_property} {owner_id}")

    def add_owner(self, first: str, last: str, email: str) -> dict[str, Any]:
        """Add an owner (used by seeding)."""
        with self.lock:
            n = len(self.owners)
            stamp = iso(now_ms())
            owner = {
                "id": str(75480756 + n),
                "userId": 10153601 + n,
                "userIdIncludingInactive": 10153601 + n,
                "firstName": first,
                "lastName": last,
                "email": email,
                "type": "PERSON",
                "archived": False,
                "createdAt": stamp,
                "updatedAt": stamp,
                "teams": [],
            }
            self.owners.append(owner)
            return owner

    # ------------------------------------------------------------------ pipelines
    def _pipelines_of(self, object_type: str) -> dict[str, dict[str, Any]]:
        if object_type not in self.pipelines:
            raise ValidationError(f"Object type {object_type} does not support pipelines")
        return self.pipelines[object_type]

    def list_pipelines(self, object_type: str) -> list[dict[str, Any]]:
        """Pipelines of a type in display order."""
        with self.lock:
            return copy.deepcopy(
                sorted(
                    (p for p in self._pipelines_of(object_type).values() if not p["archived"]),
                    key=lambda p: p["displayOrder"],
                )
            )

    def get_pipeline(self, object_type: str, pipeline_id: str) -> dict[str, Any]:
        """One pipeline or 404."""
        with self.lock:
            pipe = self._pipelines_of(object_type).get(pipeline_id)
            if pipe is None or pipe["archived"]:
                raise NotFound(f"Unable to find pipeline {pipeline_id}")
            return copy.deepcopy(pipe)

    def _stage(self, object_type: str, body: dict[str, Any], stamp: str) -> dict[str, Any]:
        if not body.get("label"):
            raise ValidationError("Each stage needs a label")
        metadata = {k: str(v) for k, v in (body.get("metadata") or {}).items()}
        if object_type == "deals":
            # Deal stages require a win probability between 0 and 1 (HubSpot pipelines API).
            try:
                prob = float(metadata.get("probability", ""))
            except ValueError:
                raise ValidationError(
                    "Deal stages require metadata.probability between 0.0 and 1.0"
                ) from None
            if not 0 <= prob <= 1:
                raise ValidationError("Deal stages require metadata.probability between 0.0 and 1.0")
            metadata.setdefault(
                "isClosed",
                "true" if prob in (0.0, 1.0) and "closed" in str(body["label"]).lower() else "false",
            )
        return {
            "id": str(next(self._pipeline_ids)),
            "label": body["label"],
            "displayOrder": body.get("displayOrder", 0),
            "archived": False,
            "createdAt": stamp,
            "updatedAt": stamp,
            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
            "metadata": metadata,
        }

    def create_pipeline(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a pipeline with its stages (``PipelineInput``)."""
        with self.lock:
            pipes = self._pipelines_of(object_type)
            if not body.get("label") or not isinstance(body.get("stages"), list) or not body["stages"]:
                raise ValidationError("A pipeline needs a label and at least one stage")
            if any(p["label"] == body["label"] and not p["archived"] for p in pipes.values()):
                raise Conflict(f"A pipeline with label {body['label']!r} already exists")
            stamp = iso(now_ms())
            pipe = {
                "id": str(body.get("pipelineId") or next(self._pipeline_ids)),
                "label": body["label"],
                "displayOrder": body.get("displayOrder", len(pipes)),
                "archived": False,
                "createdAt": stamp,
                "updatedAt": stamp,
                "stages": [self._stage(object_type, s, stamp) for s in body["stages"]],
            }
            pipes[pipe["id"]] = pipe
            return copy.deepcopy(pipe)

    def update_pipeline(self, object_type: str, pipeline_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH a pipeline's label or display order."""
        with self.lock:
            pipe = self._pipelines_of(object_type).get(pipeline_id)
            if pipe is None or pipe["archived"]:
                raise NotFound(f"Unable to find pipeline {pipeline_id}")
            for key in ("label", "displayOrder", "archived"):
                if key in body:
                    pipe[key] = body[key]
            pipe["updatedAt"] = iso(now_ms())
            return copy.deepcopy(pipe)

    def archive_pipeline(self, object_type: str, pipeline_id: str) -> None:
        """Archive a pipeline."""
        with self.lock:
            pipe = self._pipelines_of(object_type).get(pipeline_id)
            if pipe is None or pipe["archived"]:
                raise NotFound(f"Unable to find pipeline {pipeline_id}")
            pipe["archived"] = True
            pipe["archivedAt"] = iso(now_ms())

    def create_stage(self, object_type: str, pipeline_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Add a stage to a pipeline."""
        with self.lock:
            pipe = self._pipelines_of(object_type).get(pipeline_id)
            if pipe is None or pipe["archived"]:
                raise NotFound(f"Unable to find pipeline {pipeline_id}")
            stage = self._stage(object_type, body, iso(now_ms()))
            pipe["stages"].append(stage)
            return copy.deepcopy(stage)


class _Neg:
    """Reverses ordering of a value inside a sort key (descending sort with an ascending id tie-break)."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: _Neg) -> bool:
        return self.v > other.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Neg) and self.v == other.v

    def __hash__(self) -> int:
        return hash(self.v)


__all__ = ["Event", "HubSpotBackend", "HubSpotError", "Record", "iso", "now_ms", "parse_time"]
