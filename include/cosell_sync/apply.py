"""The apply steps: execute a stored plan through the two writers, and record every outcome per record.

Each step reads the plan by the key ``plan`` returned (and the snapshots by the keys the plan names),
writes through its system's writer, and stores its results as JSON next to the run's other artefacts.
``commit`` turns those results into audit entries, the next baseline and the retry queue.

- :func:`apply_partner_central`: creates (idempotent ClientToken, read back), full-record updates under
  the optimistic lock (re-gated and re-diffed after a conflict), solution association and submissions.
- :func:`apply_hubspot`: batched deal/company/contact updates, new deals with their company and contacts,
  links to new opportunities, ``aws_sync_error`` set or cleared, one note per changed deal, and a task
  for every pending conflict that has none yet.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from cosell_sync import auto_revert
from cosell_sync.common import COMPANY, CONTACT, DEAL, HUBSPOT_OBJECTS, Direction, clean, parse_ts
from cosell_sync.creates import apply_prepared_creates, apply_prepared_updates, load_prepared
from cosell_sync.errors import StalePlanError, SyncError
from cosell_sync.gating import LOCKED
from cosell_sync.hubspot_api import HubSpotGateway
from cosell_sync.journal import APPLIED, HUBSPOT_WRITES
from cosell_sync.plan import Plan
from cosell_sync.storage import run_key
from cosell_sync.team import TeamMirror, resolve_teams, teams_from_records
from cosell_sync.writers.hubspot import Checkpoints, HubSpotWriter
from cosell_sync.writers.partner_central import PartnerCentralWriter, SolutionsRequiredError

if TYPE_CHECKING:
    from cosell_sync.config import SyncConfig
    from cosell_sync.env import SyncEnv

log = logging.getLogger(__name__)

#: The property on a deal that shows why its last sync failed (cleared when it syncs again).
SYNC_ERROR_PROPERTY = "aws_sync_error"

#: Why a property the sync wrote back is not HubSpot's edit: Partner Central locks the field once AWS
#: approved the opportunity (docs/api-rules.md), so the deal's note says so next to the property.
LOCKED_NOTE = (
    "locked by AWS Partner Central after approval: the HubSpot edit was not sent, and Partner Central's "
    "value was written back"
)


def update_note(
    cfg: SyncConfig, changes: dict[str, Any], locked: set[str] | frozenset[str] = frozenset()
) -> str:
    """The note on a deal the sync updated: each HubSpot property it wrote, and why where it was locked.

    Args:
        cfg: the sync configuration (the field's HubSpot property names).
        changes: field -> value the run wrote to HubSpot for the record (values never go in the note).
        locked: the fields among ``changes`` written back because Partner Central locks them.

    Returns:
        The note's HTML body.
    """
    lines = "".join(
        f"<li>{cfg.field(f).hubspot}{f' ({LOCKED_NOTE})' if f in locked else ''}</li>"
        for f in sorted(changes)
    )
    return f"<p>AWS Partner Central sync updated:</p><ul>{lines}</ul>"


def load_plan(env: SyncEnv, planned: dict[str, Any], *, for_commit: bool = False, check: bool = True) -> Plan:
    """The plan a ``plan`` step stored, by the key it returned, checked to be current.

    A plan is made from one baseline version. When another run has committed since (or a rollback
    restored an older baseline), replaying the plan would write values older than what both systems
    now agree on: so the step refuses. ``commit`` also accepts the version its own run committed (a
    retried commit that died after writing the baseline).

    Raises:
        StalePlanError: the committed baseline is newer than the plan's.
    """
    plan = Plan.from_document(env.snapshots.get_json(planned["key"]))
    if not check:
        return plan
    current = env.baseline.version()
    if current == plan.baseline_version:
        return plan
    if for_commit and plan.run_id and current == env.baseline.committed_by(plan.run_id):
        return plan
    raise StalePlanError(
        f"the plan of run {plan.run_id} was made from baseline version {plan.baseline_version or 'none'}, "
        f"but the committed baseline is now {current}: another run (or a rollback) has committed since. "
        "Writing this plan would put older values over newer ones, so nothing was written. "
        "Clear the whole run from 'prepare' (or trigger a new one) to plan again."
    )


def loads_opportunity(text: str) -> dict[str, Any]:
    """A GetOpportunity response stored as JSON text (the extract's ``_raw``), its timestamp parsed."""
    opp = json.loads(text)
    if opp.get("LastModifiedDate"):
        opp["LastModifiedDate"] = parse_ts(opp["LastModifiedDate"])
    return opp


# ---------------------------------------------------------------------------------------------------
def apply_partner_central(
    env: SyncEnv, run: dict[str, Any], planned: dict[str, Any], creates: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Create, update and submit opportunities; every write is safe to repeat.

    Args:
        env: clients and stores.
        run: the run description.
        planned: the ``plan`` step's result (the plan's ``key``).
        creates: the ``prepare_creates`` step's result: deals linked by search and finished bulk jobs,
            whose records are applied here like single creates (:mod:`cosell_sync.creates`).

    Returns:
        ``key`` of the stored results, ``counts`` and ``submit_tasks`` (the ids of the
        ``StartEngagementFromOpportunityTask`` tasks started, which the DAG waits for).
    """
    if run["dry_run"]:
        return {"key": None, "dry_run": True, "counts": {}, "submit_tasks": []}
    plan = load_plan(env, planned)
    calls: Counter[str] = Counter()
    writer = PartnerCentralWriter.for_run(env, run, calls)
    # The records extract read minutes ago: usually still current, which saves a GetOpportunity each.
    raw = env.snapshots.get_frame(plan.sources["partner_central"], columns=["_raw"])["_raw"].to_dict()
    results: dict[str, Any] = {
        "created": {},
        "updated": {},
        "submitted": [],
        "failed": {},
        "skipped": [],
        "gated": {},
        "superseded": {},
        # When Partner Central last changed a superseded record (the re-read): the STALE_DATA conflict's time.
        "superseded_at": {},
        "submit_waiting": [],
        # Other contacts the review state held back (reason by record): commit keeps them due next run.
        "other_contacts_gated": {},
        # Records read for their other contacts alone that already held them.
        "unchanged": [],
        # Records whose other contacts the writer settled this run (see commit: the baseline's count).
        "other_contacts_done": [],
    }
    # Line items of solution products name a deal's solutions first (before submissions are listed).
    _prefer_line_items(env, plan, calls)
    submissions: list[tuple[str, list[str]]] = [(oid, plan.solution_ids.get(oid, [])) for oid in plan.submit]

    # Creates a dead run journaled: resend their exact request (same ClientToken: the same opportunity
    # comes back) so the deal gets linked, whatever happened to the deal since.
    recovered = _recover_creates(env, writer, run, results)
    # Deals found by search and the records of bulk jobs: linked like single creates, never sent again.
    prepared = load_prepared(env, creates)
    recovered |= apply_prepared_creates(env, writer, plan, prepared, results, submissions, calls)
    # The deals' owners and collaborators become OpportunityTeam: one owners read for the step's creates,
    # none for the deals whose teams a bulk start resolved before it fell back to single creates.
    covered = set((prepared or {}).get("teams_for") or [])
    teams, team_calls = resolve_teams(
        env,
        [
            i
            for i in plan.create_opportunities
            if i["deal_id"] not in recovered
            and f"deal:{i['deal_id']}" not in plan.invalid
            and str(i["deal_id"]) not in covered
        ],
    )
    teams.update({d: t for d, t in ((prepared or {}).get("teams") or {}).items() if d in covered})
    calls.update(team_calls)
    for item in plan.create_opportunities:
        deal_id = item["deal_id"]
        if deal_id in recovered:
            continue  # its opportunity exists: the deal's newer values sync as an update next run
        if f"deal:{deal_id}" in plan.invalid:
            # A HubSpot value PC can never take: fail the create without a call (field + rule only).
            results["failed"][f"deal:{deal_id}"] = _invalid_values(plan, f"deal:{deal_id}")
            continue
        try:
            created = writer.create(
                deal_id,
                item["values"],
                plan.solution_ids.get(f"deal:{deal_id}"),
                teams.get(str(deal_id)),
                item.get("other_contacts"),
            )
        except SyncError as err:
            log.error("CreateOpportunity for deal %s failed: %s", deal_id, err.message)
            results["failed"][f"deal:{deal_id}"] = err.to_dict()
            continue
        results["created"][deal_id] = created
        if created.get("error"):
            # Created, but its stage could not be set yet (no solution): the deal shows why.
            results["failed"][f"deal:{deal_id}"] = created["error"]
        if item.get("submit"):
            submissions.append((created["opportunity_id"], plan.solution_ids.get(f"deal:{deal_id}", [])))

    # An opt-in bulk update job (bulk.updates): what it updated is done; what it did not is re-read here.
    bulk_updated, reread = apply_prepared_updates(env, prepared, results, calls)
    # A linked deal whose other contacts were read this run may need a write for them alone.
    for oid, changes in plan.partner_central_records().items():
        if oid in bulk_updated:
            continue
        if oid in plan.invalid:
            # The record fails as a whole, like a value Partner Central rejects: nothing is sent.
            results["failed"][oid] = _invalid_values(plan, oid)
            continue
        current = loads_opportunity(raw[oid]) if clean(raw.get(oid)) and oid not in reread else None
        try:
            out = writer.update(
                oid,
                changes,
                current=current,
                expected=plan.expected.get(oid),
                solution_ids=plan.solution_ids.get(oid),
                other_contacts=plan.other_contacts.get(oid),
                dropped_contacts=plan.dropped_contacts.get(oid),
            )
        except SyncError as err:
            log.error("UpdateOpportunity %s failed: %s", oid, err.message)
            results["failed"][oid] = err.to_dict()
            continue
        if out.gated:
            # AWS moved the review between the plan and the write: these fields wait for a later run.
            results["gated"][oid] = {"review_status": out.review_status, "fields": out.gated}
        if out.superseded:
            results["superseded"][oid] = out.superseded
            results["superseded_at"][oid] = out.last_modified
        if out.other_contacts_gated:
            results["other_contacts_gated"][oid] = out.other_contacts_gated
        elif oid in plan.other_contacts:
            # Sent, already held, or never to be taken (Rejected): commit records the contacts as read.
            results["other_contacts_done"].append(oid)
        if out.already_applied and not changes:
            # The opportunity already holds the deal's other contacts: nothing written, nothing to report.
            results["unchanged"].append(oid)
            continue
        if out.already_applied:
            results["skipped"].append(oid)
        if out.sent:
            results["updated"][oid] = {
                "last_modified": out.last_modified,
                "written": out.written,
                "attempts": out.attempts,
                "associated": out.associated,
                **({"other_contacts": out.other_contacts} if out.other_contacts is not None else {}),
            }

    for oid, solution_ids in submissions:
        try:
            results["submitted"].append(writer.submit(oid, solution_ids))
        except SolutionsRequiredError as err:
            log.error("Submission of %s waits: %s", oid, err.message)
            results["failed"][f"submit:{oid}"] = err.to_dict()
            results["submit_waiting"].append(oid)
        except SyncError as err:
            log.error("Submitting %s failed: %s", oid, err.message)
            results["failed"][f"submit:{oid}"] = err.to_dict()

    results["api_calls"] = dict(calls)
    key = run_key(run["catalog"], run["run_id"], "apply_partner_central.json")
    env.snapshots.put_json(results, key)
    counts = {
        "created": len(results["created"]),
        "updated": len(results["updated"]) - len(results["skipped"]),
        "submitted": len(results["submitted"]),
        "failed": len(results["failed"]),
        "already_applied": len(results["skipped"]),
        "superseded": len(results["superseded"]),
    }
    log.info("Partner Central writes: %s", counts)
    tasks = [s["task_id"] for s in results["submitted"] if s.get("task_id")]
    return {"key": key, "counts": counts, "submit_tasks": tasks}


def _invalid_values(plan: Plan, key: str) -> dict[str, Any]:
    """The failure of a record whose HubSpot values cannot be written (``plan.invalid[key]``), logged."""
    from cosell_sync.transforms import InvalidValuesError

    err = InvalidValuesError(plan.invalid[key], record_id=key)
    log.error("Partner Central write for %s not sent: %s", key, err.message)
    return err.to_dict()


def _recover_creates(
    env: SyncEnv, writer: PartnerCentralWriter, run: dict[str, Any], results: dict[str, Any]
) -> set[str]:
    """Finish the opportunity creates of runs that died before linking them; returns their deal ids."""
    if env.journal is None:
        return set()
    done: set[str] = set()
    for entry in env.journal.creates_to_recover(current_run=run["run_id"]):
        deal_id = str(entry["deal_id"])
        try:
            results["created"][deal_id] = writer.recover_create(entry)
        except SyncError as err:
            log.error("Recovering the create of deal %s failed: %s", deal_id, err.message)
            results["failed"][f"deal:{deal_id}"] = err.to_dict()
            continue
        done.add(deal_id)
    return done


# ---------------------------------------------------------------------------------------------------
def apply_hubspot(
    env: SyncEnv, run: dict[str, Any], planned: dict[str, Any], pc_applied: dict[str, Any]
) -> dict[str, Any]:
    """Batched HubSpot writes: updates, new deals, links, sync errors, notes and conflict tasks.

    Args:
        env: clients and stores.
        run: the run description.
        planned: the ``plan`` step's result.
        pc_applied: the ``apply_partner_central`` step's result (its results ``key``).

    Returns:
        ``key`` of the stored results and ``counts``.
    """
    from cosell_sync.mapping import changes_to_hubspot, new_deal_properties

    if run["dry_run"]:
        return {"key": None, "dry_run": True, "counts": {}}
    cfg = env.config
    gw = HubSpotGateway(env.hubspot)

    writer = HubSpotWriter(cfg, gw, notes_checkpoints(env, run["catalog"], run["run_id"]))
    link = cfg.link_property
    plan = load_plan(env, planned)
    # Journaled before the first write, once the plan is known current (a stale task writes nothing): if
    # the run dies before its commit, the next commit audits these writes from the plan (and from the
    # results, once stored) under this run's id (commit.py).
    journal_key = (
        env.journal.begin(
            run["run_id"],
            HUBSPOT_WRITES,
            "run",
            run_started_at=run["started_at"],
            run=run,
            planned=planned,
            pc_results_key=pc_applied.get("key"),
        )
        if env.journal is not None
        else None
    )
    pc_results = env.snapshots.get_json(pc_applied["key"]) if pc_applied.get("key") else {}
    hs = env.snapshots.get_frame(plan.sources["hubspot"]).to_dict("index")
    pc = env.snapshots.get_frame(plan.sources["partner_central"])
    base = env.baseline.load().to_dict("index")

    def object_id(oid: str, obj: str) -> str | None:
        spec = HUBSPOT_OBJECTS[obj]
        return clean(hs.get(oid, {}).get(spec.frame_column)) or clean(
            base.get(oid, {}).get(spec.baseline_column)
        )

    results: dict[str, Any] = {
        "updated": {},
        "created": {},
        "linked": {},
        "failed": {},
        "notes": 0,
        "tasks": 0,
    }

    # 0. records Partner Central rejected this run keep their HubSpot side (rollback.auto_revert_hubspot)
    reverted = auto_revert.held_back(cfg, plan, pc_results, hs)
    results[auto_revert.RESULTS_KEY] = reverted
    # 1. updates of existing objects, grouped per object type (one batch stream each)
    per_object: dict[str, dict[str, dict[str, str]]] = {s.plural: {} for s in HUBSPOT_OBJECTS.values()}
    owner_of: dict[tuple[str, str], str] = {}
    for oid, changes in plan.hubspot_updates.items():
        if oid in reverted:
            continue
        for obj, props in changes_to_hubspot(changes, cfg).items():
            target = object_id(oid, obj)
            if not target:
                # e.g. a deal with no associated company: nothing to write these fields to.
                results.setdefault("skipped_fields", {}).setdefault(oid, []).extend(
                    f"{obj}.{p}" for p in sorted(props)
                )
                log.warning(
                    "No HubSpot %s associated with the deal of %s: %d field(s) not written",
                    obj,
                    oid,
                    len(props),
                )
                continue
            plural = HUBSPOT_OBJECTS[obj].plural
            per_object[plural].setdefault(target, {}).update(props)
            owner_of[(plural, target)] = oid
    # 1b. other contacts edited in Partner Central: their HubSpot contacts, found by e-mail (one batch
    # read per 100), written in the same batch stream as the record's other contact updates
    contact_targets = _other_contact_targets(gw, plan)
    for oid, per_email in plan.contacts_to_hubspot.items():
        for email, changes in per_email.items():
            target = contact_targets.get(email)
            if target is None:
                log.warning(
                    "Opportunity %s: contact %s has no HubSpot contact with its e-mail; not written",
                    oid,
                    plan.contact_positions.get(oid, {}).get(email),
                )
                continue
            props = changes_to_hubspot(changes, cfg).get(CONTACT.name, {})
            per_object[CONTACT.plural].setdefault(target, {}).update(props)
            owner_of[(CONTACT.plural, target)] = oid
            results.setdefault("other_contacts_written", {}).setdefault(oid, []).append(email)
            # By position (no e-mail): the audit entry names the HubSpot contact each change went to.
            position = str(plan.contact_positions.get(oid, {}).get(email))
            results.setdefault("other_contact_ids", {}).setdefault(oid, {})[f"contact {position}"] = target
    # 2. link deals to the opportunities created for them; record sync errors on deals, clear old ones
    sent_values = {i["deal_id"]: i["values"] for i in plan.create_opportunities}
    for deal_id, created in (pc_results.get("created") or {}).items():
        # Values Partner Central holds that the deal does not (review status, defaults) go with the link.
        sent = sent_values.get(deal_id, {})
        held_back = created.get("held_back") or {}
        pushed = {
            f: v
            for f, v in (created.get("values") or {}).items()
            if cfg.field(f).direction != Direction.TO_PARTNER_CENTRAL
            and v != sent.get(f)
            and f not in held_back
            # A recovered create holds the values of its dead run: the deal's own are newer, keep them.
            and not created.get("recovered_from")
        }
        props = changes_to_hubspot(pushed, cfg).get(DEAL.name, {}) if pushed else {}
        per_object[DEAL.plural].setdefault(deal_id, {}).update({**props, link: created["opportunity_id"]})
        results["linked"][deal_id] = created["opportunity_id"]
    failed_deals: set[str] = set()
    for key, error in (pc_results.get("failed") or {}).items():
        oid = key.split(":", 1)[1] if ":" in key else key
        deal_id = oid if key.startswith("deal:") else object_id(oid, DEAL.name)
        if deal_id:
            failed_deals.add(deal_id)
            per_object[DEAL.plural].setdefault(deal_id, {})[SYNC_ERROR_PROPERTY] = (
                f"{error.get('code') or error.get('type')}: {error.get('message')}"[:1000]
            )
    # A record that synced now clears the error an earlier run left on its deal.
    stale = _deals_with_stale_error(plan, pc_results, hs, base, object_id, env.retry.list())
    for deal_id in stale - failed_deals:
        per_object[DEAL.plural].setdefault(deal_id, {})[SYNC_ERROR_PROPERTY] = ""
    # 2b. Partner Central's team on the deal (aws_opportunity_team), from the full records this run holds
    # anyway (the extract's reads, the read-back of a create): no read for it, written with the deal's
    # other properties, and only when it changed since it was last written (cosell_sync.team).
    mirror = TeamMirror(env, run["catalog"])
    pc_teams = teams_from_records(pc)
    team_only: set[str] = set()
    team_sources = [
        (object_id(oid, DEAL.name), oid, team)
        for oid, team in pc_teams.items()
        if oid not in plan.create_deals
    ]
    team_sources += [
        (deal_id, created["opportunity_id"], created["team"])
        for deal_id, created in (pc_results.get("created") or {}).items()
        if "team" in created
    ]
    for team_deal, team_oid, team in team_sources:
        team_props = mirror.add(team_deal, team_oid, team) if team_deal else {}
        if team_props:
            if team_deal not in per_object[DEAL.plural]:
                team_only.add(team_deal)
                # A failed write is reported under the opportunity, like the run's other updates.
                owner_of[(DEAL.plural, team_deal)] = team_oid
            per_object[DEAL.plural].setdefault(team_deal, {}).update(team_props)
    outcome = writer.update_objects(per_object, owner_of)
    # A deal written only for its team is not an "updated" record of the run's report.
    team_keys = {owner_of[(DEAL.plural, d)] for d in team_only}
    updated = {
        k: [p for p in v if not (k in team_keys and p == DEAL.plural)] for k, v in outcome.updated.items()
    }
    results["updated"] = {k: v for k, v in updated.items() if v}
    results["failed"] = outcome.failed

    # 3. new deals for opportunities that have none: upsert on the unique link property (idempotent)
    if plan.create_deals:
        rows: dict[str, dict[str, str]] = {}
        related_props: dict[str, dict[str, dict[str, str]]] = {}
        new_records = pc.loc[plan.create_deals].to_dict("index")
        for oid in plan.create_deals:
            values = {c: clean(new_records[oid].get(c)) for c in cfg.field_names()}
            props = new_deal_properties(values, oid, cfg)
            # The new deal shows the opportunity's team from the start (no write of its own).
            rows[oid] = {**props[DEAL.name], **mirror.new_deal_properties(pc_teams.get(oid))}
            related_props[oid] = props
        created_deals, failed = writer.upsert_deals(rows)
        for oid, deal_id in created_deals.items():
            mirror.add(deal_id, oid, pc_teams.get(oid))
        results["failed"].update(failed)
        results["created"] = created_deals
        results["related"] = writer.create_related(created_deals, related_props)
    # 3b. deals created by a run that died before their company and contact: create those now
    if plan.complete_deals:
        results.setdefault("related", {}).update(_complete_deals(cfg, writer, plan, pc, hs))
    # 4. one note per deal summarising what the sync changed (checkpointed: never twice per run)
    notes: dict[str, str] = {}
    locked = locked_fields(plan)
    for oid, changes in plan.hubspot_updates.items():
        deal_id = object_id(oid, DEAL.name)
        if deal_id and oid in reverted:
            notes[deal_id] = auto_revert.note(cfg, reverted[oid])
        elif deal_id and oid not in results["failed"]:
            notes[deal_id] = update_note(cfg, changes, locked.get(oid, set()))
    for oid, emails in (results.get("other_contacts_written") or {}).items():
        deal_id = object_id(oid, DEAL.name)
        if deal_id and oid not in results["failed"]:
            notes[deal_id] = notes.get(deal_id, "") + contacts_note(plan, oid, emails)
    for deal_id, opp_id in results["linked"].items():
        notes[deal_id] = f"<p>Linked to AWS Partner Central opportunity {opp_id}.</p>"
    results["notes"] = writer.write_notes(notes, ref=run["run_id"])
    if reverted:
        deal_of = {oid: d for oid in reverted if (d := object_id(oid, DEAL.name))}
        results["tasks_auto_rollback"] = auto_revert.create_tasks(
            cfg, writer, reverted, deal_of, run["run_id"]
        )
    # 5. manual conflicts: a pending item, a task for the deal owner, a status on the deal. First, the
    # rejected values Partner Central has now taken are no longer conflicts: their tasks are done.
    results["conflicts_superseded"] = _close_superseded(env, gw, pc_results, run["run_id"])
    typed = typed_conflicts(cfg, plan, pc_results, conflict_times(hs, pc, base), object_id)
    # Kept with the run's results so commit audits them (CONFLICT_DETECTED) like the plan's conflicts.
    results["typed_conflicts"] = typed
    results["tasks"] = _open_conflicts(env, writer, plan, run, object_id, typed)
    results["team"] = mirror.save(
        failed=[d for d in mirror.pending if owner_of.get((DEAL.plural, d), d) in outcome.failed],
        run_id=run["run_id"],
    )
    results["api_calls"] = dict(gw.calls)
    key = run_key(run["catalog"], run["run_id"], "apply_hubspot.json")
    env.snapshots.put_json(results, key)
    if env.journal is not None and journal_key is not None:
        env.journal.finish(journal_key, APPLIED, {"results_key": key})
    counts = {
        "updated": len(results["updated"]),
        "created": len(results["created"]),
        "linked": len(results["linked"]),
        "failed": len(results["failed"]),
        "notes": results["notes"],
        "tasks": results["tasks"],
    }
    log.info("HubSpot writes: %s (%d API calls)", counts, gw.total_calls)
    return {"key": key, "counts": counts}


def notes_checkpoints(env: SyncEnv, catalog: str, run_id: str) -> Checkpoints:
    """The checkpoint of run ``run_id``'s deal notes: its ``apply_hubspot``'s, and a later commit's for it.

    One key for both, so the commit that writes a dead run's owed notes finds what that run wrote.
    """
    return Checkpoints(env.snapshots, {"notes": run_key(catalog, run_id, "notes_done.json")})


def locked_fields(plan: Plan) -> dict[str, set[str]]:
    """Opportunity id -> the fields its plan wrote back to HubSpot because Partner Central locks them."""
    locked: dict[str, set[str]] = {}
    for item in plan.blocked:
        if item.get("reason") == LOCKED:
            locked.setdefault(item["opportunity_id"], set()).add(item["field"])
    return locked


def contacts_note(plan: Plan, oid: str, emails: list[str]) -> str:
    """The deal note's line for other contacts edited in Partner Central (positions and fields).

    Args:
        plan: the plan that wrote them.
        oid: the opportunity.
        emails: the contacts written (their e-mails go nowhere: the note names positions and fields).

    Returns:
        The line's HTML.
    """
    positions = plan.contact_positions.get(oid, {})
    parts = [
        f"contact {positions.get(e, '?')} ({', '.join(sorted(plan.contacts_to_hubspot[oid][e]))})"
        for e in emails
    ]
    return f"<p>Edited in AWS Partner Central, written to the HubSpot contacts: {'; '.join(parts)}.</p>"


def _other_contact_targets(gw: Any, plan: Plan) -> dict[str, str]:
    """E-mail (case-folded) -> HubSpot contact id, for the other contacts Partner Central edited."""
    emails = {e for per in plan.contacts_to_hubspot.values() for e in per}
    return {email: str(o["id"]) for email, o in gw.contacts_by_email(emails, []).items()}


def _close_superseded(env: SyncEnv, gw: Any, pc_results: dict[str, Any], run_id: str) -> list[str]:
    """Close the rejected-value conflicts whose field this run wrote to Partner Central; complete their tasks.

    Returns:
        The closed conflicts' ids.
    """
    written = {
        oid: list(result.get("written") or {})
        for oid, result in (pc_results.get("updated") or {}).items()
        if isinstance(result, dict)
    }
    closed = env.conflicts.close_superseded(written, run_id)
    if not closed:
        return []
    from cosell_sync.resolution import close_in_hubspot

    still = {c["opportunity_id"] for c in env.conflicts.pending()}
    close_in_hubspot(
        gw,
        [c.get("task_id") for c in closed],
        [c.get("deal_id") for c in closed if c["opportunity_id"] not in still],
    )
    return [c["conflict_id"] for c in closed]


def _complete_deals(
    cfg: Any, writer: HubSpotWriter, plan: Plan, pc: Any, hs: dict[str, dict[str, Any]]
) -> dict[str, dict[str, str | None]]:
    """Create the missing company/contact of deals a dead run created (upserts: never a second one)."""
    from cosell_sync.mapping import new_deal_properties

    props: dict[str, dict[str, dict[str, str]]] = {}
    for oid in plan.complete_deals:
        if oid not in pc.index:
            continue
        values = {c: clean(pc.at[oid, c]) for c in cfg.field_names() if c in pc.columns}
        wanted = new_deal_properties(values, oid, cfg)
        missing = {
            obj: wanted[obj]
            for obj in (COMPANY.name, CONTACT.name)
            if wanted.get(obj) and not clean(hs.get(oid, {}).get(HUBSPOT_OBJECTS[obj].frame_column))
        }
        if missing:
            props[oid] = missing
    if not props:
        return {}
    return writer.create_related({o: plan.complete_deals[o] for o in props}, props)


def _deals_with_stale_error(
    plan: Plan,
    pc_results: dict[str, Any],
    hs: dict[str, dict[str, Any]],
    base: dict[str, dict[str, Any]],
    object_id: Any,
    retried: list[dict[str, Any]],
) -> set[str]:
    """Deals of records synced to Partner Central now whose deal may still show an old sync error.

    The error is cleared on deals of records that were written, or already held the value, this run;
    of deals whose opportunity was created now (an earlier create may have failed); and of records
    queued after a failed write that this run read and found with nothing left to write (the user put
    the HubSpot value back to what Partner Central holds) or failing. The caller keeps the error of
    every deal that failed this run.
    """
    ok = set(pc_results.get("updated") or {}) | set(pc_results.get("skipped") or [])
    ok |= {s["opportunity_id"] for s in pc_results.get("submitted") or []}
    deals = {object_id(oid, DEAL.name) for oid in ok}
    deals |= set(pc_results.get("created") or {})
    unsettled = set(plan.partner_central_updates) | set(plan.invalid)
    unsettled |= {i["opportunity_id"] for i in (*plan.deferred, *plan.blocked, *plan.read_failures)}
    for item in retried:
        oid = item.get("opportunity_id")
        failed_before = (
            item.get("reason") == "FAILED" and item.get("direction") == Direction.TO_PARTNER_CENTRAL
        )
        if oid and failed_before and oid in hs and oid not in unsettled:
            deals.add(object_id(oid, DEAL.name))
    return {d for d in deals if d}


def _open_conflicts(
    env: SyncEnv,
    writer: HubSpotWriter,
    plan: Plan,
    run: dict[str, Any],
    object_id: Any,
    typed: list[dict[str, Any]] | None = None,
) -> int:
    """Record this run's conflicts, announce the new ones, then give every pending conflict its task.

    The plan's manual conflicts are ``SIMULTANEOUS_UPDATE``; ``typed`` holds the other three types, found
    in what the Partner Central write met (:func:`typed_conflicts`). A conflict whose task call failed in an
    earlier run stays pending with no task, and ``plan`` no longer reports it (its field is frozen): so
    each run looks for such conflicts, not only new ones.
    """
    from cosell_sync.conflict_store import SIMULTANEOUS_UPDATE

    rows = [
        {
            "conflict_id": item["conflict_id"],
            "conflict_type": item.get("conflict_type") or SIMULTANEOUS_UPDATE,
            "opportunity_id": item["opportunity_id"],
            "field": item["field"],
            # the plan names the two sides pc/hs; the conflict store's columns are spelled out
            "partner_central_value": item.get("pc"),
            "hubspot_value": item.get("hs"),
            "partner_central_timestamp": item.get("partner_central_timestamp"),
            "hubspot_timestamp": item.get("hubspot_timestamp"),
            "deal_id": object_id(item["opportunity_id"], DEAL.name),
        }
        for item in plan.conflicts
    ]
    rows += typed or []
    if rows:
        env.conflicts.open(rows, run_id=run["run_id"])
    _announce(env, run["run_id"])
    waiting = env.conflicts.awaiting_task()
    if not waiting:
        return 0
    try:
        tasks = writer.create_conflict_tasks(waiting)
    except SyncError as err:
        # The conflicts stay pending without a task; the next run finds them here and tries again.
        log.error("Creating HubSpot tasks for %d conflict(s) failed: %s", len(waiting), err.message)
        return 0
    for conflict_id, task_id in tasks.items():
        env.conflicts.set_task(conflict_id, task_id)
    without_deal = [c["conflict_id"] for c in waiting if not c.get("deal_id")]
    if without_deal:
        log.warning(
            "%d pending conflict(s) have no deal to put a task on: %s", len(without_deal), without_deal
        )
    return len(tasks)


def typed_conflicts(
    cfg: Any,
    plan: Plan,
    pc_results: dict[str, Any],
    times: dict[str, Any],
    object_id: Any,
) -> list[dict[str, Any]]:
    """Conflicts of the three types the Partner Central side reveals, as conflict-store rows.

    - ``LOCKED_FIELD``: HubSpot changed a field Partner Central locks after approval. The plan already
      writes Partner Central's value back to HubSpot (unchanged); the conflict keeps HubSpot's lost value
      so the deal owner sees it and decides (``USE_PARTNER_CENTRAL_VALUE`` accepts the lock).
    - ``STALE_DATA``: Partner Central changed a manual-resolution field between our read and our write
      (``ConflictException``, re-read): the writer left it alone; a person decides now instead of the next
      run's diff. Other fields follow their configured strategy on the next run, as before.
    - ``REJECTED_VALUE``: Partner Central answered ``ValidationException`` naming the field, or the
      writer refused to send a value Partner Central's model rejects (``TransformError`` naming it, e.g.
      too long): HubSpot's value waits for a person (a corrected value: ``CUSTOM_VALUE``) instead of
      failing the record every run. The record's write still fails in this run, as before.

    Args:
        cfg: the sync configuration.
        plan: the run's plan.
        pc_results: the ``apply_partner_central`` results.
        times: ``{"hubspot": {oid: ts}, "partner_central": {oid: ts}}``: when each side last changed.
        object_id: ``(opportunity id, object) -> HubSpot id`` of the run.

    Returns:
        Rows for :meth:`~cosell_sync.conflict_store.ConflictStore.open`.
    """
    from cosell_sync.conflict_store import LOCKED_FIELD, REJECTED_VALUE, STALE_DATA
    from cosell_sync.conflicts import MANUAL, conflict_id
    from cosell_sync.gating import LOCKED
    from cosell_sync.pc_model import strip_indexes

    hs_times = times.get("hubspot") or {}
    pc_times = times.get("partner_central") or {}

    def row(kind: str, oid: str, name: str, pcv: Any, hsv: Any, pc_time: Any = None) -> dict[str, Any]:
        return {
            # The type is part of the identity: the same values seen as another kind of conflict are
            # another occurrence.
            "conflict_id": conflict_id(oid, f"{name}#{kind}", pcv, hsv),
            "conflict_type": kind,
            "opportunity_id": oid,
            "field": name,
            "partner_central_value": pcv,
            "hubspot_value": hsv,
            "partner_central_timestamp": pc_time or pc_times.get(oid),
            "hubspot_timestamp": hs_times.get(oid),
            "deal_id": object_id(oid, DEAL.name),
        }

    rows: list[dict[str, Any]] = []
    for item in plan.blocked:
        oid, name = item["opportunity_id"], item["field"]
        pushed = plan.hubspot_updates.get(oid) or {}
        if item.get("reason") == LOCKED and name in pushed and pushed[name] != item.get("value"):
            rows.append(row(LOCKED_FIELD, oid, name, pushed[name], item.get("value")))
    superseded_at = pc_results.get("superseded_at") or {}
    for oid, fields in (pc_results.get("superseded") or {}).items():
        for name, fresh in fields.items():
            if cfg.strategy_for(name) != MANUAL:
                continue  # the configured strategy settles it on the next run (unchanged behaviour)
            hsv = (plan.partner_central_updates.get(oid) or {}).get(name)
            rows.append(row(STALE_DATA, oid, name, fresh, hsv, superseded_at.get(oid)))
    for oid, error in (pc_results.get("failed") or {}).items():
        changes = plan.partner_central_updates.get(oid)
        rejected = error.get("code") == "ValidationException" or error.get("type") == "TransformError"
        if not changes or not rejected or not error.get("fields"):
            continue
        # Partner Central names request paths; the writer's own model check names mapping fields.
        named = {strip_indexes(p) for p in str(error["fields"]).split(",") if p}
        for name, hsv in changes.items():
            if name in named or strip_indexes(cfg.field(name).partner_central) in named:
                pcv = (plan.expected.get(oid) or {}).get(name)
                rows.append(row(REJECTED_VALUE, oid, name, pcv, hsv))
    return rows


def conflict_times(
    hs: dict[str, dict[str, Any]], pc: Any, base: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """When each side of every record last changed (HubSpot deal, Partner Central record), as ISO keys.

    A record this run did not read from Partner Central (only HubSpot changed) has the time the
    baseline last saw it change there.
    """
    from cosell_sync.common import ts_key

    hs_times = {
        oid: ts_key(row.get("_last_modified")) for oid, row in hs.items() if clean(row.get("_last_modified"))
    }
    pc_times: dict[str, Any] = {
        str(oid): clean(row.get("pc_last_modified"))
        for oid, row in (base or {}).items()
        if clean(row.get("pc_last_modified"))
    }
    if "_lm_key" in getattr(pc, "columns", ()):
        pc_times.update({str(k): clean(v) for k, v in pc["_lm_key"].items() if clean(v)})
    return {"hubspot": hs_times, "partner_central": pc_times}


def announcement(conflict: dict[str, Any]) -> dict[str, Any]:
    """The SNS message of a new conflict: ids, type, field and times, never the values (PII).

    Args:
        conflict: the stored conflict item.

    Returns:
        A JSON-ready dict.
    """
    return {
        "event": "CONFLICT_DETECTED",
        "conflictId": conflict["conflict_id"],
        "conflictType": conflict.get("conflict_type"),
        "catalog": conflict.get("catalog"),
        "opportunityId": conflict["opportunity_id"],
        "dealId": conflict.get("deal_id"),
        "field": conflict["field"],
        "hubspotTimestamp": conflict.get("hubspot_timestamp"),
        "partnerCentralTimestamp": conflict.get("partner_central_timestamp"),
        "detectedAt": conflict.get("detected_at"),
        "status": conflict.get("status"),
    }


def _announce(env: SyncEnv, run_id: str) -> int:
    """Publish each conflict this run opened and not yet announced, once (``conflicts.sns_topic_arn``).

    Conflicts *opened* by this run are announced (a refreshed one keeps its first run): a retried task
    finds the ones an earlier attempt opened but did not announce, and skips the announced ones. A failed
    publish is logged (conflict id only) and does not fail the run (the conflict and its HubSpot task are
    stored): it is marked on the conflict (``announce_failed_at``), and every later run tries again while
    the conflict is pending, until the topic takes it. Conflicts opened before a topic was configured
    are not announced.
    """
    if env.announce is None:
        return 0
    sent = 0
    for conflict in env.conflicts.pending():
        if conflict.get("announced_at"):
            continue
        if conflict.get("run_id") != run_id and not conflict.get("announce_failed_at"):
            continue
        try:
            message_id = env.announce(announcement(conflict))
        except Exception as err:  # any publish failure: the conflict itself is stored
            log.error(
                "Announcing conflict %s on SNS failed: %s; the next run tries again",
                conflict["conflict_id"],
                type(err).__name__,
            )
            env.conflicts.mark_announce_failed(conflict["conflict_id"], type(err).__name__)
            continue
        env.conflicts.mark_announced(conflict["conflict_id"], message_id)
        sent += 1
    if sent:
        log.info("Announced %d new conflict(s) on SNS", sent)
    return sent


def _prefer_line_items(env: SyncEnv, plan: Plan, calls: Counter[str]) -> None:
    """Solutions from the deals' line items, for the writes that need solutions (``cosell_sync.solutions``).

    A deal's line items of solution products (``cosell_catalog``) are what the seller chose: for a
    submission, a create that submits or starts at ``Committed``/``Launched``, and an update moving the stage
    there, they win over the deal's ``aws_solution_ids`` property and the config's defaults
    (``plan.solution_ids`` is updated in place). Costs nothing when no write needs solutions, else a v4
    association read per 100 such deals and a batch read of their new line items. HubSpot unavailable:
    the property and defaults apply, as before.
    """
    from cosell_sync.errors import NotFoundError
    from cosell_sync.solutions import line_item_solution_ids
    from cosell_sync.writers.partner_central import STAGES_NEEDING_SOLUTION

    stage = next((f.name for f in env.config.fields if f.hubspot == "dealstage"), None)
    keys = set(plan.submit)
    keys |= {
        o
        for o, changes in plan.partner_central_updates.items()
        if changes.get(stage) in STAGES_NEEDING_SOLUTION
    }
    keys |= {
        f"deal:{item['deal_id']}"
        for item in plan.create_opportunities
        if item.get("submit") or (item.get("values") or {}).get(stage) in STAGES_NEEDING_SOLUTION
    }
    if not keys:
        return
    deal_of = {k: k.split(":", 1)[1] for k in keys if k.startswith("deal:")}
    if len(deal_of) < len(keys):
        try:
            frame = env.snapshots.get_frame(plan.sources["hubspot"], columns=["_deal_id"])
            deal_of.update(
                {str(o): str(d) for o, d in frame["_deal_id"].items() if str(o) in keys and clean(d)}
            )
        except (NotFoundError, KeyError):
            pass
    try:
        chosen = line_item_solution_ids(env, set(deal_of.values()), calls)
    except SyncError as err:
        log.warning("Line items of the deals to submit not read (%s); aws_solution_ids applies", err.code)
        return
    for key, deal_id in deal_of.items():
        if chosen.get(deal_id):
            log.info("%s: %d solution(s) from its deal's line items", key, len(chosen[deal_id]))
            plan.solution_ids[key] = chosen[deal_id]


__all__ = ["SYNC_ERROR_PROPERTY", "apply_hubspot", "apply_partner_central", "load_plan"]
