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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cosell_sync.common import (
    COMPANY,
    CONTACT,
    DEAL,
    HUBSPOT_OBJECTS,
    NOTE_TO_DEAL,
    TASK_TO_COMPANY,
    TASK_TO_DEAL,
    Direction,
    HubSpotObject,
    clean,
    parse_ts,
)
from cosell_sync.domains import normalize_domain
from cosell_sync.errors import ServiceUnavailableError, ValidationError, WriteBlockedError
from cosell_sync.hubspot_api import BATCH_SIZE, HubSpotGateway, association_to, chunks, error_ids

if TYPE_CHECKING:
    from cosell_sync.config import SyncConfig
    from cosell_sync.storage import SnapshotStore

log = logging.getLogger(__name__)

#: The unique company/contact property naming the opportunity a record was created for: the key its
#: create is an upsert on, so no retry or interrupted run can create it twice.
CREATED_FOR_PROPERTY = "aws_created_for"
#: Every note the sync writes ends with this and the run id: how a retry finds the notes it made.
NOTE_REF_PREFIX = "co-sell sync run "
#: HubSpot's company domain property: what a new company is matched on before one is created.
DOMAIN_PROPERTY = "domain"
#: The Partner Central path whose HubSpot property (``website``) gives the domain when the row has none.
WEBSITE_PATH = "Customer.Account.WebsiteUrl"
#: Domains per company search: one ``IN`` filter takes at most 100 values, and each domain is searched in
#: two spellings (``example.com`` and ``www.example.com``: HubSpot keeps the ``www.`` a user typed).
DOMAIN_SEARCH_VALUES = BATCH_SIZE // 2


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


#: What each conflict type means, first line of its HubSpot task.
CONFLICT_TYPE_TEXT = {
    "SIMULTANEOUS_UPDATE": "HubSpot and AWS Partner Central both changed this field since the last sync.",
    "STALE_DATA": (
        "AWS Partner Central changed this field while the sync was writing HubSpot's value to it, "
        "so HubSpot's value was not written."
    ),
    "LOCKED_FIELD": (
        "HubSpot changed a field AWS Partner Central locks in the opportunity's review state (after "
        "approval); Partner Central's value was written back to HubSpot."
    ),
    "REJECTED_VALUE": "AWS Partner Central rejected HubSpot's value for this field.",
    "SHARED_RECORD": (
        "Several AWS Partner Central opportunities of this deal's company or contact were changed to "
        "different values of this field; HubSpot holds one value, so pick it here."
    ),
}


def _created_at(value: Any) -> float:
    """A ``createdate`` as epoch seconds (ISO-8601 or epoch ms); unreadable or missing sorts last."""
    text = clean(value) or ""
    if text.isdigit():
        return int(text) / 1000
    try:
        parsed = parse_ts(text)
    except ValueError:
        parsed = None
    return parsed.timestamp() if parsed else float("inf")


