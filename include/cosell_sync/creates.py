"""Opportunity creates, before and after the writes: links found by search, and bulk jobs.

The ``prepare_creates`` step runs between ``plan`` and the writes:

1. **Bulk jobs not yet applied** (journaled by this run's earlier attempt or by a run that died): their
   start request is sent again exactly (same ``ClientToken``, same file: AWS answers with the same
   ``JobId``, never a second job), and their deals are kept out of this run's creates until the job's
   results are applied.
2. **Search before create**: deals about to get an opportunity are looked up by
   ``PartnerOpportunityIdentifier`` (:func:`cosell_sync.pc_search.find_by_partner_ids`); a deal whose
   link was lost is linked to its opportunity, never given a second one.
3. **Bulk create**: more than ``bulk.min_records`` creates go as one CSV (:mod:`cosell_sync.bulk_csv`) in
   the state bucket and one ``StartOpportunityBulkJob``. An account without bulk jobs
   (``OPPORTUNITY_BULK_JOB_NOT_ENABLED``) falls back to single creates, said once in the log.

A deferred wait (``cosell_runtime.triggers``) holds no worker slot while AWS processes the job; then
:func:`apply_prepared_creates`, called by ``apply_partner_central``, turns each record's result into the
outcome a single create has: the deal is linked, a failure goes to ``aws_sync_error`` and the retry queue.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from cosell_sync.bulk_csv import OPPORTUNITY, read_csv, write_csv
from cosell_sync.errors import AuthError, ServiceUnavailableError, SyncError
from cosell_sync.journal import APPLIED, BULK_CREATE_JOB, BULK_UPDATE_JOB, FAILED
from cosell_sync.pc_search import find_by_partner_ids
from cosell_sync.storage import run_key

if TYPE_CHECKING:
    from cosell_sync.env import SyncEnv
    from cosell_sync.plan import Plan
    from cosell_sync.writers.partner_central import PartnerCentralWriter

log = logging.getLogger(__name__)

#: ``AccessDeniedException.Reason`` of an account without opportunity bulk jobs.
BULK_NOT_ENABLED = "OPPORTUNITY_BULK_JOB_NOT_ENABLED"
#: Job states after which results no longer change.
FINISHED = ("COMPLETED", "FAILED")
#: ``ListOpportunityBulkJobResults`` page size (model maximum).
RESULTS_PAGE = 1000


def prepare_creates(env: SyncEnv, run: dict[str, Any], planned: dict[str, Any]) -> dict[str, Any]:
    """Link deals that already have an opportunity; start (or resume) the run's bulk job.

    Args:
        env: clients and stores.
        run: the run description.
        planned: the ``plan`` step's result.

    Returns:
        ``key`` of the stored result, ``jobs`` (bulk job ids to wait for) and ``counts``.
    """
    from cosell_sync.apply import load_plan
    from cosell_sync.writers.partner_central import PartnerCentralWriter

    if run["dry_run"]:
        return {"key": None, "jobs": [], "counts": {}}
    plan = load_plan(env, planned)
    calls: Counter[str] = Counter()
    writer = PartnerCentralWriter.for_run(env, run, calls)
    wanted = [
        str(i["deal_id"]) for i in plan.create_opportunities if f"deal:{i['deal_id']}" not in plan.invalid
    ]
    out: dict[str, Any] = {"found": {}, "jobs": [], "search": "enabled", "bulk": "not_needed"}

    pending: set[str] = set()
    for entry in env.journal.bulk_jobs() if env.journal is not None else []:
        job = _resume_job(env, entry, calls)
        out["jobs"].append(job)
        pending.update(job["deal_ids"])

    candidates = [d for d in wanted if d not in pending]
    found = find_by_partner_ids(env.partner_central, candidates, calls) if candidates else {}
    if found is None:
        log.warning(
            "SearchOpportunities is not enabled for this account: creates rely on their deal-derived "
            "ClientToken alone to avoid duplicates."
        )
        out["search"] = "not_enabled"
        found = {}
    out["found"] = found

    to_create = [d for d in candidates if d not in found]
    bulk = env.config.bulk
    if bulk.enabled and len(to_create) > bulk.min_records:
        teams: dict[str, list[dict[str, str]]] = {}
        job = _start_job(env, run, writer, plan, to_create, calls, teams)
        if job is None:
            out["bulk"] = "not_enabled"
            # The single creates that follow send the same teams: apply reuses them, no second owners read.
            out["teams"], out["teams_for"] = teams, to_create
        else:
            out["jobs"].append(job)
            out["bulk"] = "started"
    if bulk.enabled and bulk.updates and len(plan.partner_central_updates) > bulk.min_records:
        job = _start_update_job(env, run, writer, plan, calls)
        if job is not None:
            out["update_jobs"] = [job]
            out["jobs"].append({**job, "deal_ids": []})
    out["api_calls"] = dict(calls)
    key = run_key(run["catalog"], run["run_id"], "creates.json")
    env.snapshots.put_json(out, key)
    counts = {
        "found_by_search": len(found),
        "bulk_jobs": len(out["jobs"]),
        "bulk_records": sum(len(j["deal_ids"]) for j in out["jobs"]),
    }
    log.info("Creates prepared: %s (search %s, bulk %s)", counts, out["search"], out["bulk"])
    return {"key": key, "jobs": [j["job_id"] for j in out["jobs"]], "counts": counts}


def _start_update_job(
    env: SyncEnv, run: dict[str, Any], writer: PartnerCentralWriter, plan: Plan, calls: Counter[str]
) -> dict[str, Any] | None:
    """Opt-in (``bulk.updates``): send the run's updates as one bulk job; None when nothing qualifies.

    Each record is gated, re-diffed and merged exactly as a single update would be, from the record the
    extract read, and carries that record's ``LastModifiedDate``. A record the job does not update (a
    conflict, a rejection) goes through the single update path in ``apply_partner_central``, which re-reads
    it: an old plan is never applied over a newer edit. Records that need solutions associated first
    stay on the single path.
    """
    from cosell_sync.apply import loads_opportunity
    from cosell_sync.common import clean
    from cosell_sync.mapping import merge_into_opportunity
    from cosell_sync.writers.partner_central import STAGES_NEEDING_SOLUTION

    raw = env.snapshots.get_frame(plan.sources["partner_central"], columns=["_raw"])["_raw"].to_dict()
    stage_field = writer.stage_field
    rows: list[tuple[str, dict[str, Any]]] = []
    updates: dict[str, dict[str, Any]] = {}
    for oid, changes in plan.partner_central_updates.items():
        if oid in plan.invalid:
            continue
        # The record as the extract read it, else read now: reads (10/s) are what bulk updates trade
        # the writes (1/s) for.
        current = loads_opportunity(raw[oid]) if clean(raw.get(oid)) else writer.get(oid)
        gated = writer.gate((current.get("LifeCycle") or {}).get("ReviewStatus"), list(changes))
        allowed = {k: v for k, v in changes.items() if k not in gated}
        if not allowed or gated or (stage_field and allowed.get(stage_field) in STAGES_NEEDING_SOLUTION):
            continue  # the single path reports the gate or associates the solutions first
        payload = merge_into_opportunity(current, allowed, env.config)
        payload.pop("Catalog", None)
        rows.append((oid, payload))
        expected = plan.expected.get(oid) or {}
        updates[oid] = {"changes": allowed, "old": {k: expected.get(k) for k in allowed}}
    if len(rows) <= env.config.bulk.min_records:
        return None
    data = write_csv(OPPORTUNITY, rows, update=True)
    return _send_job(env, run, data, "updates", BULK_UPDATE_JOB, calls, updates=updates)


def _resume_job(env: SyncEnv, entry: dict[str, Any], calls: Counter[str]) -> dict[str, Any]:
    """A journaled bulk job: its id (the start request sent again when the answer was never seen)."""
    job_id = (entry.get("outcome") or {}).get("job_id")
    if not job_id:
        # The run died during the call: the same request gives the same job (or starts it once).
        calls["StartOpportunityBulkJob"] += 1
        job_id = env.partner_central.call("start_opportunity_bulk_job", **entry["request"])["JobId"]
        if env.journal is not None:
            env.journal.finish(entry["SK"], APPLIED, {"job_id": job_id})
    log.info("Bulk job %s of run %s: its results are applied by this run.", job_id, entry.get("run_id"))
    return {
        "job_id": job_id,
        "deal_ids": [str(d) for d in entry.get("deal_ids") or []],
        "file_key": entry.get("file_key"),
        "journal_key": entry["SK"],
        "run_id": entry.get("run_id"),
    }


def _start_job(
    env: SyncEnv,
    run: dict[str, Any],
    writer: PartnerCentralWriter,
    plan: Plan,
    deal_ids: list[str],
    calls: Counter[str],
    teams: dict[str, list[dict[str, str]]],
) -> dict[str, Any] | None:
    """Write the CSV, start one bulk job; None when the account has no bulk jobs.

    Each record carries its deal's team (``OpportunityTeam[n].*`` columns, as a single create would):
    one owners read for the job (:func:`cosell_sync.team.resolve_teams`), left in ``teams`` (deal id ->
    team) for the single creates of a fallback.
    """
    from cosell_sync.team import resolve_teams

    values = {str(i["deal_id"]): i["values"] for i in plan.create_opportunities}
    others = {str(i["deal_id"]): i.get("other_contacts") for i in plan.create_opportunities}
    wanted = set(deal_ids)
    resolved, team_calls = resolve_teams(
        env, [i for i in plan.create_opportunities if str(i["deal_id"]) in wanted]
    )
    teams.update(resolved)
    calls.update(team_calls)
    rows = []
    for deal_id in deal_ids:
        request, _held, _sent = writer.create_request(
            deal_id, values[deal_id], teams.get(deal_id), others.get(deal_id)
        )
        rows.append((deal_id, {k: v for k, v in request.items() if k not in ("Catalog", "ClientToken")}))
    data = write_csv(OPPORTUNITY, rows)
    return _send_job(env, run, data, "opportunities", BULK_CREATE_JOB, calls, deal_ids=deal_ids)


def _send_job(
    env: SyncEnv,
    run: dict[str, Any],
    data: bytes,
    name: str,
    kind: str,
    calls: Counter[str],
    **details: Any,
) -> dict[str, Any] | None:
    """Store the CSV, journal the start request, start the job; None when the account has no bulk jobs."""
    from cosell_sync.mapping import client_token

    digest = hashlib.sha256(data).hexdigest()
    file_key = run_key(run["catalog"], run["run_id"], f"bulk-{name}-{digest[:16]}.csv")
    store = env.snapshots
    full_key = store.full_key(file_key)
    store.s3.put_object(Bucket=store.bucket, Key=full_key, Body=data, ContentType="text/csv")
    url = store.s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": store.bucket, "Key": full_key},
        ExpiresIn=env.config.bulk.url_expiry_seconds,
    )
    if not url.startswith("https://"):
        # A plain-HTTP S3 endpoint (moto, MinIO in a local stack) has no https URL to give, and the API
        # takes only https:// or s3://: name the object itself.
        url = f"s3://{store.bucket}/{full_key}"
    # From the run and the file: a retried task sends the same file with the same token (same job); a
    # later run's file differs, and its deals were kept out of it while this job was unapplied.
    request = {
        "Catalog": run["catalog"],
        "ClientToken": client_token(run["catalog"], f"bulk-{run['run_id']}-{digest}"),
        "FileURI": url,
        "FileFormat": "CSV",
    }
    journal_key = None
    if env.journal is not None:
        journal_key = env.journal.begin(
            run["run_id"],
            kind,
            f"job:{digest[:16]}",
            request=request,
            run_started_at=run.get("started_at"),
            file_key=file_key,
            **details,
        )
    records = len(details.get("deal_ids") or details.get("updates") or [])
    calls["StartOpportunityBulkJob"] += 1
    try:
        job_id = env.partner_central.call("start_opportunity_bulk_job", **request)["JobId"]
    except AuthError as err:
        if env.journal is not None and journal_key:
            env.journal.finish(journal_key, FAILED, {"error": err.to_dict()})
        if err.reason == BULK_NOT_ENABLED or BULK_NOT_ENABLED in err.message:
            log.warning(
                "Opportunity bulk jobs are not enabled for this account: the %d %s of this run go "
                "one by one (1 write/s).",
                records,
                "creates" if kind == BULK_CREATE_JOB else "updates",
            )
            return None
        raise
    except SyncError as err:
        if env.journal is not None and journal_key:
            env.journal.finish(journal_key, FAILED, {"error": err.to_dict()})
        raise
    if env.journal is not None and journal_key:
        env.journal.finish(journal_key, APPLIED, {"job_id": job_id})
    log.info("Bulk job %s started for %d %s (file %s).", job_id, records, name, file_key)
    return {
        "job_id": job_id,
        "file_key": file_key,
        "journal_key": journal_key,
        "run_id": run["run_id"],
        **details,
    }


def job_status(env: SyncEnv, job_id: str, calls: Counter[str] | None = None) -> dict[str, Any]:
    """The job's summary from ``ListOpportunityBulkJobs`` (one read)."""
    if calls is not None:
        calls["ListOpportunityBulkJobs"] += 1
    page = env.partner_central.call("list_opportunity_bulk_jobs", JobId=job_id)
    for summary in page.get("OpportunityBulkJobSummaries") or []:
        if summary.get("JobId") == job_id:
            return summary
    raise ServiceUnavailableError(f"bulk job {job_id} is not listed yet", service="partner_central")


