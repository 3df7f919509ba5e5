"""The one HubSpot writer: every deal, company, contact, note and task the sync writes goes through here.

Built on :class:`~cosell_sync.hubspot_api.HubSpotGateway` (batches of 100, 207s per item, a whole-batch
400 halved until the bad input is found). Reconcile, conflict resolution and rollback all write HubSpot
with :class:`HubSpotWriter`:

- updates of existing objects, one batch stream per object type, failures per record;
- new deals by upsert on the unique link property (idempotent), with their company and contacts;
- notes and tasks, checkpointed per run in S3 so a retried task never creates them twice;
- one record's values written to the deal, company and contact they live on (resolution, rollback).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cosell_sync.common import (
    COMPANY,
    CONTACT,
    DEAL,
    HUBSPOT_OBJECTS,
    NOTE_TO_DEAL,
    TASK_TO_DEAL,
    Direction,
    clean,
)
from cosell_sync.errors import ValidationError, WriteBlockedError
from cosell_sync.hubspot_api import HubSpotGateway, association_to, error_ids

if TYPE_CHECKING:
    from cosell_sync.config import SyncConfig
    from cosell_sync.storage import SnapshotStore

log = logging.getLogger(__name__)


@dataclass
class Checkpoints:
    """Per-run markers in S3: what a step already created, so its retry does not create it again.

    Args:
        snapshots: the S3 store.
        keys: name -> the marker's key (built by the caller with ``storage.run_key``).
    """

    snapshots: SnapshotStore
    keys: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """The marker's value, or None when the step has not recorded it."""
        key = self.keys[name]
        return self.snapshots.get_json(key) if self.snapshots.exists(key) else None

    def put(self, name: str, value: Any) -> None:
        """Record the marker."""
        self.snapshots.put_json(value, self.keys[name])


@dataclass
class UpdateOutcome:
    """Per-record outcome of :meth:`HubSpotWriter.update_objects`.

    Attributes:
        updated: record key -> object types written.
        failed: record key -> the error (HubSpot's category and message).
    """

    updated: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)


