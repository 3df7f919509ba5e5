"""Property groups and property definitions, and the rules for property values.

Covers ``/crm/v3/properties``: definitions (types, field types, options), groups, and the enforcement
every record write goes through (value types, enumeration options, read-only and unique values).
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

from emulators.hubspot import schema
from emulators.hubspot.exceptions import (
    AlreadyExists,
    Conflict,
    NotFound,
    ValidationError,
    property_error,
    property_errors_message,
)
from emulators.hubspot.models.base import BackendBase, Record, iso, now_ms, parse_time, unique_key


class PropertiesMixin(BackendBase):
    """Property definitions, groups, value validation and unique-value checks."""

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

    def check_unique(self, object_type: str, values: dict[str, str], own_id: str | None) -> None:
        """HubSpot's 409 when a unique property value already belongs to another record."""
        for name, value in values.items():
            index = self.unique.get((object_type, name))
            if index is None or value == "":
                continue
            holder = index.get(unique_key(name, value))
            if holder is not None and holder != own_id:
                label = schema.OBJECT_TYPES[object_type].singular.capitalize()
                raise Conflict(
                    f"{label} already exists. Existing ID: {holder}",
                    context={"existingId": [holder], "propertyName": [name]},
                )