def load_prepared(env: SyncEnv, creates: dict[str, Any] | None) -> dict[str, Any] | None:
    """What ``prepare_creates`` stored (searches, bulk jobs), read once for the apply step.

    Args:
        env: clients and stores.
        creates: ``prepare_creates``' result (None or no key: nothing was prepared).

    Returns:
        The stored document, or None when nothing was prepared.
    """
    if not creates or not creates.get("key"):
        return None
    return env.snapshots.get_json(creates["key"])


def apply_prepared_creates(
    env: SyncEnv,
    writer: PartnerCentralWriter,
    plan: Plan,
    prepared: dict[str, Any] | None,
    results: dict[str, Any],
    submissions: list[tuple[str, list[str]]],
    calls: Counter[str],
) -> set[str]:
    """Turn what ``prepare_creates`` did into create outcomes; returns the deals it covered.

    Args:
        env: clients and stores.
        writer: the run's Partner Central writer.
        plan: the run's plan.
        prepared: what ``prepare_creates`` stored (:func:`load_prepared`; None: nothing was prepared).
        results: ``apply_partner_central``'s results, filled in place (``created``, ``failed``).
        submissions: (opportunity, solutions) to submit after the writes, appended to.
        calls: API call counter.
    """
    if prepared is None:
        return set()
    # The searches and the job start count as this run's Partner Central calls in the report.
    calls.update(prepared.get("api_calls") or {})
    covered: set[str] = set()
    for deal_id, oid in (prepared.get("found") or {}).items():
        if deal_id in results["created"]:
            continue
        try:
            results["created"][deal_id] = writer.adopt_existing(deal_id, oid, "search")
        except SyncError as err:
            log.error("Reading opportunity %s found for deal %s failed: %s", oid, deal_id, err.message)
            results["failed"][f"deal:{deal_id}"] = err.to_dict()
        covered.add(deal_id)
    for job in prepared.get("jobs") or []:
        if job.get("updates"):
            continue  # apply_prepared_updates
        covered |= _apply_job(env, writer, plan, job, results, submissions, calls)
    return covered