class HubSpotWriter:
    """Batched HubSpot writes for one run (see the module doc).

    Args:
        cfg: the sync configuration.
        gateway: the counted HubSpot gateway.
        checkpoints: per-run markers (``new_companies``, ``notes``); None where a caller needs none.
    """

    def __init__(
        self, cfg: SyncConfig, gateway: HubSpotGateway, checkpoints: Checkpoints | None = None
    ) -> None:
        self.cfg = cfg
        self.gw = gateway
        self.checkpoints = checkpoints

    # -- updates ----------------------------------------------------------------------------------------
    def update_objects(
        self, per_object: dict[str, dict[str, dict[str, str]]], owner_of: dict[tuple[str, str], str]
    ) -> UpdateOutcome:
        """Update existing objects: ``{plural: {object id: {property: value}}}``, one batch stream each.

        Args:
            per_object: the properties to write per object.
            owner_of: ``(plural, object id)`` -> the record key the object belongs to (for the outcome).

        Returns:
            Updated and failed records.
        """
        out = UpdateOutcome()
        for plural, updates in per_object.items():
            if not updates:
                continue
            outcome = self.gw.batch_update(plural, updates)
            failed = error_ids(outcome.errors)
            for target in updates:
                key = owner_of.get((plural, target), target)
                if target in failed:
                    out.failed[key] = {"type": "ValidationError", "service": "hubspot", **failed[target]}
                else:
                    out.updated.setdefault(key, []).append(plural)
            if outcome.errors and not failed:
                # A 207 whose errors name no ids: we cannot tell which items failed, so fail them all.
                for target in updates:
                    key = owner_of.get((plural, target), target)
                    out.failed[key] = {"type": "ValidationError", "message": outcome.errors[0].get("message")}
                    out.updated.pop(key, None)
        return out

    # -- new deals ----------------------------------------------------------------------------------------
    def upsert_deals(
        self, rows: dict[str, dict[str, str]]
    ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        """Create deals by upsert on the unique link property: ``{opportunity id: properties}``.

        Returns:
            ``(opportunity id -> deal id, opportunity id -> error)``.
        """
        link = self.cfg.link_property
        created: dict[str, str] = {}
        outcome = self.gw.batch_upsert(DEAL.plural, link, rows)
        failed = {
            oid: {"type": "ValidationError", "service": "hubspot", **err}
            for oid, err in error_ids(outcome.errors).items()
        }
        for obj in outcome.results:
            if (obj.get("properties") or {}).get(link):
                created[obj["properties"][link]] = obj["id"]
        # Batch responses are not ordered like the inputs and need not echo every property: find the
        # deal of any upserted opportunity we could not match by reading it back on the link property.
        unmatched = [oid for oid in rows if oid not in created and oid not in failed]
        if unmatched:
            found, _ = self.gw.batch_read(DEAL.plural, unmatched, [link], id_property=link)
            for obj in found:
                created[obj["properties"][link]] = obj["id"]
        return created, failed

    def create_related(
        self, created: dict[str, str], props: dict[str, dict[str, dict[str, str]]]
    ) -> dict[str, dict[str, str | None]]:
        """Give each new deal its company and primary contact; returns their ids per opportunity.

        Contacts are upserted on ``email`` (unique in HubSpot), so a retry finds them instead of making
        duplicates; companies have no unique property, so their creation is checkpointed per run.
        Ids are read back through the deal's associations: batch responses are not ordered like inputs.

        Args:
            created: opportunity id -> new deal id.
            props: opportunity id -> object name -> properties (from ``new_deal_properties``).

        Returns:
            Opportunity id -> ``{"company_id", "contact_id"}``.
        """
        done: list[str] = (self.checkpoints.get("new_companies") if self.checkpoints else None) or []
        company_inputs = [
            {
                "properties": props[oid][COMPANY.name],
                "associations": association_to(deal_id, COMPANY.to_deal_association),
            }
            for oid, deal_id in created.items()
            if props.get(oid, {}).get(COMPANY.name) and oid not in done
        ]
        if company_inputs:
            self.gw.batch_create(COMPANY.plural, company_inputs)
        by_email = {
            p[CONTACT.name]["email"]: (oid, p[CONTACT.name])
            for oid, p in props.items()
            if oid in created and p.get(CONTACT.name, {}).get("email")
        }
        if by_email:
            self.gw.batch_upsert(
                CONTACT.plural, "email", {email: row for email, (_, row) in by_email.items()}
            )
            found, _ = self.gw.batch_read(CONTACT.plural, list(by_email), ["email"], id_property="email")
            contact_ids = {str(c["properties"].get("email")): c["id"] for c in found}
            pairs = [
                (created[oid], contact_ids[email])
                for email, (oid, _) in by_email.items()
                if email in contact_ids
            ]
            self.gw.associate_default(DEAL.plural, CONTACT.plural, pairs)
        without_email = [
            {
                "properties": props[oid][CONTACT.name],
                "associations": association_to(deal_id, CONTACT.to_deal_association),
            }
            for oid, deal_id in created.items()
            if props.get(oid, {}).get(CONTACT.name)
            and not props[oid][CONTACT.name].get("email")
            and oid not in done
        ]
        if without_email:
            self.gw.batch_create(CONTACT.plural, without_email)
        if (company_inputs or without_email) and self.checkpoints:
            # Both creates are done: a retried task must not create these companies or contacts again.
            self.checkpoints.put("new_companies", sorted({*done, *created}))
        deal_ids = list(created.values())
        companies = self.gw.associations(DEAL.plural, COMPANY.plural, deal_ids)
        contacts = self.gw.associations(DEAL.plural, CONTACT.plural, deal_ids)
        return {
            oid: {"company_id": (companies.get(d) or [None])[0], "contact_id": (contacts.get(d) or [None])[0]}
            for oid, d in created.items()
        }

    # -- notes and tasks ------------------------------------------------------------------------------------
    def write_notes(self, notes: dict[str, str]) -> int:
        """One note per deal (``{deal id: HTML body}``), at most once per run (checkpointed).

        Returns:
            Notes created (or created by an earlier attempt of the same run).
        """
        if self.checkpoints:
            marker = self.checkpoints.get("notes")
            if marker is not None:
                return int(marker["count"])
        now_ms = str(int(time.time() * 1000))
        inputs = [
            {
                "properties": {"hs_timestamp": now_ms, "hs_note_body": body},
                "associations": association_to(deal_id, NOTE_TO_DEAL),
            }
            for deal_id, body in notes.items()
        ]
        count = len(self.gw.batch_create("notes", inputs).results) if inputs else 0
        if self.checkpoints:
            self.checkpoints.put("notes", {"count": count})
        return count

    def create_conflict_tasks(self, conflicts: list[dict[str, Any]]) -> dict[str, str]:
        """A task on the deal for each conflict (``conflict_id``, ``field``, ``deal_id``); marks the deals.

        Returns:
            Conflict id -> task id, for the conflicts whose task was created.
        """
        with_deal = [c for c in conflicts if c.get("deal_id")]
        if not with_deal:
            return {}
        inputs = [
            {
                "properties": {
                    "hs_task_subject": f"Resolve co-sell conflict on {self.cfg.field(c['field']).hubspot}",
                    "hs_task_body": (
                        "HubSpot and AWS Partner Central both changed this field since the last sync. "
                        f"Conflict id {c['conflict_id']}: resolve it with the cosell_resolve_conflict DAG."
                    ),
                    "hs_task_status": "NOT_STARTED",
                    "hs_task_priority": "HIGH",
                    "hs_timestamp": str(int(time.time() * 1000)),
                },
                "associations": association_to(str(c["deal_id"]), TASK_TO_DEAL),
            }
            for c in with_deal
        ]
        outcome = self.gw.batch_create("tasks", inputs)
        # Created tasks are matched to conflicts by the conflict id in their body: batch responses are
        # not ordered like the inputs.
        tasks: dict[str, str] = {}
        for task in outcome.results:
            subject = (task.get("properties") or {}).get("hs_task_body") or ""
            match = next(
                (c for c in with_deal if c["conflict_id"] in subject and c["conflict_id"] not in tasks), None
            )
            if match is not None:
                tasks[match["conflict_id"]] = str(task["id"])
        if len(tasks) < len(outcome.results):
            # The response did not echo the body: fall back to input order, which the emulator keeps.
            for conflict, task in zip(with_deal, outcome.results, strict=False):
                tasks.setdefault(conflict["conflict_id"], str(task["id"]))
        deals = {str(c["deal_id"]) for c in with_deal if c["conflict_id"] in tasks}
        if deals:
            self.gw.batch_update(DEAL.plural, {d: {"aws_conflict_status": "Pending"} for d in deals})
        return tasks

    # -- one record ------------------------------------------------------------------------------------------
    def object_ids(self, deal_id: str | None, base_row: dict[str, Any] | None) -> dict[str, str | None]:
        """The deal, company and contact a record's HubSpot fields live on.

        The baseline stores the ids; a company or contact the baseline lacks is looked up through the
        deal's associations (one call each, only when needed).

        Args:
            deal_id: the deal (from a conflict or the baseline).
            base_row: the record's baseline row, if any.

        Returns:
            ``{"deal": id, "company": id, "contact": id}``, None where there is no such object.
        """
        row = base_row or {}
        ids: dict[str, str | None] = {
            obj: clean(row.get(spec.baseline_column)) for obj, spec in HUBSPOT_OBJECTS.items()
        }
        ids[DEAL.name] = ids[DEAL.name] or clean(deal_id)
        if ids[DEAL.name]:
            for spec in (COMPANY, CONTACT):
                if not ids[spec.name]:
                    found = (
                        self.gw.associations(DEAL.plural, spec.plural, [ids[DEAL.name]]).get(ids[DEAL.name])
                        or []
                    )
                    ids[spec.name] = found[0] if found else None
        return ids

    def write_record(
        self, opportunity_id: str, changes: dict[str, str | None], ids: dict[str, str | None]
    ) -> dict[str, str | None]:
        """Write one record's canonical values to the deal, company and contact they map to.

        Args:
            opportunity_id: the record (for messages).
            changes: field -> canonical value.
            ids: object name -> HubSpot id (see :meth:`object_ids`).

        Returns:
            The changes written.

        Raises:
            WriteBlockedError: a field's object does not exist or the field never writes HubSpot.
            ValidationError: HubSpot rejected the update (names the object and HubSpot's reason).
        """
        from cosell_sync.mapping import changes_to_hubspot

        for name in changes:
            if self.cfg.field(name).direction == Direction.TO_PARTNER_CENTRAL:
                raise WriteBlockedError(
                    f"{opportunity_id}.{name}: the field is mapped HubSpot -> Partner Central only; "
                    "the sync never writes it to HubSpot",
                    record_id=opportunity_id,
                )
        for obj, props in changes_to_hubspot(changes, self.cfg).items():
            target = ids.get(obj)
            if not target:
                raise WriteBlockedError(
                    f"{opportunity_id}: no HubSpot {obj} is associated with deal {ids.get(DEAL.name)}; "
                    f"cannot write {', '.join(sorted(props))}",
                    record_id=opportunity_id,
                )
            outcome = self.gw.batch_update(HUBSPOT_OBJECTS[obj].plural, {target: props})
            if outcome.errors:
                err = error_ids(outcome.errors).get(target) or outcome.errors[0]
                raise ValidationError(
                    f"HubSpot rejected the update of {obj} {target} ({opportunity_id}): {err.get('message')}",
                    service="hubspot",
                    code=str(err.get("category") or "VALIDATION_ERROR"),
                    record_id=opportunity_id,
                )
        return dict(changes)
