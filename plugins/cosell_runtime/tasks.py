"""What each task of the co-sell DAGs runs: one named function per task, each calling one domain step.

DAG files stay wiring only: a task imports its function from here and passes its XCom inputs. This
module turns the Airflow context into plain values, builds the task's :class:`~cosell_sync.env.SyncEnv`
(:mod:`cosell_runtime.env`) and calls the step in ``cosell_sync``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from cosell_runtime.env import AWS_CONN_ID, HUBSPOT_CONN_ID, build_env, build_lease

log = logging.getLogger(__name__)


def _run_info(context: dict[str, Any]) -> dict[str, Any]:
    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    return {
        "run_id": context.get("run_id") or getattr(dag_run, "run_id", None),
        "dag_id": getattr(context.get("dag"), "dag_id", None) or getattr(dag_run, "dag_id", None),
        "run_type": getattr(run_type, "value", run_type),
        "data_interval_start": _iso(context.get("data_interval_start")),
        "data_interval_end": _iso(context.get("data_interval_end")),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _run_timestamp(context: dict[str, Any]) -> datetime:
    """The run's fixed timestamp for audit keys: a retried task must write the same keys again."""
    dag_run = context.get("dag_run")
    for value in (
        getattr(dag_run, "run_after", None),
        context.get("logical_date"),
        getattr(dag_run, "start_date", None),
    ):
        if value is not None:
            return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.now(UTC)


@contextmanager
def _final_errors(*also: type[Exception]) -> Iterator[None]:
    """Fail the task without retries on errors a retry cannot fix, keeping their message.

    Always: another run's lease, a stale plan, an invalid sync config or run param, requested ids none
    of which exists, a run's record errors (the report step). ``also``: errors that are permanent for
    the calling task (a one-off run's unknown conflict or record, a value it cannot write now).
    """
    from airflow.sdk.exceptions import AirflowFailException

    from cosell_sync.errors import (
        ConfigError,
        ParamError,
        RecordErrorsError,
        RunOverlapError,
        StalePlanError,
        UnknownOpportunitiesError,
    )

    permanent = (
        RunOverlapError,
        StalePlanError,
        ConfigError,
        ParamError,
        UnknownOpportunitiesError,
        RecordErrorsError,
        *also,
    )
    try:
        yield
    except permanent as err:
        raise AirflowFailException(getattr(err, "message", None) or str(err)) from err


def _params(context: dict[str, Any]) -> dict[str, Any]:
    """The run's params, once its conf is known to name only params of the DAG.

    Airflow validates declared params but passes any other conf key through, so a typo (``mdoe``)
    would run with the default silently; this fails the task at once, listing the valid keys.
    """
    from cosell_sync.params import check_conf_keys

    dag = context.get("dag")
    dag_run = context.get("dag_run")
    conf = dict(getattr(dag_run, "conf", None) or {})
    valid = list(getattr(dag, "params", None) or context.get("params") or {})
    with _final_errors():
        check_conf_keys(conf, valid, str(getattr(dag, "dag_id", None) or _run_info(context)["dag_id"]))
    return dict(context.get("params") or {})


@contextmanager
def _leased(run: dict[str, Any]) -> Iterator[None]:
    """Hold the catalog's lease while a writing run's step works (a dry run writes nothing: no lease)."""
    if run.get("dry_run"):
        yield
        return
    with _final_errors(), build_lease(run["catalog"]).held(run["run_id"]):
        yield


def _step_recheck(run: dict[str, Any]) -> float:
    """How soon a sync run's step after ``commit`` looks at a taken lease again (it never waits in its slot).

    ``lease.event_recheck_seconds`` for a ``cosell_events`` run, ``lease.step_recheck_seconds`` for
    ``cosell_reconcile``'s.
    """
    from cosell_sync.config import load_config

    lease = load_config().lease
    return float(lease.event_recheck_seconds if run.get("events") else lease.step_recheck_seconds)


@contextmanager
def _exclusive(
    catalog: str, run_id: str, enabled: bool = True, reschedule_after: float | None = None
) -> Iterator[None]:
    """A one-task run (resolution, rollback) takes the catalog's lease, holds it and gives it up.

    ``reschedule_after`` (a sync run's step after ``commit``, which gave the lease up): when another
    run holds the lease, the task is rescheduled that many seconds later instead of waiting in its worker
    slot. Waiting would keep the ``partner_central_writes`` pool slot that the lease holder's own writing
    tasks need to finish: both runs stuck until ``lease.wait_seconds``, then this step failed.
    """
    if not enabled:
        yield
        return
    from cosell_sync.config import load_config

    lease = build_lease(catalog)
    if reschedule_after is not None and not lease.try_acquire(run_id):
        from airflow.sdk.exceptions import AirflowRescheduleException

        holder = lease.holder()
        log.info(
            "run %s: catalog leased by run %s; checking again in %gs",
            run_id,
            holder["owner"] if holder else "another run",
            reschedule_after,
        )
        raise AirflowRescheduleException(
            reschedule_date=datetime.now(UTC) + timedelta(seconds=reschedule_after)
        )
    lease.acquire(run_id, wait_seconds=load_config().lease.wait_seconds)
    try:
        with lease.held(run_id):
            yield
    finally:
        lease.release(run_id)