def apply_prepared_updates(
    env: SyncEnv, prepared: dict[str, Any] | None, results: dict[str, Any], calls: Counter[str]
) -> tuple[set[str], set[str]]:
    """The outcome of an opt-in bulk update job: ``(updated, to re-read)``.

    A record the job updated is reported like a single update (its new ``LastModifiedDate`` comes with
    the next run's read). A record it did not (``ConflictException``: edited since the read; a rejection)
    is returned in the second set: the single update path re-reads it, re-gates and re-diffs it.
    ``prepared`` is what ``prepare_creates`` stored (:func:`load_prepared`; None: nothing was prepared).
    """
    if prepared is None:
        return set(), set()
    done: set[str] = set()
    reread: set[str] = set()
    for job in prepared.get("update_jobs") or []:
        job_id = job["job_id"]
        _finished_status(env, job_id, calls)
        outcome = _results(env, job_id, calls)
        for oid, update in (job.get("updates") or {}).items():
            row = outcome.get(oid)
            if row is not None and row.get("Status") == "SUCCEEDED":
                results["updated"][oid] = {
                    "last_modified": None,
                    "written": update["changes"],
                    "attempts": 1,
                    "associated": [],
                    "bulk_job": job_id,
                }
                done.add(oid)
            else:
                code = (row or {}).get("ErrorCode") or "NO_RESULT"
                log.warning("Bulk update of %s not applied (%s): updating it on its own.", oid, code)
                reread.add(oid)
    return done, reread


