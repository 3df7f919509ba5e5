"""Associations (v4): default and labelled association types, links between records, USER_DEFINED labels."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from emulators.hubspot import schema
from emulators.hubspot.exceptions import AlreadyExists, NotFound, ValidationError
from emulators.hubspot.models.base import BackendBase, Event, Record, now_ms


class AssociationsMixin(BackendBase):
    """Association types and the links between records (both directions kept in step)."""

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

    def add_associations(
        self, from_type: str, from_id: str, to_type: str, to_id: str, type_ids: Iterable[int]
    ) -> list[Event]:
        """Link two records with the given association types (and their inverses).

        No validation; the caller holds the lock and emits the returned events.
        """
        events = []
        for type_id in type_ids:
            atype = self.assoc_types[type_id]
            fwd = self.assoc.setdefault((from_type, from_id, to_type), {}).setdefault(to_id, set())
            back = self.assoc.setdefault((to_type, to_id, from_type), {}).setdefault(from_id, set())
            if type_id in fwd:
                continue
            if not fwd:
                self._contacts_changed(from_type, from_id, to_type, to_id)
            fwd.add(type_id)
            back.add(atype.inverse_id)
            events += self._assoc_events(atype, from_type, from_id, to_type, to_id, removed=False)
        return events

    def _contacts_changed(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """A deal gained or lost a contact: its calculated ``num_associated_contacts`` changed.

        HubSpot modifies the deal (``hs_lastmodifieddate``) when a calculated property changes, so the
        deal shows in a search on its modification date (docs/api-rules.md, "Deal contacts").
        """
        pair = {from_type: from_id, to_type: to_id}
        if set(pair) != {"deals", "contacts"}:
            return
        deal = self.objects.get("deals", {}).get(str(pair["deals"]))
        if deal is not None:
            deal.updated_ms = max(now_ms(), deal.updated_ms + 1)

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

    def remove_associations(
        self, from_type: str, from_id: str, to_type: str, to_id: str, type_ids: Iterable[int] | None
    ) -> list[Event]:
        """Unlink two records: all association types, or only ``type_ids`` (and their inverses).

        The caller holds the lock and emits the returned events.
        """
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
            if remove:
                self._contacts_changed(from_type, from_id, to_type, to_id)
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

    def check_specs(self, from_type: str, to_type: str, specs: list[dict[str, Any]]) -> list[int]:
        """Association type ids for ``AssociationSpec`` items, or HubSpot's 400 for an invalid one."""
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

    def validate_inline_associations(
        self, object_type: str, associations: list[dict[str, Any]]
    ) -> list[tuple[str, str, list[int]]]:
        """``(to_type, to_id, type_ids)`` for a create's inline ``associations``, or HubSpot's 400."""
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
                type_ids = self.check_specs(from_type, to_type, specs)
            events = self.add_associations(from_type, str(from_id), to_type, str(to_id), type_ids)
            current = sorted(self.assoc[(from_type, str(from_id), to_type)][str(to_id)])
        self.emit(events)
        return current

    def dissociate(
        self, from_type: str, from_id: str, to_type: str, to_id: str, type_ids: list[int] | None = None
    ) -> None:
        """Remove all (or only the given) association types between two records."""
        with self.lock:
            events = self.remove_associations(from_type, str(from_id), to_type, str(to_id), type_ids)
        self.emit(events)

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
            fwd = self.next_label_id()
            back = self.next_label_id()
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