@contextmanager
def _after_commit(run: dict[str, Any]) -> Iterator[Any]:
    """A step after ``commit`` that writes Partner Central: its env, under the catalog's lease taken again.

    ``commit`` gave the lease up; a taken lease reschedules the step (``_step_recheck``) instead of keeping
    its pool slot. A dry run writes nothing and takes no lease.
    """
    env = build_env(run["catalog"])
    with (
        _final_errors(),
        _exclusive(
            env.catalog, run["run_id"], enabled=not run.get("dry_run"), reschedule_after=_step_recheck(run)
        ),
    ):
        yield env


# -- cosell_reconcile ----------------------------------------------------------------------------------
def reconcile_prepare(context: dict[str, Any]) -> dict[str, Any]:
    """``prepare``: take the catalog's lease, then fix the run's catalog and its window.

    The catalog is the run param, else the connection's ``catalog`` extra, else the config. The lease
    is taken before the watermarks are read: a run that must wait for another reads what that one
    committed.
    """
    from cosell_sync import reconcile
    from cosell_sync.config import load_config
    from cosell_sync.errors import RunOverlapError

    params = _params(context)
    info = _run_info(context)
    run_id = str(info["run_id"])
    with _final_errors():
        # The form's empty catalog ("") means the connection's, as an absent one does.
        env = build_env(params.get("catalog") or None)
        if params.get("dry_run"):
            return reconcile.prepare(env, params, info)
        lease = build_lease(env.catalog)
        lease_config = load_config().lease
        backfill = "backfill" in str(info.get("run_type") or "").lower()
        try:
            # A backfill run does not hold a worker slot while it waits: it checks once and reschedules.
            lease.acquire(run_id, wait_seconds=0 if backfill else lease_config.wait_seconds)
        except RunOverlapError:
            if not backfill:
                raise
            _reschedule_backfill(run_id, lease.holder(), lease_config.backfill_recheck_seconds)
        try:
            return reconcile.prepare(env, params, info)
        except Exception:
            # Nothing was written yet: give the lease back now rather than leave it to the failure callback.
            lease.release(run_id)
            raise


def _reschedule_backfill(run_id: str, holder: dict[str, Any] | None, seconds: int) -> None:
    """Put a backfill run's ``prepare`` back to sleep while another run holds the catalog.

    Airflow's backfill runs up to its own ``max_active_runs`` (10 by default through the CLI and REST API)
    at once, whatever the DAG's ``max_active_runs`` says; each would otherwise wait ``lease.wait_seconds``
    and fail. Rescheduled, they take the lease one at a time and no worker slot is held meanwhile.
    """
    from datetime import timedelta

    from airflow.sdk.exceptions import AirflowRescheduleException

    other = holder["owner"] if holder else "another run"
    log.info("backfill run %s: catalog leased by run %s; checking again in %ds", run_id, other, seconds)
    raise AirflowRescheduleException(reschedule_date=datetime.now(UTC) + timedelta(seconds=seconds))


def reconcile_extract_partner_central(run: dict[str, Any]) -> dict[str, Any]:
    """``extract_partner_central``."""
    from cosell_sync import reconcile

    with _leased(run):
        return reconcile.extract_partner_central(build_env(run["catalog"]), run)


def reconcile_extract_hubspot(run: dict[str, Any], pc: dict[str, Any]) -> dict[str, Any]:
    """``extract_hubspot``."""
    from cosell_sync import reconcile

    with _leased(run):
        return reconcile.extract_hubspot(build_env(run["catalog"]), run, pc)


def reconcile_plan(run: dict[str, Any], pc: dict[str, Any], hs: dict[str, Any]) -> dict[str, Any]:
    """``plan``."""
    from cosell_sync import reconcile

    with _leased(run):
        return reconcile.plan(build_env(run["catalog"]), run, pc, hs)


def invitations_sync(run: dict[str, Any]) -> dict[str, Any]:
    """``sync_invitations``: AWS referrals into deals; the sellers' decisions to Partner Central."""
    from cosell_sync.invitations import sync_invitations

    with _leased(run), _final_errors():
        return sync_invitations(build_env(run["catalog"]), run)


def invitation_decide(context: dict[str, Any]) -> dict[str, Any]:
    """``cosell_invitation``: one invitation's decision from the trigger form, as the deal would give it."""
    from datetime import UTC, datetime

    from cosell_sync.common import ts_key
    from cosell_sync.errors import NotFoundError
    from cosell_sync.invitations import sync_invitations

    params = _params(context)
    info = _run_info(context)
    with _final_errors():
        env = build_env(params.get("catalog") or None)
    invitation_id = str(params.get("invitation_id") or "").strip()
    run = {
        "run_id": str(info["run_id"]),
        "dag_id": str(info.get("dag_id") or "cosell_invitation"),
        "catalog": env.catalog,
        "started_at": ts_key(datetime.now(UTC)),
        "dry_run": False,
    }
    decision = (str(params.get("action")), params.get("rejection_reason"))
    # NotFoundError: no such invitation addressed to us; a retry cannot make one appear.
    with _final_errors(NotFoundError), _exclusive(env.catalog, run["run_id"]):
        out = sync_invitations(env, run, only={invitation_id}, decisions={invitation_id: decision})
    return {**out, "run": run, "catalog": run["catalog"]}