def _finished_status(env: SyncEnv, job_id: str, calls: Counter[str]) -> dict[str, Any]:
    """A bulk job's summary, once it has finished.

    Raises:
        ServiceUnavailableError: the job is still running (retriable: the task tries again later).
    """
    summary = job_status(env, job_id, calls)
    if summary.get("Status") not in FINISHED:
        # The deferred wait lets the apply step start only once the job finished; a cleared wait did not.
        raise ServiceUnavailableError(
            f"bulk job {job_id} is {summary.get('Status')}: its results are applied when it finishes",
            service="partner_central",
        )
    return summary


def _results(env: SyncEnv, job_id: str, calls: Counter[str]) -> dict[str, dict[str, Any]]:
    """Every record result of a finished job, by RequestId (1,000 per call)."""
    outcome: dict[str, dict[str, Any]] = {}
    token: str | None = None
    while True:
        params: dict[str, Any] = {"JobId": job_id, "MaxResults": RESULTS_PAGE}
        if token:
            params["NextToken"] = token
        calls["ListOpportunityBulkJobResults"] += 1
        page = env.partner_central.call("list_opportunity_bulk_job_results", **params)
        for row in page.get("Results") or []:
            outcome[str(row.get("RequestId"))] = row
        token = page.get("NextToken")
        if not token:
            return outcome


