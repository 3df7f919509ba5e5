"""CRM records: create, read, update, archive, list, and the batch read/create/update/upsert/archive.

Every write keeps the per-property history that ``propertiesWithHistory`` reads, keeps unique-value
indexes current, and reports webhook events after the lock is released.
"""

from __future__ import annotations

from typing import Any

from emulators.hubspot import schema
from emulators.hubspot.exceptions import Conflict, NotFound, ValidationError
from emulators.hubspot.models.associations import AssociationsMixin
from emulators.hubspot.models.base import (
    BATCH_MAX,
    BATCH_MAX_WITH_HISTORY,
    Event,
    Record,
    iso,
    now_ms,
    parse_time,
    unique_key,
)
from emulators.hubspot.models.properties import PropertiesMixin


class RecordsMixin(PropertiesMixin, AssociationsMixin):
    """Record CRUD and batches; builds on property validation and (inline) associations."""

    def _modified_prop(self, object_type: str) -> str:
        return schema.OBJECT_TYPES[object_type].modified_prop

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
                    index.pop(unique_key(name, old), None)
                if value:
                    index[unique_key(name, value)] = rec.id
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
            found = index.get(unique_key(id_property, str(object_id)))
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
            self.check_unique(object_type, values, None)
            assoc = self.validate_inline_associations(object_type, associations or [])
            rec, events = self._create_validated(object_type, values, assoc, source, created_ms)
        self.emit(events)
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
            events += self.add_associations(object_type, rec.id, to_type, to_id, type_ids)
        return rec, events

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
            self.check_unique(object_type, values, rec.id)
            events = self._update_validated(rec, values, source)
        self.emit(events)
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
        self.emit(events)

    def _archive(self, rec: Record) -> list[Event]:
        ts = self._touch(rec)
        rec.archived = True
        rec.archived_ms = ts
        for (t, name), index in self.unique.items():
            if t == rec.object_type and rec.properties.get(name):
                index.pop(unique_key(name, rec.properties[name]), None)
        events = [Event("deletion", rec.object_type, rec.id, ts)]
        for (ft, fid, tt), targets in list(self.assoc.items()):
            if ft == rec.object_type and fid == rec.id:
                for to_id in list(targets):
                    events += self.remove_associations(ft, fid, tt, to_id, None)
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
    def batch_read(
        self, object_type: str, inputs: Any, id_property: str | None, with_history: bool
    ) -> tuple[list[Record], list[str]]:
        """Records for ``inputs`` and the ids that were not found."""
        inputs = self.check_batch_size(inputs, BATCH_MAX_WITH_HISTORY if with_history else BATCH_MAX)
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
        inputs = self.check_batch_size(inputs)
        with self.lock:
            prepared = []
            seen: dict[tuple[str, str], int] = {}
            for item in inputs:
                values = self.validate_properties(object_type, item.get("properties") or {})
                self.check_unique(object_type, values, None)
                for name, value in values.items():
                    if (object_type, name) in self.unique and value:
                        key = (name, unique_key(name, value))
                        if key in seen:
                            raise Conflict(f"Duplicate {name} in batch input: {value}")
                        seen[key] = 1
                assoc = self.validate_inline_associations(object_type, item.get("associations") or [])
                prepared.append((values, assoc))
            events: list[Event] = []
            out = []
            for values, assoc in prepared:
                rec, evs = self._create_validated(object_type, values, assoc, "API")
                out.append(rec)
                events += evs
        self.emit(events)
        return out

    def batch_update(
        self, object_type: str, inputs: Any, id_property: str | None = None
    ) -> tuple[list[Record], list[dict[str, Any]]]:
        """Update up to 100 records; returns updated records and per-item failures.

        Invalid property values fail the whole batch with 400 (as HubSpot does); ids that do not exist and
        ids listed in ``fail_ids`` fail per item, giving a 207.
        """
        inputs = self.check_batch_size(inputs)
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
                self.check_unique(object_type, values, rec.id)
                if rec.id in self.fail_ids:
                    failures.append({"kind": "fault", "id": rec.id})
                    continue
                prepared.append((rec, values))
            events: list[Event] = []
            for rec, values in prepared:
                events += self._update_validated(rec, values, "API")
        self.emit(events)
        return [r for r, _ in prepared], failures

    def batch_upsert(
        self, object_type: str, inputs: Any
    ) -> tuple[list[tuple[Record, bool]], list[dict[str, Any]]]:
        """Create-or-update by a unique ``idProperty``; returns (record, created) pairs and failures."""
        inputs = self.check_batch_size(inputs)
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
                self.check_unique(object_type, values, rec.id if rec else None)
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
        self.emit(events)
        return out, failures

    def batch_archive(self, object_type: str, inputs: Any) -> None:
        """Archive up to 100 records (missing ids are ignored, as HubSpot answers 204 regardless)."""
        inputs = self.check_batch_size(inputs)
        with self.lock:
            events: list[Event] = []
            for item in inputs:
                rec = self.objects[object_type].get(str(item.get("id", "")))
                if rec is not None and not rec.archived:
                    events += self._archive(rec)
        self.emit(events)