def companies_by_domain(
    gw: HubSpotGateway, domains: Iterable[str], properties: Iterable[str] = ()
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The existing HubSpot company of each domain: ``{domain: company id}`` for those HubSpot has.

    One search per 50 domains (a ``domain`` ``IN`` filter of each domain with and without ``www.``, the two
    ways HubSpot may hold it; HubSpot wants ``IN`` string values in lower case, which normalised domains
    are); no domains, no call. HubSpot's own ``domain`` values are normalised the same way before they are
    compared. Where several companies share a domain, the oldest (``createdate``, then the lowest id) is
    used, so every run and every retry picks the same one; the log gives how many domains had several,
    never the domains (customer data).

    Args:
        gw: the counted HubSpot gateway.
        domains: normalised domains (:func:`cosell_sync.domains.normalize_domain`).
        properties: company properties to return besides the domain and dates.

    Returns:
        ``({domain: company id}, {company id: its properties})``.
    """
    wanted = sorted(set(domains))
    props_of: dict[str, dict[str, Any]] = {}
    if not wanted:
        return {}, props_of
    found: dict[str, dict[str, tuple[float, int]]] = {}  # domain -> company id -> (created s, id)
    for chunk in chunks(wanted, DOMAIN_SEARCH_VALUES):
        values = [v for d in chunk for v in (d, f"www.{d}")]
        group = [{"filters": [{"propertyName": DOMAIN_PROPERTY, "operator": "IN", "values": values}]}]
        wanted_props = sorted({DOMAIN_PROPERTY, "createdate", "hs_lastmodifieddate", *properties})
        for obj in gw.search(COMPANY.plural, group, wanted_props, "hs_lastmodifieddate"):
            obj_props = obj.get("properties") or {}
            domain = normalize_domain(obj_props.get(DOMAIN_PROPERTY))
            if domain not in chunk:
                continue
            stamp = _created_at(obj_props.get("createdate"))
            found.setdefault(domain, {})[str(obj["id"])] = (stamp, int(obj["id"]))
            props_of[str(obj["id"])] = obj_props
    shared = sum(1 for companies in found.values() if len(companies) > 1)
    if found:
        log.info(
            "%d of %d new companies' domains match an existing HubSpot company: associated, not "
            "created (%d domains have several companies; the oldest is used)",
            len(found),
            len(wanted),
            shared,
        )
    chosen = {domain: min(companies, key=companies.__getitem__) for domain, companies in found.items()}
    return chosen, props_of


def _html(value: Any) -> str:
    import html

    text = clean(value)
    return html.escape(text) if text else "(empty)"


def conflict_task_body(conflict: dict[str, Any]) -> str:
    """The body of a conflict's HubSpot task: what happened, both values with their times, how to resolve.

    Args:
        conflict: the stored conflict (``conflict_id``, ``conflict_type``, both values and timestamps).

    Returns:
        HTML for ``hs_task_body`` (values escaped). It names the conflict id: how a retry finds the task.
    """
    kind = conflict.get("conflict_type") or "SIMULTANEOUS_UPDATE"
    return (
        f"<p>{CONFLICT_TYPE_TEXT.get(kind, CONFLICT_TYPE_TEXT['SIMULTANEOUS_UPDATE'])}</p>"
        "<ul>"
        f"<li>HubSpot value: {_html(conflict.get('hubspot_value'))} "
        f"(changed {_html(conflict.get('hubspot_timestamp') or 'at an unknown time')})</li>"
        f"<li>AWS Partner Central value: {_html(conflict.get('partner_central_value'))} "
        f"(changed {_html(conflict.get('partner_central_timestamp') or 'at an unknown time')})</li>"
        "</ul>"
        f"<p>Conflict id {conflict['conflict_id']} ({kind}): resolve it with the cosell_resolve_conflict "
        "DAG: USE_HUBSPOT_VALUE, USE_PARTNER_CENTRAL_VALUE, or CUSTOM_VALUE with the value to write to "
        "both systems.</p>"
    )


class HubSpotWriter:
    """Batched HubSpot writes for one run (see the module doc).

    Args:
        cfg: the sync configuration.
        gateway: the counted HubSpot gateway.
        checkpoints: per-run markers (``notes``); None where a caller needs none.
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
        errors = error_ids(outcome.errors)
        for obj in outcome.results:
            if (obj.get("properties") or {}).get(link):
                created[obj["properties"][link]] = obj["id"]
        # Batch responses are not ordered like the inputs and need not echo every property: find the
        # deal of any upserted opportunity we could not match by reading it back on the link property.
        unmatched = [oid for oid in rows if oid not in created and oid not in errors]
        if unmatched:
            found, _ = self.gw.batch_read(DEAL.plural, unmatched, [link], id_property=link)
            for obj in found:
                created[obj["properties"][link]] = obj["id"]
        # A per-item error names the upsert key, or (for an existing deal) the deal's object id: map
        # both back to the opportunity, and never report a failed item as created.
        by_deal = {deal_id: oid for oid, deal_id in created.items()}
        failed: dict[str, dict[str, Any]] = {}
        for key, err in errors.items():
            oid = key if key in rows else by_deal.get(key, key)
            failed[oid] = {"type": "ValidationError", "service": "hubspot", **err}
            created.pop(oid, None)
        return created, failed

    def create_related(
        self, created: dict[str, str], props: dict[str, dict[str, dict[str, str]]]
    ) -> dict[str, dict[str, str | None]]:
        """Give each new deal its company and primary contact; returns their ids per opportunity.

        Every create is an upsert on a unique key, so a retried task, a timeout HubSpot had applied or
        a run killed half-way finds the record it made instead of making a second one: contacts with an
        e-mail on ``email`` (unique in HubSpot), companies and contacts without one on
        :data:`CREATED_FOR_PROPERTY` (the opportunity they were created for). The links to the deal are
        default associations (associating twice leaves one). Ids are read back on those keys: batch
        responses are not ordered like the inputs.

        A new company is first matched on its domain (the row's ``domain``, else its website's): when
        HubSpot already has a company with that domain, the deal is associated with it and nothing is
        created or written to it: the customer's own HubSpot data wins over the opportunity's. See
        :meth:`companies_by_domain`. A retry finds the same company and associates again (a no-op).
        New opportunities of one customer in the same call (one domain HubSpot does not have yet) each get
        their own company: sharing one would make the next run send that company's values over the other
        opportunities' own customer data (a write per opportunity, see the README).

        Args:
            created: opportunity id -> new deal id.
            props: opportunity id -> object name -> properties (from ``new_deal_properties``).

        Returns:
            Opportunity id -> ``{"company_id", "contact_id"}``.
        """
        out: dict[str, dict[str, str | None]] = {
            oid: {"company_id": None, "contact_id": None} for oid in created
        }
        # Companies HubSpot already has, by domain: one search per 100 domains, none without a domain.
        domain_of = {
            oid: domain
            for oid in created
            if (domain := self.company_domain(props.get(oid, {}).get(COMPANY.name) or {}))
        }
        existing, existing_props = self.companies_by_domain(domain_of.values())
        blanks: dict[str, dict[str, str]] = {}  # existing company id -> its empty properties, filled
        for spec, column in ((COMPANY, "company_id"), (CONTACT, "contact_id")):
            by_key: dict[str, tuple[str, dict[str, str]]] = {}  # upsert key -> (opportunity, row)
            key_property: dict[str, str] = {}
            matched: dict[str, str] = {}  # opportunity -> the existing company its deal gets
            for oid in created:
                row = dict(props.get(oid, {}).get(spec.name) or {})
                if not row:
                    continue
                if spec is COMPANY and oid in domain_of and domain_of[oid] in existing:
                    # Never created; only its empty properties are filled from the opportunity, none it has
                    # is overwritten. Left empty, the next run would see HubSpot's blank as a change and
                    # clear the opportunity's value (UpdateOpportunity replaces the whole record).
                    company_id = existing[domain_of[oid]]
                    matched[oid] = company_id
                    have = existing_props.get(company_id, {})
                    fill = blanks.setdefault(company_id, {})
                    for prop, value in row.items():
                        if clean(value) is not None and clean(have.get(prop)) is None and prop not in fill:
                            fill[prop] = value
                    continue
                if spec is COMPANY and oid in domain_of and not clean(row.get(DOMAIN_PROPERTY)):
                    # So that the next opportunity of this customer finds this company by its domain.
                    row[DOMAIN_PROPERTY] = domain_of[oid]
                if spec is CONTACT and row.get("email"):
                    key_property[row["email"]] = "email"
                    by_key[row["email"]] = (oid, row)
                else:
                    row[CREATED_FOR_PROPERTY] = oid
                    key_property[oid] = CREATED_FOR_PROPERTY
                    by_key[oid] = (oid, row)
            ids: dict[str, str] = {}
            for id_property in sorted(set(key_property.values())):
                rows = {k: row for k, (_, row) in by_key.items() if key_property[k] == id_property}
                outcome = self.gw.batch_upsert(spec.plural, id_property, rows)
                for key, err in error_ids(outcome.errors).items():
                    log.error(
                        "HubSpot rejected the new %s of opportunity %s: %s",
                        spec.name,
                        by_key.get(key, (key,))[0],
                        err.get("message"),
                    )
                found, _ = self.gw.batch_read(spec.plural, list(rows), [id_property], id_property=id_property)
                # HubSpot may answer an e-mail in another case than we sent it: match case-insensitively
                # through one lookup table (a scan of ``rows`` per result was quadratic: ~10 s for 10,000).
                by_lower: dict[str, str] = {}
                if id_property == "email":
                    for k in rows:
                        by_lower.setdefault(k.lower(), k)  # the first key wins, as before
                for obj in found:
                    value = str((obj.get("properties") or {}).get(id_property) or "")
                    if id_property == "email":
                        value = by_lower.get(value.lower(), value)
                    if value in rows:
                        ids[value] = str(obj["id"])
            pairs = [(created[oid], ids[key]) for key, (oid, _) in by_key.items() if key in ids]
            pairs += [(created[oid], company_id) for oid, company_id in matched.items()]
            fills = {cid: props for cid, props in blanks.items() if props}
            if spec is COMPANY and fills:
                outcome = self.gw.batch_update(COMPANY.plural, fills)
                if outcome.errors:
                    # The association still goes ahead; the next run compares the fields again.
                    log.error(
                        "HubSpot refused to fill %d matched companies' empty properties", len(outcome.errors)
                    )
            if pairs:
                self.gw.associate_default(DEAL.plural, spec.plural, pairs)
            for key, (oid, _) in by_key.items():
                out[oid][column] = ids.get(key)
            for oid, company_id in matched.items():
                out[oid][column] = company_id
        return out

    def company_domain(self, row: dict[str, str]) -> str | None:
        """The normalised domain of a new company's row: its ``domain``, else its website's; None if none.

        The website is the HubSpot property the mapping gives ``Customer.Account.WebsiteUrl`` (``website``
        in the default mapping); see :func:`cosell_sync.domains.normalize_domain` for the rules.
        """
        domain = normalize_domain(row.get(DOMAIN_PROPERTY))
        if domain:
            return domain
        websites = [
            f.hubspot
            for f in self.cfg.fields
            if f.object == COMPANY.name and f.partner_central == WEBSITE_PATH
        ]
        for prop in websites or ["website"]:
            domain = normalize_domain(row.get(prop))
            if domain:
                return domain
        return None

    def companies_by_domain(self, domains: Iterable[str]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        """The existing HubSpot company of each domain, with its mapped properties.

        See :func:`companies_by_domain` (the module function, which this calls with the mapped company
        properties). Returns ``({domain: company id}, {company id: its mapped properties})``.
        """
        mapped = [f.hubspot for f in self.cfg.fields if f.object == COMPANY.name]
        return companies_by_domain(self.gw, domains, mapped)

    # -- notes and tasks ------------------------------------------------------------------------------------
    def write_notes(self, notes: dict[str, str], ref: str | None = None) -> int:
        """One note per deal (``{deal id: HTML body}``), at most once per run, whatever fails when.

        Each note carries the run's reference. A create HubSpot may have applied without answering (a
        5xx, a timeout, a task killed before its checkpoint) is never resent blindly: the deals' notes
        are read back and only the missing ones are created.

        Args:
            notes: deal id -> HTML body.
            ref: the run's reference (its run id); None writes without a read-back key.

        Returns:
            Notes created (or created by an earlier attempt of the same run).
        """
        if self.checkpoints:
            marker = self.checkpoints.get("notes")
            if marker is not None and "count" in marker:
                return int(marker["count"])
            if marker is not None:
                # An earlier attempt of this run started creating notes and did not finish.
                notes = self._notes_missing(notes, ref)
            else:
                self.checkpoints.put("notes", {"started": True})
        bodies = {d: f"{b}<p>{NOTE_REF_PREFIX}{ref}</p>" if ref else b for d, b in notes.items()}
        try:
            count = self._create_notes(bodies)
        except ServiceUnavailableError as err:
            if not ref:
                raise
            log.warning("Creating %d notes got no clear answer (%s): reading back", len(bodies), err.code)
            missing = self._notes_missing(bodies, ref)
            count = len(bodies) - len(missing) + self._create_notes(missing)
        if self.checkpoints:
            self.checkpoints.put("notes", {"count": count})
        return count

    def _create_notes(self, bodies: dict[str, str]) -> int:
        now_ms = str(int(time.time() * 1000))
        inputs = [
            {
                "properties": {"hs_timestamp": now_ms, "hs_note_body": body},
                "associations": association_to(deal_id, NOTE_TO_DEAL),
            }
            for deal_id, body in bodies.items()
        ]
        return len(self.gw.batch_create("notes", inputs).results) if inputs else 0

    def _notes_missing(self, notes: dict[str, str], ref: str | None) -> dict[str, str]:
        """The notes whose deal has no note of this run yet (``ref`` in its body)."""
        if not ref or not notes:
            return notes
        done = self._find_marked("notes", "hs_note_body", {d: (d, ref) for d in notes})
        if done:
            log.info("%d notes of this run already exist: not created again", len(done))
        return {d: b for d, b in notes.items() if d not in done}

    def _find_marked(
        self,
        plural: str,
        body_property: str,
        wanted: dict[str, tuple[str, str]],
        on: HubSpotObject = DEAL,
    ) -> dict[str, str]:
        """Which wanted objects exist already: ``key -> (deal id, token)`` gives ``key -> object id``.

        An object counts when it is associated with the deal (or the ``on`` object) and ``token``
        appears in its ``body_property``: how a create that got no clear answer is found instead of
        made twice. Two reads per 100 deals (associations, then the bodies).
        """
        linked = self.gw.associations(on.plural, plural, {deal for deal, _ in wanted.values()})
        object_ids = {o for ids in linked.values() for o in ids}
        if not object_ids:
            return {}
        found, _ = self.gw.batch_read(plural, object_ids, [body_property])
        bodies = {str(o["id"]): str((o.get("properties") or {}).get(body_property) or "") for o in found}
        out: dict[str, str] = {}
        for key, (deal_id, token) in wanted.items():
            match = next((o for o in linked.get(deal_id) or [] if token in bodies.get(str(o), "")), None)
            if match is not None:
                out[key] = str(match)
        return out

    def create_marked_tasks(self, tasks: list[dict[str, Any]], on: HubSpotObject = DEAL) -> dict[str, str]:
        """Create each task once: ``marker``, ``deal_id``, ``subject``, ``body``, optional ``owner_id``.

        The marker (unique per task: an invitation id and the reason) goes in the body; a task whose
        marker the deal already has is not made again, whatever happened to an earlier attempt.

        Args:
            tasks: the tasks; with ``on`` another object type (companies), each names its record in
                ``object_id`` instead of ``deal_id``.
            on: the object type the tasks are attached to (deals or companies).

        Returns:
            Marker -> task id, for every task that exists now.
        """
        key = "deal_id" if on is DEAL else "object_id"
        association = TASK_TO_DEAL if on is DEAL else TASK_TO_COMPANY
        if on not in (DEAL, COMPANY):
            raise ValueError(f"tasks attach to deals or companies, not {on.plural}")
        wanted = {t["marker"]: (str(t[key]), t["marker"]) for t in tasks if t.get(key)}
        if not wanted:
            return {}
        found = self._find_marked("tasks", "hs_task_body", wanted, on)
        todo = [t for t in tasks if t.get(key) and t["marker"] not in found]
        if not todo:
            return found
        inputs = []
        for t in todo:
            props = {
                "hs_task_subject": t["subject"],
                "hs_task_body": f"{t['body']} [{t['marker']}]",
                "hs_task_status": "NOT_STARTED",
                "hs_task_priority": t.get("priority", "HIGH"),
                "hs_timestamp": str(int(time.time() * 1000)),
            }
            if t.get("owner_id"):
                props["hubspot_owner_id"] = str(t["owner_id"])
            inputs.append({"properties": props, "associations": association_to(str(t[key]), association)})
        try:
            results = self.gw.batch_create("tasks", inputs).results
        except ServiceUnavailableError as err:
            log.warning("Creating %d task(s) got no clear answer (%s): reading back", len(inputs), err.code)
            return self._find_marked("tasks", "hs_task_body", wanted, on)
        for task in results:
            body = (task.get("properties") or {}).get("hs_task_body") or ""
            for t in todo:
                if t["marker"] in body:
                    found[t["marker"]] = str(task["id"])
        return found

    def create_conflict_tasks(self, conflicts: list[dict[str, Any]]) -> dict[str, str]:
        """A task on the deal for each conflict (``conflict_id``, ``field``, ``deal_id``); marks the deals.

        Returns:
            Conflict id -> task id, for the conflicts whose task was created.
        """
        with_deal = [c for c in conflicts if c.get("deal_id")]
        if not with_deal:
            return {}
        # A task an earlier attempt created (then died before recording it) is found, not made twice.
        tasks = self._existing_tasks(with_deal)
        todo = [c for c in with_deal if c["conflict_id"] not in tasks]
        owners = self._deal_owners(todo)
        inputs = [self._task_input(c, owners) for c in todo]
        results: list[dict[str, Any]] = []
        if inputs:
            try:
                results = self.gw.batch_create("tasks", inputs).results
            except ServiceUnavailableError as err:
                log.warning(
                    "Creating %d task(s) got no clear answer (%s): reading back", len(inputs), err.code
                )
                tasks.update(self._existing_tasks(todo))
                todo = [c for c in todo if c["conflict_id"] not in tasks]
                results = self.gw.batch_create("tasks", [self._task_input(c, owners) for c in todo]).results
        # Created tasks are matched to conflicts by the conflict id in their body: batch responses are
        # not ordered like the inputs.
        for task in results:
            body = (task.get("properties") or {}).get("hs_task_body") or ""
            match = next(
                (c for c in todo if c["conflict_id"] in body and c["conflict_id"] not in tasks), None
            )
            if match is not None:
                tasks[match["conflict_id"]] = str(task["id"])
        if len([c for c in todo if c["conflict_id"] in tasks]) < len(results):
            # The response did not echo the body: fall back to input order, which the emulator keeps.
            for conflict, task in zip(todo, results, strict=False):
                tasks.setdefault(conflict["conflict_id"], str(task["id"]))
        deals = {str(c["deal_id"]) for c in with_deal if c["conflict_id"] in tasks}
        if deals:
            self.gw.batch_update(DEAL.plural, {d: {"aws_conflict_status": "Pending"} for d in deals})
        return tasks

    def _deal_owners(self, conflicts: list[dict[str, Any]]) -> dict[str, str]:
        """Deal id -> its ``hubspot_owner_id``, for the deals of these conflicts (one read per 100 deals)."""
        deals = {str(c["deal_id"]) for c in conflicts if c.get("deal_id")}
        if not deals:
            return {}
        found, _ = self.gw.batch_read(DEAL.plural, deals, ["hubspot_owner_id"])
        return {
            str(d["id"]): str(owner)
            for d in found
            if (owner := clean((d.get("properties") or {}).get("hubspot_owner_id")))
        }

    def _task_input(self, conflict: dict[str, Any], owners: dict[str, str] | None = None) -> dict[str, Any]:
        """The task of one conflict: both values and when each side changed, for the deal's owner.

        The task is assigned to the deal owner, else to ``conflicts.default_task_owner_id`` (empty: no
        one). Its body holds the values (HubSpot is where the person decides); nothing here logs them.
        """
        deal_id = str(conflict["deal_id"])
        props = {
            "hs_task_subject": f"Resolve co-sell conflict on {self.cfg.field(conflict['field']).hubspot}",
            "hs_task_body": conflict_task_body(conflict),
            "hs_task_status": "NOT_STARTED",
            "hs_task_priority": "HIGH",
            "hs_timestamp": str(int(time.time() * 1000)),
        }
        owner = (owners or {}).get(deal_id) or self.cfg.conflicts.default_task_owner_id
        if owner:
            props["hubspot_owner_id"] = str(owner)
        return {"properties": props, "associations": association_to(deal_id, TASK_TO_DEAL)}

    def _existing_tasks(self, conflicts: list[dict[str, Any]]) -> dict[str, str]:
        """Conflict id -> id of a task on its deal that already names it."""
        wanted = {c["conflict_id"]: (str(c["deal_id"]), c["conflict_id"]) for c in conflicts}
        return self._find_marked("tasks", "hs_task_body", wanted)

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