def invitations_finish(run: dict[str, Any], started: dict[str, Any]) -> dict[str, Any]:
    """``finish_invitations``: accepted invitations' opportunities linked to their deals."""
    from cosell_sync.invitations import finish_invitations

    if not started.get("key"):
        # Nothing was accepted (or the step was skipped): what the step would return, without building
        # the clients and renewing the lease for it (seconds of a run that should take few).
        return {"linked": 0, "failed": 0}
    with _leased(run), _final_errors():
        return finish_invitations(build_env(run["catalog"]), run, started)


def invitation_link(decided: dict[str, Any]) -> dict[str, Any]:
    """``cosell_invitation``'s link step: takes the catalog's lease and gives it back (a one-off run)."""
    from cosell_sync.invitations import finish_invitations

    run = decided["run"]
    env = build_env(run["catalog"])
    with _final_errors(), _exclusive(env.catalog, run["run_id"]):
        return finish_invitations(env, run, decided)


def reconcile_prepare_creates(run: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
    """``prepare_creates``: links found by search; the run's bulk job started (or resumed)."""
    from cosell_sync import reconcile

    with _leased(run), _final_errors():
        return reconcile.prepare_creates(build_env(run["catalog"]), run, planned)


def reconcile_apply_partner_central(
    run: dict[str, Any], planned: dict[str, Any], creates: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``apply_partner_central``: refuses a stale plan (another run committed since it was made)."""
    from cosell_sync import reconcile

    with _leased(run), _final_errors():
        return reconcile.apply_partner_central(build_env(run["catalog"]), run, planned, creates)


def reconcile_apply_hubspot(
    run: dict[str, Any], planned: dict[str, Any], pc_applied: dict[str, Any]
) -> dict[str, Any]:
    """``apply_hubspot``: refuses a stale plan."""
    from cosell_sync import reconcile

    with _leased(run), _final_errors():
        return reconcile.apply_hubspot(build_env(run["catalog"]), run, planned, pc_applied)


def reconcile_commit(
    run: dict[str, Any], planned: dict[str, Any], pc_applied: dict[str, Any], hs_applied: dict[str, Any]
) -> dict[str, Any]:
    """``commit``: records the run, then gives the catalog's lease up."""
    from cosell_sync import reconcile

    with _leased(run), _final_errors():
        committed = reconcile.commit(build_env(run["catalog"]), run, planned, pc_applied, hs_applied)
    if not run.get("dry_run"):
        build_lease(run["catalog"]).release(run["run_id"])
    return committed


def release_lease_on_failure(context: dict[str, Any]) -> None:
    """DAG ``on_failure_callback``: a failed run gives its lease up so the next run need not wait it out."""
    dag_run = context.get("dag_run")
    run_id = context.get("run_id") or getattr(dag_run, "run_id", None)
    conf = dict(getattr(dag_run, "conf", None) or {})
    try:
        # the run's catalog as prepare fixed it: the param, else the connection extra, else the config
        catalog = conf.get("catalog") or build_env(None).catalog
        if run_id:
            build_lease(str(catalog)).release(str(run_id))
    except Exception:  # a callback must never raise; the lease expires on its own
        log.warning("could not release the lease of run %s; it expires on its own", run_id)


def reconcile_sync_insights(run: dict[str, Any], pc: dict[str, Any]) -> dict[str, Any]:
    """``sync_insights``: AWS insights of changed opportunities into their deals.

    Runs after ``commit`` gave the lease up, without it: it writes only the read-only insight
    properties, which no diff reads, so a run starting meanwhile cannot be disturbed by it.
    """
    from cosell_sync.insights import sync_insights

    with _final_errors():
        return sync_insights(build_env(run["catalog"]), run, pc)


def reconcile_sync_engagements(run: dict[str, Any], pc: dict[str, Any], hs: dict[str, Any]) -> dict[str, Any]:
    """``sync_engagements``: engagements and the AWS summary into deals; context edits to Partner Central.

    It writes Partner Central (``UpdateEngagementContext``), so unlike ``sync_insights`` it takes the
    catalog's lease again (``commit`` gave it up) for its duration.
    """
    from cosell_sync.engagements import sync_engagements

    with _after_commit(run) as env:
        return sync_engagements(env, run, pc, hs)


def reconcile_sync_owners(run: dict[str, Any], hs: dict[str, Any]) -> dict[str, Any]:
    """``sync_owners``: deal owner changes to Partner Central (``AssignOpportunity``), notes on the deals.

    It writes Partner Central, so it takes the catalog's lease again (``commit`` gave it up).
    """
    from cosell_sync.owners import sync_owners

    with _after_commit(run) as env:
        return sync_owners(env, run, hs)


def reconcile_sync_customer_accounts(
    run: dict[str, Any], pc: dict[str, Any] | None, hs: dict[str, Any] | None
) -> dict[str, Any]:
    """``sync_customer_accounts``: a customer account per co-sell company, AWS's enrichment back to it.

    Runs after ``commit`` (it reads the committed baseline's deal -> company links and company values).
    ``hs`` is the HubSpot extract's result (its frame names the companies of changed records); ``pc`` is
    taken for the chain's uniform signature and not used: customer accounts have no events and are not
    in the Partner Central extract. It writes Partner Central, so it takes the catalog's lease again
    (``commit`` gave it up).
    """
    from cosell_sync.customer_accounts import sync_customer_accounts

    del pc  # see the docstring
    with _after_commit(run) as env:
        return sync_customer_accounts(env, run, hs)


def reconcile_sync_tags(
    run: dict[str, Any], pc: dict[str, Any], hs: dict[str, Any], pc_applied: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``sync_tags``: opportunity tags both ways (``TagResource``/``UntagResource``, the deal's ``aws_tags``).

    It writes Partner Central, so it takes the catalog's lease again (``commit`` gave it up).
    """
    from cosell_sync.tags import sync_tags

    with _after_commit(run) as env:
        return sync_tags(env, run, pc, hs, pc_applied)


def reconcile_sync_solutions(run: dict[str, Any], pc: dict[str, Any], hs: dict[str, Any]) -> dict[str, Any]:
    """``sync_solutions``: deal line items <-> the opportunity's associated solutions, both ways.

    It writes Partner Central (``AssociateOpportunity``/``DisassociateOpportunity``), so it takes the
    catalog's lease again (``commit`` gave it up) for its duration.
    """
    from cosell_sync.solutions import sync_solutions

    with _after_commit(run) as env:
        return sync_solutions(env, run, pc, hs)


def reconcile_sync_snapshots(run: dict[str, Any], pc: dict[str, Any], hs: dict[str, Any]) -> dict[str, Any]:
    """``sync_snapshots``: opportunities' snapshot jobs follow their deals; new revisions reach the deals.

    Runs after ``sync_engagements`` (whose state names each opportunity's engagement). It writes Partner
    Central (``Create/Start/Stop/DeleteResourceSnapshotJob``), so it takes the catalog's lease again
    (``commit`` gave it up). In a ``cosell_events`` run, the engagements its events name are read too.
    """
    from cosell_sync.snapshots import sync_snapshots

    named = list(((run.get("events") or {}).get("engagement_ids")) or [])
    with _after_commit(run) as env:
        return sync_snapshots(env, run, pc, hs, engagement_ids=named)


def reconcile_report(
    run: dict[str, Any],
    pc: dict[str, Any],
    hs: dict[str, Any],
    committed: dict[str, Any],
    insights: dict[str, Any] | None = None,
    *steps: dict[str, Any],
    engagements: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``report``: log the summary table with every step's API calls; fail on the run's record errors.

    The failure (``report.fail_on_record_errors``) comes after ``report.json`` is written and is never
    retried: everything was committed, and no earlier task runs again.
    """
    from cosell_sync import reconcile

    with _final_errors():
        env = build_env(run["catalog"])
        reported = reconcile.finish_report(
            env,
            run,
            pc,
            hs,
            committed,
            insights,
            steps=tuple(s for s in steps if s),
            engagements=engagements,
        )
        _push_run_note(reported.get("note"))
        reconcile.check_record_errors(run, reported, env.config.report.fail_on_record_errors)
    return reported


def _push_run_note(note: str | None) -> None:
    """Hand the run's note to the scheduler's listener (``cosell_runtime.run_notes``) through XCom.

    Pushed under its own key before the record-error check, so a run that then fails still gets it.
    """
    if not note:
        return
    from airflow.sdk import get_current_context

    from cosell_runtime.run_notes import NOTE_XCOM_KEY

    get_current_context()["ti"].xcom_push(key=NOTE_XCOM_KEY, value=note)


# -- cosell_events -------------------------------------------------------------------------------------
# The event DAG runs the reconcile steps above for the records its events name: these functions only
# decide which steps a run's events call for, build its run description and record the events.
def _event_ledger() -> Any:
    """The processed-event ids in the state table (``cosell_sync.events.EventLedger``)."""
    from cosell_hooks.aws import aws_client
    from cosell_sync.config import load_config
    from cosell_sync.events import EventLedger

    cfg = load_config()
    dynamodb = aws_client("dynamodb", AWS_CONN_ID)
    return EventLedger(dynamodb, cfg.storage.state_table, claim_seconds=cfg.lease.ttl_seconds)


def _hubspot_webhook_events(env: Any, ref: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The events of a HubSpot webhook batch (stored by the receiver) as ``ParsedEvent``, opportunities named.

    Returns ``(events, related)``: ``related`` names the companies and contacts the events changed, with
    their deals, for the HubSpot extract to read (``hubspot_related`` of the run).

    Reads the batch from S3 (``ref["batch_key"]``), then maps deals, companies and contacts to the linked
    opportunities (``cosell_sync.webhooks.resolve_opportunities``; the HubSpot calls are logged by endpoint).
    A batch that cannot be read is one ignored event: audited, never a failed run.
    """
    from cosell_sync.errors import NotFoundError
    from cosell_sync.events import ParsedEvent
    from cosell_sync.hubspot_api import HubSpotGateway
    from cosell_sync.webhooks import MalformedBatchError, parse_batch, parsed_events, resolve_opportunities

    key = str(ref.get("batch_key") or "")
    try:
        batch = parse_batch(env.snapshots.get_json(key)) if key else None
    except (NotFoundError, MalformedBatchError, ValueError) as err:
        log.warning("hubspot batch %s unreadable (%s)", key or "-", type(err).__name__)
        batch = None
    if batch is None:
        return [
            ParsedEvent(None, "hubspot:batch", source="HUBSPOT", reason="malformed: batch not readable")
        ], {}
    known: dict[str, str] = {}
    if any(e is not None and e.kind == "deletion" for _, e, _ in batch.events):
        # A deleted deal is gone from batch reads: its opportunity is the one it was last synced with.
        base = env.baseline.load()
        if "deal_id" in base.columns:
            known = {
                str(d): str(o) for o, d in base["deal_id"].items() if isinstance(d, str | int) and str(d)
            }
    gateway = HubSpotGateway(env.hubspot)
    resolution = resolve_opportunities(gateway, batch, env.config.link_property, known)
    log.info(
        "hubspot batch %s: %d event(s) -> opportunities %s; HubSpot calls %s",
        key,
        len(batch.events),
        sorted({o for ids in resolution.opportunities.values() for o in ids}) or "-",
        dict(gateway.calls),
    )
    return parsed_events(batch, resolution, env.catalog), resolution.related


def events_prepare(context: dict[str, Any]) -> dict[str, Any]:
    """``cosell_events``' ``prepare``: parse the events, take the lease, claim the events, fix the run.

    The run is ``cosell_reconcile``'s run description (``reconcile.prepare``), restricted to the
    opportunities the events name, plus ``events``: every event parsed, what they call for, and which
    ids this run claimed or found processed by another run (``duplicates``, synced once only). Another
    run's lease does not make the run wait in a worker slot: ``prepare`` is rescheduled every
    ``lease.event_recheck_seconds``.
    """
    from datetime import timedelta

    from airflow.sdk.exceptions import AirflowRescheduleException

    from cosell_runtime.assets import queued_events
    from cosell_sync import reconcile
    from cosell_sync.config import load_config
    from cosell_sync.events import events_from_conf, parse_event, plan_events

    params = _params(context)
    info = _run_info(context)
    run_id = str(info["run_id"])
    with _final_errors():
        env = build_env(None)
        lease_config = load_config().lease
    parsed = [parse_event(raw) for raw in events_from_conf(params)]
    # The SQS path: an asset-triggered run's events are the queue messages of its asset events.
    queue, queued = queued_events(context)
    parsed += queued
    hubspot_related: dict[str, Any] = {}
    if params.get("hubspot"):
        hubspot_events, hubspot_related = _hubspot_webhook_events(env, params["hubspot"])
        parsed += hubspot_events
    first = plan_events(parsed, env.catalog)
    for event in first.events:
        if event.ignored:
            # Logged and audited, never an error: EventBridge would only deliver it again.
            log.warning("event %s (%r) ignored: %s", event.event_id, event.detail_type, event.reason)
    lease = build_lease(env.catalog)
    with _final_errors():
        if not lease.try_acquire(run_id):
            holder = lease.holder()
            seconds = lease_config.event_recheck_seconds
            log.info(
                "event run %s: catalog leased by run %s; checking again in %ds",
                run_id,
                holder["owner"] if holder else "another run",
                seconds,
            )
            raise AirflowRescheduleException(reschedule_date=datetime.now(UTC) + timedelta(seconds=seconds))
        try:
            ids = [e.event_id for e in first.events if not e.ignored and e.event_id]
            # Under the lease: no other run is between its own claim and its sync meanwhile.
            # A HubSpot batch's events were reserved by the webhook receiver for the run it started.
            reserved_for = (params.get("hubspot") or {}).get("reserved_for")
            claimed, duplicates = _event_ledger().claim(ids, run_id, reserved_for=reserved_for)
            work = plan_events(parsed, env.catalog, skip_ids=duplicates)
            params = {
                "mode": "incremental",
                "direction": "both",
                "dry_run": False,
                "since": None,
                "opportunity_ids": work.opportunity_ids,
            }
            run = reconcile.prepare(env, params, info)
        except Exception:
            # Nothing written yet: give the lease back now (the claims stay this run's; a retry keeps them).
            lease.release(run_id)
            raise
    # A restricted run never moves the watermark; one with no opportunity at all must not either.
    run["advance_watermark"] = False
    run["hubspot_related"] = hubspot_related
    run["events"] = {**work.to_dict(), "claimed": claimed, "duplicates": duplicates, "sqs": queue}
    log.info(
        "events: %d received, %d claimed, %d duplicate(s), %d ignored -> opportunities %s, invitations %s, "
        "engagements %s",
        len(work.events),
        len(claimed),
        len(duplicates),
        sum(1 for e in work.events if e.ignored),
        work.opportunity_ids or "-",
        "yes" if work.invitations else "no",
        work.engagement_ids or "-",
    )
    return run


def events_sync_invitations(run: dict[str, Any]) -> dict[str, Any]:
    """``sync_invitations`` when an invitation event came (the whole step: it lists invitations by page)."""
    if not run["events"]["invitations"]:
        return {"key": None, "tasks": [], "counts": {}, "skipped": "no invitation event"}
    # The step skips itself in a run restricted to opportunities; the invitation event asks for it.
    return invitations_sync({**run, "opportunity_ids": []})


def events_extract_partner_central(run: dict[str, Any]) -> dict[str, Any]:
    """``extract_partner_central`` of the opportunities the events name.

    Skipped (with the steps up to ``commit``) when they name none: an empty id list would mean the whole
    incremental window.
    """
    if not run["events"]["opportunity_ids"]:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException("no opportunity event: the opportunity steps have nothing to do")
    return reconcile_extract_partner_central(run)


def events_sync_engagements(
    run: dict[str, Any], pc: dict[str, Any] | None, hs: dict[str, Any] | None
) -> dict[str, Any]:
    """``sync_engagements`` for engagement and opportunity events, under the catalog's lease.

    Engagement events: the named engagements are read. Opportunity events: their AWS summary is read.
    """
    from cosell_sync.engagements import sync_engagements

    events = run["events"]
    if not (events["opportunity_ids"] or events["engagement_ids"]):
        return {"skipped": "no opportunity or engagement event"}
    if hs is None:
        # No HubSpot extract ran (engagement events only): no deal is known to have changed, so no deal's
        # context is read (None would read every deal's); HubSpot context edits wait for the scheduled run.
        hs = {"key": "none", "deals": 0}
    # An event run is never a dry run: the lease is always taken.
    with _after_commit(run) as env:
        return sync_engagements(
            env,
            run,
            pc,
            hs,
            engagement_ids=events["engagement_ids"],
            summary_ids=events["opportunity_ids"],
        )


def events_finish(
    run: dict[str, Any],
    pc: dict[str, Any] | None,
    hs: dict[str, Any] | None,
    committed: dict[str, Any] | None,
    insights: dict[str, Any] | None,
    invitations: dict[str, Any] | None,
    linked: dict[str, Any] | None,
    engagements: dict[str, Any] | None,
    *steps: dict[str, Any] | None,
) -> dict[str, Any]:
    """``finish``: audit every event, mark the claimed ones processed, give the lease back.

    Then, if the opportunity steps ran, ``report`` as ``cosell_reconcile`` does (``report.json``; record
    errors fail it). ``steps``: the follow-up steps' results (owners, tags, solutions) for that report,
    ``None`` where a step was skipped.
    """
    from cosell_runtime.assets import acknowledge_queued
    from cosell_sync.events import ParsedEvent, event_audit_entries, event_latencies

    events = [ParsedEvent.from_dict(e) for e in run["events"]["events"]]
    duplicates = run["events"]["duplicates"]
    with _final_errors():
        env = build_env(run["catalog"])
        env.audit.write(event_audit_entries(run, events, duplicates))
        ledger = _event_ledger()
        ledger.done(run["events"]["claimed"], run["run_id"])
        build_lease(run["catalog"]).release(run["run_id"])
    # Acknowledge after processing: the queue messages of settled events only (cosell_runtime.assets).
    acknowledged = acknowledge_queued(run, ledger)
    processed = [e for e in events if not e.ignored and e.event_id not in set(duplicates)]
    latency = event_latencies(processed)
    for event_id, seconds in latency.items():
        # The event's time (when Partner Central emitted it) to now, after both sides were written.
        log.info("event %s: event-to-update %.1fs", event_id, seconds)
    out = {
        "events": len(events),
        "processed": [e.event_id for e in processed],
        "ignored": [e.event_id for e in events if e.ignored],
        "duplicates": duplicates,
        "latency_seconds": latency,
    }
    if acknowledged:
        out["sqs"] = acknowledged
    if committed is not None and pc is not None and hs is not None:
        out["report"] = reconcile_report(
            run,
            pc,
            hs,
            committed,
            insights,
            invitations or {},
            linked or {},
            *(step or {} for step in steps),
            engagements=engagements,
        ).get("report_key")
    return out


# -- cosell_hubspot_setup ------------------------------------------------------------------------------
def setup_ensure_storage() -> dict[str, Any]:
    """Create the S3 bucket and the DynamoDB tables when missing."""
    from cosell_hooks.aws import aws_client
    from cosell_sync import setup
    from cosell_sync.config import load_config

    s3 = aws_client("s3", AWS_CONN_ID)
    dynamodb = aws_client("dynamodb", AWS_CONN_ID)
    return setup.ensure_storage(load_config(), s3, dynamodb)


def setup_ensure_properties() -> dict[str, Any]:
    """Create or patch the HubSpot property group and custom properties."""
    from cosell_hooks.hubspot import HubSpotHook
    from cosell_sync import setup
    from cosell_sync.config import load_config

    return setup.ensure_properties(load_config(), HubSpotHook(HUBSPOT_CONN_ID))


# -- cosell_resolve_conflict and cosell_rollback ---------------------------------------------------------
def resolve_conflict(context: dict[str, Any]) -> dict[str, Any]:
    """``cosell_resolve_conflict``: apply a person's decision on one manual conflict."""
    from cosell_sync import resolution
    from cosell_sync.errors import NotFoundError, ValidationError

    params = _params(context)
    info = _run_info(context)
    # Permanent for a resolution: an unknown conflict, one resolved the other way, a value Partner Central
    # cannot take now (review state; WriteBlockedError is a ValidationError) or refuses: a retry a minute
    # later would fail the same way.
    final = (NotFoundError, ValidationError, resolution.AlreadyResolvedError)
    with _final_errors():
        env = build_env()
    with _final_errors(*final), _exclusive(env.catalog, str(info["run_id"])):
        return resolution.resolve_conflict(
            env,
            str(params.get("conflict_id") or "").strip(),
            str(params.get("resolution") or ""),
            params.get("reason"),
            str(params.get("resolved_by") or "").strip(),
            str(info["run_id"]),
            run_timestamp=_run_timestamp(context),
            dag_id=str(info.get("dag_id") or "cosell_resolve_conflict"),
            custom_value=params.get("custom_value"),
        )


def rollback(context: dict[str, Any]) -> dict[str, Any]:
    """``cosell_rollback``: restore one record (by opportunity or deal) to a point in time, or undo a run."""
    from cosell_sync import rollback as rollback_module
    from cosell_sync.errors import NotFoundError, ParamError, ValidationError

    params = _params(context)
    info = _run_info(context)
    dag_id = str(info.get("dag_id") or "cosell_rollback")
    named = {k: str(params.get(k) or "").strip() for k in ("opportunity_id", "deal_id", "run_id")}
    given = [k for k, v in named.items() if v]
    target = str(params.get("target_timestamp") or "").strip()
    systems = str(params.get("systems") or "both")
    with _final_errors():
        # Checked before anything is read: a retry cannot fix the params, so the run fails at once.
        if len(given) != 1:
            raise ParamError(
                "give exactly one of opportunity_id, deal_id or run_id (got "
                f"{', '.join(given) if given else 'none'}); nothing was rolled back"
            )
        if given == ["run_id"] and target:
            raise ParamError(
                "target_timestamp does not apply with run_id: a run is undone to the values just before it"
            )
        if given != ["run_id"] and not target:
            raise ParamError(f"target_timestamp is required with {given[0]} (ISO 8601, UTC if no offset)")
        env = build_env()
    dry_run = bool(params.get("dry_run", True))
    # The record is not linked or its deal is gone (NotFoundError), a side refuses the value
    # (ValidationError): a retry cannot change that. Throttling and 5xx are still retried.
    final = (NotFoundError, ValidationError)
    common: dict[str, Any] = {
        "run_timestamp": _run_timestamp(context),
        "dag_id": dag_id,
        "systems": systems,
    }
    fields = list(params.get("fields") or [])
    with _final_errors(*final), _exclusive(env.catalog, str(info["run_id"]), enabled=not dry_run):
        if named["run_id"]:
            return rollback_module.rollback_run(
                env, named["run_id"], fields, dry_run, str(info["run_id"]), f"airflow:{dag_id}", **common
            )
        opportunity_id = named["opportunity_id"] or rollback_module.resolve_deal(env, named["deal_id"])
        return rollback_module.rollback(
            env,
            opportunity_id,
            target,
            fields,
            dry_run,
            str(info["run_id"]),
            f"airflow:{dag_id}",
            **common,
        )


# -- cosell_audit_export -----------------------------------------------------------------------------------
def audit_export(context: dict[str, Any]) -> dict[str, Any]:
    """``cosell_audit_export``: write one UTC day of the audit trail to S3 as Parquet.

    The day is the ``date`` param, else the day before the run's data interval ends (or its logical date).
    """
    from datetime import timedelta

    from cosell_hooks.aws import aws_client
    from cosell_runtime.env import _dynamodb_client
    from cosell_sync import audit_export as export
    from cosell_sync.config import load_config
    from cosell_sync.errors import ParamError
    from cosell_sync.storage import SnapshotStore

    params = _params(context)
    given = str(params.get("date") or "").strip()
    with _final_errors():
        if given:
            try:
                day = export.parse_day(given)
            except ValueError as err:
                raise ParamError(f"date: {err}; nothing was exported") from err
        else:
            # Scheduled at 02:30 UTC: the day that ended before it, whatever the timetable's interval.
            reference = context.get("data_interval_end") or context.get("logical_date") or datetime.now(UTC)
            day = export.parse_day(reference - timedelta(days=1))
        cfg = load_config()
    snapshots = SnapshotStore(aws_client("s3", AWS_CONN_ID), cfg.storage.bucket, cfg.storage.prefix)
    return export.export_day(_dynamodb_client(), cfg.storage.audit_table, snapshots, day)


# -- cosell_settings ---------------------------------------------------------------------------------------
def change_settings(context: dict[str, Any]) -> dict[str, Any]:
    """``cosell_settings``: check the wanted selling system settings, log them; unless a dry run, put them."""
    from cosell_sync import settings
    from cosell_sync.errors import AuthError, ValidationError

    params = _params(context)
    info = _run_info(context)
    dry_run = bool(params.get("dry_run", True))
    # An emptied form field ("") keeps the current value, as null does.
    wanted = {member: params.get(name) or None for member, name in settings.PARAMS.items()}
    with _final_errors():
        # The form's empty catalog ("") means the connection's, as an absent one does.
        env = build_env(params.get("catalog") or None)
        # A value the model refuses fails here, before any call (ParamError: no retry).
        settings.check_settings(wanted)
    # Partner Central refusing the value or the caller's permission: a retry would meet the same answer.
    with (
        _final_errors(ValidationError, AuthError),
        _exclusive(env.catalog, str(info["run_id"]), enabled=not dry_run),
    ):
        return settings.change_settings(
            env,
            wanted,
            dry_run,
            str(info["run_id"]),
            _run_timestamp(context),
            dag_id=str(info.get("dag_id") or "cosell_settings"),
        )


# -- cosell_catalog ----------------------------------------------------------------------------------------
def catalog_sync(context: dict[str, Any]) -> dict[str, Any]:
    """``cosell_catalog``: the partner's solutions (``ListSolutions``) as HubSpot products, one per solution.

    Writes HubSpot products only, which no reconcile step writes, so it takes no catalog lease: a run of
    ``cosell_reconcile`` at the same time reads the products' ids from the step state either way.
    """
    from cosell_sync.catalog import sync_catalog

    params = _params(context)
    info = _run_info(context)
    with _final_errors():
        # The form's empty catalog ("") means the connection's, as an absent one does.
        env = build_env(params.get("catalog") or None)
    run = {
        "run_id": str(info["run_id"]),
        "dag_id": str(info.get("dag_id") or "cosell_catalog"),
        "run_timestamp": _run_timestamp(context),
        "dry_run": bool(params.get("dry_run", False)),
    }
    with _final_errors():
        return sync_catalog(env, run)


# -- cosell_assign -----------------------------------------------------------------------------------------
def assign_opportunity(context: dict[str, Any]) -> dict[str, Any]:
    """``cosell_assign``: assign one opportunity to the HubSpot owner with the given e-mail.

    Bad params fail at once (before any call); so do an unknown owner, deal or opportunity, an owner that
    cannot be an assignee, and Partner Central refusing the assignment: a retry would meet the same answer.
    """
    from cosell_sync import owners
    from cosell_sync.common import ts_key
    from cosell_sync.errors import NotFoundError, ValidationError

    params = _params(context)
    info = _run_info(context)
    named = {k: str(params.get(k) or "").strip() for k in ("deal_id", "opportunity_id", "assignee_email")}
    dry_run = bool(params.get("dry_run", True))
    with _final_errors():
        owners.check_params(named["deal_id"], named["opportunity_id"], named["assignee_email"])
        env = build_env(params.get("catalog") or None)
    stamp = _run_timestamp(context)
    run = {
        "run_id": str(info["run_id"]),
        "dag_id": str(info.get("dag_id") or "cosell_assign"),
        "catalog": env.catalog,
        "started_at": ts_key(stamp),
        "run_timestamp": stamp,
    }
    final = (NotFoundError, ValidationError, owners.OwnerError)
    with _final_errors(*final), _exclusive(env.catalog, run["run_id"], enabled=not dry_run):
        return owners.assign_manually(
            env, run, named["deal_id"], named["opportunity_id"], named["assignee_email"], dry_run
        )


# -- cosell_snapshot ---------------------------------------------------------------------------------------
def create_snapshot(context: dict[str, Any]) -> dict[str, Any]:
    """``cosell_snapshot``: one ``CreateResourceSnapshot`` of a linked opportunity in its engagement.

    Bad params fail at once (before any call); so do an unknown or unlinked deal or opportunity, one without
    an engagement, and Partner Central refusing the snapshot: a retry would meet the same answer.
    """
    from cosell_sync import snapshots
    from cosell_sync.common import ts_key
    from cosell_sync.errors import NotFoundError, ValidationError

    params = _params(context)
    info = _run_info(context)
    named = {k: str(params.get(k) or "").strip() for k in ("deal_id", "opportunity_id")}
    dry_run = bool(params.get("dry_run", True))
    with _final_errors():
        snapshots.check_params(named["deal_id"], named["opportunity_id"])
        env = build_env(params.get("catalog") or None)
    stamp = _run_timestamp(context)
    run = {
        "run_id": str(info["run_id"]),
        "dag_id": str(info.get("dag_id") or "cosell_snapshot"),
        "catalog": env.catalog,
        "started_at": ts_key(stamp),
        "run_timestamp": stamp,
    }
    with (
        _final_errors(NotFoundError, ValidationError),
        _exclusive(env.catalog, run["run_id"], enabled=not dry_run),
    ):
        return snapshots.snapshot_manually(env, run, named["deal_id"], named["opportunity_id"], dry_run)


def compare_snapshot(context: dict[str, Any]) -> dict[str, Any]:
    """``cosell_snapshot``: the ``compare_revision`` snapshot beside the opportunity now; the report's S3 key.

    Reads only (no lease, no write but the report). Bad params, an unlinked deal, an opportunity without an
    engagement and an unknown revision fail at once: a retry would meet the same answer.
    """
    from cosell_sync import snapshot_compare, snapshots
    from cosell_sync.errors import NotFoundError

    params = _params(context)
    info = _run_info(context)
    named = {k: str(params.get(k) or "").strip() for k in ("deal_id", "opportunity_id")}
    with _final_errors(NotFoundError):
        revision = snapshot_compare.check_revision(params.get("compare_revision"))
        if not revision:
            return {"skipped": "compare_revision is 0: no comparison"}
        snapshots.check_params(named["deal_id"], named["opportunity_id"])
        env = build_env(params.get("catalog") or None)
        run = {"run_id": str(info["run_id"]), "catalog": env.catalog}
        return snapshot_compare.compare_snapshot(
            env, run, named["deal_id"], named["opportunity_id"], revision
        )