def _apply_job(
    env: SyncEnv,
    writer: PartnerCentralWriter,
    plan: Plan,
    job: dict[str, Any],
    results: dict[str, Any],
    submissions: list[tuple[str, list[str]]],
    calls: Counter[str],
) -> set[str]:
    """Apply one finished bulk job's per-record results."""
    from cosell_sync.common import clean
    from cosell_sync.mapping import opportunities_to_frame

    job_id = job["job_id"]
    summary = _finished_status(env, job_id, calls)
    deal_ids = [str(d) for d in job["deal_ids"]]
    outcome = _results(env, job_id, calls)
    # The requests the job was sent (its CSV): the values each created opportunity holds.
    _op, rows = read_csv(OPPORTUNITY, _read_file(env, job["file_key"]))
    requests = {r.request_id: r.request for r in rows}
    planned = {str(i["deal_id"]): i for i in plan.create_opportunities}
    made = {
        d: str(outcome[d]["ResourceIdentifier"])
        for d in deal_ids
        if d in outcome and outcome[d].get("ResourceIdentifier")
    }
    frame = opportunities_to_frame(
        [{**requests.get(d, {}), "Id": oid} for d, oid in made.items()], env.config
    )
    stored = {
        d: {f: clean(row.get(f)) for f in env.config.field_names()}
        for d, (_i, row) in zip(made, frame.iterrows(), strict=True)
    }
    failed_job = summary.get("Status") == "FAILED"
    for deal_id in deal_ids:
        key = f"deal:{deal_id}"
        row = outcome.get(deal_id)
        item = planned.get(deal_id)
        solutions = plan.solution_ids.get(key)
        if deal_id in made:
            held: dict[str, str | None] = {}
            if item is not None:
                _req, held, _sent = writer.create_request(deal_id, item["values"])
            created = writer.adopt_bulk_created(made[deal_id], stored[deal_id], held, solutions)
            created["bulk_job"] = job_id
            # No read-back: the deal shows the team the job was sent until the record's first change is read.
            created["team"] = requests.get(deal_id, {}).get("OpportunityTeam") or []
            results["created"][deal_id] = created
            if created.get("error"):
                results["failed"][key] = created["error"]
            if row and row.get("Status") == "FAILED":
                # Created, then a later step of the record failed: linked, and the error shown.
                results["failed"][key] = _record_error(job_id, deal_id, row)
            elif item is not None and item.get("submit"):
                submissions.append((made[deal_id], solutions or []))
            continue
        if row is not None:
            results["failed"][key] = _record_error(job_id, deal_id, row)
        else:
            reason = summary.get("FailureReason") if failed_job else "no result for this record"
            results["failed"][key] = {
                "type": "BulkJobError",
                "service": "partner_central",
                "code": "BULK_JOB_FAILED" if failed_job else "BULK_RECORD_MISSING",
                "message": f"bulk job {job_id}: {reason}",
                "record_id": key,
                "retriable": True,
            }
        log.error("Bulk create of deal %s failed: %s", deal_id, results["failed"][key]["message"])
    log.info(
        "Bulk job %s: %d created, %d failed, of %d.",
        job_id,
        len(made),
        sum(1 for d in deal_ids if f"deal:{d}" in results["failed"]),
        len(deal_ids),
    )
    return set(deal_ids)


def _record_error(job_id: str, deal_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """A failed record's error, shaped like :meth:`SyncError.to_dict` (the message names no value)."""
    from cosell_sync.errors import without_values

    return {
        "type": "BulkRecordError",
        "service": "partner_central",
        "code": str(row.get("ErrorCode") or "UNKNOWN"),
        "message": f"bulk job {job_id}: {without_values(str(row.get('ErrorMessage') or ''))}",
        "record_id": f"deal:{deal_id}",
        "retriable": False,
    }


def _read_file(env: SyncEnv, file_key: str) -> bytes:
    store = env.snapshots
    return store.s3.get_object(Bucket=store.bucket, Key=store.full_key(file_key))["Body"].read()
