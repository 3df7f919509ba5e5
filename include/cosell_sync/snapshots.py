"""Engagement resource snapshots: one snapshot job per linked opportunity, its revisions on the deal.

Two entry points: :func:`sync_snapshots`, the ``sync_snapshots`` step of ``cosell_reconcile`` (after
``sync_engagements``, whose state names each linked opportunity's engagement and stage), and
:func:`snapshot_manually`, the ``cosell_snapshot`` DAG's on-demand ``CreateResourceSnapshot``.

**What the API has.** Partner Central has no upload of partner documents. A *resource snapshot* is an
immutable, numbered copy (``Revision`` 1, 2, ...) of an opportunity's view, made in the context of an
engagement and shared with its members; its template (``ResourceSnapshotTemplateIdentifier``) decides the
view. A *snapshot job* (``CreateResourceSnapshotJob``) takes a new revision whenever the opportunity's view
changes while it runs ("creates a new snapshot only if the resource state has changed"). Jobs are created
stopped, ``StartResourceSnapshotJob`` runs them, ``StopResourceSnapshotJob`` needs a running job and
``DeleteResourceSnapshotJob`` a stopped one (botocore model documentation of each operation).

**The job follows the deal.** Per linked opportunity with an engagement, for ``snapshots.template``:

* open opportunity: the job runs. It is found first (``ListResourceSnapshotJobs`` of the engagement, then
  ``GetResourceSnapshotJob`` for jobs not yet known, since summaries name no resource): the
  submission task (``StartEngagementFromOpportunityTask``) and an accepted referral already start one with
  the default template, which is adopted rather than duplicated. Else it is created with a ClientToken
  derived from the engagement, the opportunity, the template and a generation (bumped when a job of ours
  disappears, so a new one is not answered with the deleted one), then started.
* ``Launched`` or ``Closed Lost`` (the deal closed won or lost): the job is stopped; reopened, it starts
  again.
* the engagement is over: the opportunity closed ``snapshots.delete_after_days`` ago, or it left the
  engagement, or its deal was unlinked: the job is stopped if running and deleted.

Job statuses come from one ``ListResourceSnapshotJobs`` scan (1,000 a page) in a run that has a job to
act on, and at each ``snapshots.full_refresh_hours``; a quiet run makes no job call. Each write is paced by
the client's write limiter and is one audit entry (``CREATE_SNAPSHOT_JOB``, ``START_SNAPSHOT_JOB``,
``STOP_SNAPSHOT_JOB``, ``DELETE_SNAPSHOT_JOB``, ``CREATE_RESOURCE_SNAPSHOT``; ids only), written right after
the call; the audit keys derive from the run, so a retried task writes no second entry. A retried task
re-reads the statuses and sends only what is still missing; the create is idempotent by its ClientToken.

**Refused writes.** A job write Partner Central refuses (``ValidationException``, ``ConflictException``,
``ResourceNotFoundException``, a denied permission, retries exhausted) is logged, audited as a failed entry
and shown on the deal: one ``aws_sync_error`` line ``snapshots: <Operation> refused (<code>): <rule>`` (no
value; other steps' lines kept). The job's status stays what Partner Central has, so the next run sends the
write again (there is no retry-queue item: the step itself converges); the line goes once it goes through,
or once nothing is left to do. The lines are sent in the run's one batch update of deals.

**Snapshots on the deal.** ``ListResourceSnapshots`` (one engagement, 1,000 a page) is read for the
engagements of opportunities the run read (a new revision comes with an opportunity change), of jobs acted
on, of new links, of engagements an event named, and of all of them at each full refresh. The deal gets
``aws_total_resources`` (revisions of every resource in the engagement: the partner's and other members'),
``aws_partner_resources`` (JSON list, newest first, of this opportunity's revisions: ``snapshot_id`` (the
ARN), ``template``, ``revision``, ``created_at``, ``created_by``; at most ``snapshots.listed_revisions``) and
``aws_last_resource_upload`` (the newest revision's ``CreatedAt``). Summaries carry no creation time, so
each new revision costs one ``GetResourceSnapshot`` (at most ``snapshots.reads_per_run`` a run; the rest
wait). Each new revision of an opportunity already known to the step becomes one note on its deal; the
notes of a batch are checkpointed by content (``state/{catalog}/snapshot-notes/``), so a retry or a later
run that sees the same revisions never writes them twice. An opportunity seen for the first time has its
history recorded without notes. Only values that differ from the last write go out, 100 deals a call.

**The job on the deal.** ``aws_snapshot_job_status`` (``Running``, ``Stopped``; ``Deleted`` once the step
deleted it), ``aws_snapshot_job_last_success`` and ``aws_snapshot_job_last_failure`` come from
``GetResourceSnapshotJob`` (list summaries carry only the status). To keep its cost low a job is read only
in a run that writes it (or is refused), sees its listed status change, or reads a change of its opportunity
(a running job executes when its opportunity changes); any other job at most once per
``snapshots.job_details_hours``, oldest first, within what ``snapshots.reads_per_run`` leaves, and never
in a restricted run. A job adopted this run is not read twice. The values go in the same batch update,
only where they changed. ``LastFailure`` is AWS's text and may quote record values: it goes to the deal,
the log only says that a failure was recorded.

State: ``state/{catalog}/snapshots.parquet``, per opportunity.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from html import escape
from typing import TYPE_CHECKING, Any

from cosell_sync.common import DEAL, Direction, clean, parse_ts
from cosell_sync.errors import (
    AuthError,
    NotFoundError,
    ParamError,
    SyncError,
    merge_step_error,
    without_values,
)
from cosell_sync.storage import StepState, run_key, utc_iso

if TYPE_CHECKING:
    import pandas as pd

    from cosell_sync.env import SyncEnv
    from cosell_sync.hubspot_api import HubSpotGateway

log = logging.getLogger(__name__)

STATE_NAME = "snapshots"
#: The state ``sync_engagements`` keeps: each linked opportunity's engagement id and stage.
ENGAGEMENTS_STATE = "engagements"
TOTAL = "aws_total_resources"
LAST_UPLOAD = "aws_last_resource_upload"
PARTNER_RESOURCES = "aws_partner_resources"
#: The job's monitoring on the deal (``GetResourceSnapshotJob``): ``Status``, ``LastSuccessfulExecutionDate``,
#: ``LastFailure``; status ``Deleted`` once the sync deleted the job.
JOB_STATUS = "aws_snapshot_job_status"
JOB_LAST_SUCCESS = "aws_snapshot_job_last_success"
JOB_LAST_FAILURE = "aws_snapshot_job_last_failure"
JOB_PROPERTIES = (JOB_STATUS, JOB_LAST_SUCCESS, JOB_LAST_FAILURE)
DEAL_PROPERTIES = (TOTAL, LAST_UPLOAD, PARTNER_RESOURCES, *JOB_PROPERTIES)
#: ``aws_snapshot_job_last_failure`` is cut to this many characters (AWS's text has no documented bound).
FAILURE_CHARS = 2000
SYNC_ERROR_PROPERTY = "aws_sync_error"
#: Every line this step writes to ``aws_sync_error`` starts so (other steps' lines are kept).
ERROR_PREFIX = "snapshots: "
RESOURCE_TYPE = "Opportunity"
#: ``LifeCycle.Stage`` values of a closed opportunity (closed won is ``Launched``).
CLOSED_STAGES = frozenset({"Launched", "Closed Lost"})
RUNNING, STOPPED, DELETED = "Running", "Stopped", "Deleted"
#: ``ListResourceSnapshotJobs`` / ``ListResourceSnapshots`` ``MaxResults`` upper bound.
PAGE = 1000
STATE_COLUMNS = [
    "deal_id",
    "engagement_id",
    "job_id",
    "job_status",
    "generation",
    "closed_since",
    "revisions",
    "total",
    "props",
    "pending",
    "error",
    "job_detail",
]


class SnapshotAction(StrEnum):
    """The audit actions of this module (one per Partner Central write)."""

    CREATE_JOB = "CREATE_SNAPSHOT_JOB"
    START_JOB = "START_SNAPSHOT_JOB"
    STOP_JOB = "STOP_SNAPSHOT_JOB"
    DELETE_JOB = "DELETE_SNAPSHOT_JOB"
    CREATE_SNAPSHOT = "CREATE_RESOURCE_SNAPSHOT"


#: Each action's operation and boto3 method.
_OPERATIONS = {
    SnapshotAction.CREATE_JOB: ("CreateResourceSnapshotJob", "create_resource_snapshot_job"),
    SnapshotAction.START_JOB: ("StartResourceSnapshotJob", "start_resource_snapshot_job"),
    SnapshotAction.STOP_JOB: ("StopResourceSnapshotJob", "stop_resource_snapshot_job"),
    SnapshotAction.DELETE_JOB: ("DeleteResourceSnapshotJob", "delete_resource_snapshot_job"),
    SnapshotAction.CREATE_SNAPSHOT: ("CreateResourceSnapshot", "create_resource_snapshot"),
}


# -- pure helpers (unit-tested) ------------------------------------------------------------------------
def wanted_status(
    engaged: bool, stage: str | None, closed_since: str | None, now: datetime, delete_after_days: float
) -> str:
    """What the opportunity's snapshot job should be: ``Running``, ``Stopped`` or ``Deleted``.

    Args:
        engaged: the opportunity is linked and still in the engagement the job was made for.
        stage: its ``LifeCycle.Stage``.
        closed_since: when the step first saw it closed (ISO), if it is.
        now: the run's time.
        delete_after_days: ``snapshots.delete_after_days``.
    """
    if not engaged:
        return DELETED
    if stage not in CLOSED_STAGES:
        return RUNNING
    if closed_since and now - parse_ts(closed_since) >= timedelta(days=delete_after_days):
        return DELETED
    return STOPPED


def job_token(catalog: str, engagement_id: str, opportunity_id: str, template: str, generation: int) -> str:
    """The ``CreateResourceSnapshotJob`` ClientToken: derived, never random, so a retry gets the same job.

    ``generation`` grows when a job of ours was deleted: Partner Central answers a known token with the
    job it made for it, so a replacement needs a new one.
    """
    return f"cosell-sync:{catalog}:snapshot-job:{engagement_id}:{opportunity_id}:{template}:{generation}"


def snapshot_token(catalog: str, opportunity_id: str, run_id: str) -> str:
    """The on-demand ``CreateResourceSnapshot`` ClientToken: one snapshot per run, whatever retries do."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:32]
    return f"cosell-sync:{catalog}:snapshot:{opportunity_id}:{digest}"


def partner_resources(revisions: list[dict[str, Any]], limit: int) -> str:
    """``aws_partner_resources``: the newest ``limit`` revisions as a JSON list (empty list: ``""``)."""
    newest = sorted(revisions, key=lambda r: (r.get("created_at") or "", r["revision"]), reverse=True)
    listed = [
        {
            "snapshot_id": r["arn"],
            "template": r["template"],
            "revision": r["revision"],
            "created_at": r.get("created_at"),
            "created_by": r.get("created_by"),
        }
        for r in newest[:limit]
    ]
    return json.dumps(listed, separators=(",", ":")) if listed else ""


def deal_properties(revisions: list[dict[str, Any]], total: int, limit: int) -> dict[str, str]:
    """The three deal properties of an opportunity's snapshots."""
    times = [r["created_at"] for r in revisions if r.get("created_at")]
    return {
        TOTAL: str(total),
        LAST_UPLOAD: max(times) if times else "",
        PARTNER_RESOURCES: partner_resources(revisions, limit),
    }


def job_detail(job: dict[str, Any], read_at: datetime) -> dict[str, Any]:
    """What the step keeps of a ``GetResourceSnapshotJob`` answer (the deal's job properties and when)."""
    last = job.get("LastSuccessfulExecutionDate")
    return {
        "read_at": utc_iso(read_at),
        "status": clean(job.get("Status")),
        "last_success": utc_iso(last) if isinstance(last, datetime) else clean(last),
        "last_failure": clean(job.get("LastFailure")),
    }


def job_properties(detail: dict[str, Any]) -> dict[str, str]:
    """The three deal properties of the opportunity's snapshot job (empty string: no value)."""
    return {
        JOB_STATUS: str(detail.get("status") or ""),
        JOB_LAST_SUCCESS: str(detail.get("last_success") or ""),
        JOB_LAST_FAILURE: str(detail.get("last_failure") or "")[:FAILURE_CHARS],
    }


def details_due(detail: dict[str, Any] | None, now: datetime, hours: float) -> bool:
    """True when the job's details were never read or were read ``snapshots.job_details_hours`` ago."""
    read_at = (detail or {}).get("read_at")
    return not read_at or now - parse_ts(str(read_at)) >= timedelta(hours=hours)


def refusal_line(operation: str, error: SyncError) -> str:
    """The ``aws_sync_error`` line of a snapshot-job write Partner Central refused.

    Names the operation, the error code and the rule Partner Central gave, never a value (quoted values
    are removed by :func:`~cosell_sync.errors.without_values`).
    """
    code = error.code or type(error).__name__
    rule = without_values(error.message)
    # The hook words it "<operation> failed: <code>: <message>": the operation and code are said below.
    lead = f"{operation} failed: {code}: "
    rule = rule[len(lead) :] if rule.startswith(lead) else rule
    return f"{operation} refused ({code}): {rule}; the next run tries again"[:300]


def note_body(opportunity_id: str, engagement_id: str, revision: dict[str, Any]) -> str:
    """The deal note of one new snapshot revision."""
    return (
        "<p><strong>AWS Partner Central</strong></p>"
        f"<p>New resource snapshot of opportunity {escape(opportunity_id)} in engagement "
        f"{escape(engagement_id)}: template {escape(revision['template'])}, revision {revision['revision']}"
        f", created {escape(str(revision.get('created_at') or '-'))}"
        f" by {escape(str(revision.get('created_by') or '-'))}"
        "</p>"
    )


# -- state ---------------------------------------------------------------------------------------------
def _rows(frame: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    if frame is None or not len(frame):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for oid, raw in frame.to_dict(orient="index").items():
        row = {c: clean(raw.get(c)) for c in STATE_COLUMNS}
        row["revisions"] = json.loads(row["revisions"]) if row.get("revisions") else []
        row["props"] = json.loads(row["props"]) if row.get("props") else {}
        row["generation"] = int(row.get("generation") or 0)
        row["total"] = int(row.get("total") or 0)
        row["pending"] = str(row.get("pending") or "") == "true"
        row["job_detail"] = json.loads(row["job_detail"]) if row.get("job_detail") else {}
        out[str(oid)] = row
    return out


def _frame(state: dict[str, dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    rows = {
        o: {
            **{c: row.get(c) for c in STATE_COLUMNS},
            "revisions": json.dumps(row.get("revisions") or []),
            "props": json.dumps(row.get("props") or {}),
            "generation": str(row.get("generation") or 0),
            "total": str(row.get("total") or 0),
            "pending": "true" if row.get("pending") else "false",
            "job_detail": json.dumps(row.get("job_detail") or {}),
        }
        for o, row in state.items()
    }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=STATE_COLUMNS).astype(object)
    frame.index.name = "opportunity_id"
    return frame


def _new_row(deal_id: str, engagement_id: str | None) -> dict[str, Any]:
    return {
        "deal_id": deal_id,
        "engagement_id": engagement_id,
        "job_id": None,
        "job_status": None,
        "generation": 0,
        "closed_since": None,
        "revisions": [],
        "total": 0,
        "props": {},
        "pending": False,
        "error": None,
        "job_detail": {},
        "_first": True,
    }


def _engagements(env: SyncEnv, catalog: str) -> dict[str, tuple[str, str | None, str | None]]:
    """Linked opportunity -> (deal, engagement id, stage).

    The links and the stage come from the baseline (what the last commit synced), the engagement from
    ``sync_engagements``' state (which finds it with ``ListEngagementResourceAssociations``); its stage only
    where the baseline has none.
    """
    try:
        base = env.baseline.load(columns=["deal_id", "stage"])
    except (NotFoundError, KeyError, ValueError):
        try:
            base = env.baseline.load(columns=["deal_id"])
        except NotFoundError:
            return {}
    stages = base["stage"].to_dict() if "stage" in base.columns else {}
    frame, _ = StepState(env.snapshots, catalog, ENGAGEMENTS_STATE).load()
    found = frame.to_dict(orient="index") if frame is not None and len(frame) else {}
    out: dict[str, tuple[str, str | None, str | None]] = {}
    for oid, deal_id in base["deal_id"].items():
        if clean(deal_id) is None:
            continue
        row = found.get(oid) or {}
        stage = clean(stages.get(oid)) or clean(row.get("stage"))
        out[str(oid)] = (str(deal_id), clean(row.get("engagement_id")), stage)
    return out


def _read_this_run(env: SyncEnv, pc: dict[str, Any] | None) -> dict[str, str | None]:
    """Opportunities the extract read this run -> their ``LifeCycle.Stage``."""
    if not pc or not pc.get("key") or not pc.get("read"):
        return {}
    frame = env.snapshots.get_frame(pc["key"], columns=["_raw"])
    out: dict[str, str | None] = {}
    for oid, raw in zip(frame.index, frame["_raw"], strict=True):
        try:
            out[str(oid)] = (json.loads(raw).get("LifeCycle") or {}).get("Stage")
        except (TypeError, ValueError, AttributeError):
            out[str(oid)] = None
    return out


# -- API access ----------------------------------------------------------------------------------------
@dataclass
class SnapshotRun:
    """One run of the step: clients, counters and the audit context."""

    env: SyncEnv
    run: dict[str, Any]
    calls: Counter[str] = field(default_factory=Counter)
    audited: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    #: Opportunity -> its ``aws_sync_error`` line (:func:`refusal_line`) of a refused job write this run.
    refused: dict[str, str] = field(default_factory=dict)
    #: Deals whose HubSpot update failed in :func:`_write_deals` (their state is not advanced).
    unwritten: set[str] = field(default_factory=set)
    denied: SyncError | None = None
    #: ``GetResourceSnapshotJob`` answers of this run, by job id (adoption reads them: not read twice).
    job_reads: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def catalog(self) -> str:
        return str(self.run["catalog"])

    def read(self, operation: str, method: str, **params: Any) -> dict[str, Any]:
        self.calls[operation] += 1
        return self.env.partner_central.call(method, Catalog=self.catalog, **params)

    def pages(self, operation: str, method: str, member: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self.read(
                operation, method, MaxResults=PAGE, **params, **({"NextToken": token} if token else {})
            )
            items += page.get(member) or []
            token = page.get("NextToken")
            if not token:
                return items

    def write(
        self,
        action: SnapshotAction,
        oid: str,
        deal_id: str | None,
        eid: str,
        missing_ok: bool = False,
        **params: Any,
    ) -> dict[str, Any] | None:
        """One Partner Central write, audited at once; None when it failed (logged, audited, counted).

        Args:
            action: what is written (its operation and audit action).
            oid: the opportunity.
            deal_id: its deal.
            eid: the engagement.
            **params: the request (``Catalog`` is added).
            missing_ok: a ``ResourceNotFoundException`` means done (a delete whose job is already gone).
        """
        operation, method = _OPERATIONS[action]
        if self.denied is not None:
            # Refused for the caller's permission earlier in the run: not sent, audited once (the first).
            self.failed[oid] = f"{operation}: {self.denied.message}"
            self.refused[oid] = refusal_line(operation, self.denied)
            return None
        self.calls[operation] += 1
        error: SyncError | None = None
        out: dict[str, Any] | None = None
        try:
            out = self.env.partner_central.call(method, Catalog=self.catalog, **params)
        except NotFoundError as err:
            if not missing_ok:
                error = err
        except AuthError as err:
            self.denied = error = err  # every other write would get the same answer
        except SyncError as err:
            error = err
        if error is not None:
            self.failed[oid] = f"{operation}: {error.message}"
            self.refused[oid] = refusal_line(operation, error)
            log.error("Opportunity %s: %s failed: %s", oid, operation, error.message)
        self._audit(action, oid, deal_id, eid, params, out, error)
        return None if error is not None else (out or {})

    def _audit(
        self,
        action: SnapshotAction,
        oid: str,
        deal_id: str | None,
        eid: str,
        params: dict[str, Any],
        out: dict[str, Any] | None,
        error: SyncError | None,
    ) -> None:
        from cosell_sync.audit import AuditEntry, FieldChange

        job_id = params.get("ResourceSnapshotJobIdentifier") or (out or {}).get("Id")
        change = {
            SnapshotAction.CREATE_JOB: ("snapshot_job", None, job_id),
            SnapshotAction.START_JOB: ("snapshot_job.status", STOPPED, RUNNING),
            SnapshotAction.STOP_JOB: ("snapshot_job.status", RUNNING, STOPPED),
            SnapshotAction.DELETE_JOB: ("snapshot_job", job_id, None),
            SnapshotAction.CREATE_SNAPSHOT: ("resource_snapshot.revision", None, (out or {}).get("Revision")),
        }[action]
        stamp = self.run.get("run_timestamp") or parse_ts(self.run["started_at"])
        metadata = {
            "engagementId": eid,
            "template": params.get("ResourceSnapshotTemplateIdentifier"),
            "snapshotJobId": job_id,
        }
        entry = AuditEntry(
            opportunity_id=oid,
            deal_id=deal_id,
            run_id=self.run["run_id"].replace("#", "_"),
            run_timestamp=stamp,
            direction=Direction.TO_PARTNER_CENTRAL.value,
            action=action.value,
            source="HUBSPOT",
            user=f"airflow:{self.run.get('dag_id') or 'cosell_reconcile'}",
            changes={change[0]: FieldChange(old=change[1], new=change[2])},
            success=error is None,
            error=error.to_dict() if error is not None else None,
            api_calls=[_OPERATIONS[action][0]],
            metadata={k: v for k, v in metadata.items() if v is not None},
        )
        self.audited += self.env.audit.write([entry])


# -- jobs ----------------------------------------------------------------------------------------------
def _job_statuses(r: SnapshotRun) -> dict[str, dict[str, Any]]:
    """Every job of the catalog: id -> summary (``EngagementId``, ``Status``)."""
    jobs = r.pages("ListResourceSnapshotJobs", "list_resource_snapshot_jobs", "ResourceSnapshotJobSummaries")
    return {str(j["Id"]): j for j in jobs}


def _find_job(
    r: SnapshotRun, oid: str, eid: str, template: str, jobs: dict[str, dict[str, Any]], claimed: set[str]
) -> dict[str, Any] | None:
    """The engagement's existing job for this opportunity and template (summaries name no resource)."""
    for job_id, summary in sorted(jobs.items()):
        if summary.get("EngagementId") != eid or job_id in claimed:
            continue
        job = r.job_reads.get(job_id) or r.read(
            "GetResourceSnapshotJob", "get_resource_snapshot_job", ResourceSnapshotJobIdentifier=job_id
        )
        r.job_reads[job_id] = job
        if job.get("ResourceId") == oid and job.get("ResourceSnapshotTemplateName") == template:
            return job
    return None


def _converge(
    r: SnapshotRun,
    oid: str,
    row: dict[str, Any],
    want: str,
    jobs: dict[str, dict[str, Any]],
    claimed: set[str],
) -> bool:
    """Bring the opportunity's job to ``want`` (rules in the module doc); True when a write was sent."""
    cfg = r.env.config.snapshots
    eid = str(row["engagement_id"])
    deal_id = row.get("deal_id")
    acted = False
    job_id = row.get("job_id")
    if job_id and job_id not in jobs:
        # Deleted outside the sync: a replacement needs a new ClientToken.
        row.update(job_id=None, job_status=None, generation=int(row.get("generation") or 0) + 1)
        job_id = None
    if not job_id and (want == RUNNING or (want == STOPPED and row.get("_first"))):
        # Adopted when it exists (AWS starts one with the engagement), running or not; a closed
        # opportunity's is looked for once, at first sight (a Get per job of the engagement).
        found = _find_job(r, oid, eid, cfg.template, jobs, claimed)
        if found is not None:
            job_id = str(found["Id"])
            jobs[job_id] = {**jobs.get(job_id, {}), "Status": found.get("Status")}
        elif want == RUNNING:
            created = r.write(
                SnapshotAction.CREATE_JOB,
                oid,
                deal_id,
                eid,
                ClientToken=job_token(r.catalog, eid, oid, cfg.template, int(row.get("generation") or 0)),
                EngagementIdentifier=eid,
                ResourceType=RESOURCE_TYPE,
                ResourceIdentifier=oid,
                ResourceSnapshotTemplateIdentifier=cfg.template,
            )
            if created is None:
                return False
            acted = True
            job_id = str(created["Id"])
            # Created stopped (API reference); a retry re-reading it sees the same.
            jobs.setdefault(job_id, {"Id": job_id, "EngagementId": eid, "Status": STOPPED})
        row["job_id"] = job_id
    if not job_id:
        row["job_status"] = None
        return acted
    claimed.add(job_id)
    status = jobs[job_id].get("Status")
    steps: list[SnapshotAction] = []
    if want == RUNNING and status != RUNNING:
        steps = [SnapshotAction.START_JOB]
    elif want in (STOPPED, DELETED) and status == RUNNING:
        steps = [SnapshotAction.STOP_JOB]
    if want == DELETED:
        steps.append(SnapshotAction.DELETE_JOB)
    for action in steps:
        done = r.write(
            action,
            oid,
            deal_id,
            eid,
            missing_ok=action is SnapshotAction.DELETE_JOB,
            ResourceSnapshotJobIdentifier=job_id,
        )
        if done is None:
            row["job_status"] = status
            return acted
        acted = True
        r.job_reads.pop(job_id, None)  # read before the write: its details are no longer current
        status = {
            SnapshotAction.START_JOB: RUNNING,
            SnapshotAction.STOP_JOB: STOPPED,
            SnapshotAction.DELETE_JOB: None,
        }[action]
        jobs[job_id]["Status"] = status
    if want == DELETED:
        row.update(job_id=None, job_status=None, generation=int(row.get("generation") or 0) + 1)
    else:
        row["job_status"] = status
    return acted


def _read_job_details(
    r: SnapshotRun,
    state: dict[str, dict[str, Any]],
    wanted: set[str],
    due: list[str],
    budget: list[int],
    now: datetime,
) -> set[str]:
    """``GetResourceSnapshotJob`` for the jobs whose deal must show their status, last success and failure.

    Args:
        r: the run.
        state: the rows (each row's ``job_detail`` is set).
        wanted: opportunities whose job the run handled or saw change: read whatever the budget says.
        due: opportunities whose details are only old (``snapshots.job_details_hours``), oldest first:
            read while ``budget`` (``snapshots.reads_per_run``, shared with ``GetResourceSnapshot``) lasts.
        budget: the reads left this run.
        now: the run's time.

    Returns:
        The opportunities whose ``job_detail`` was refreshed.
    """
    done: set[str] = set()
    for oid in [*sorted(wanted), *due]:
        row = state[oid]
        job_id = row.get("job_id")
        if not job_id or oid in done:
            continue
        if oid not in wanted:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        job = r.job_reads.get(str(job_id))
        if job is None:
            try:
                job = r.read(
                    "GetResourceSnapshotJob",
                    "get_resource_snapshot_job",
                    ResourceSnapshotJobIdentifier=job_id,
                )
            except NotFoundError:
                continue  # deleted outside the sync: the next full refresh replaces it
            except AuthError as err:
                log.warning("Snapshot jobs are not readable with this account (%s): skipped.", err.message)
                break
            except SyncError as err:
                log.warning("Snapshot job %s of opportunity %s not read (%s)", job_id, oid, err.code)
                continue
        before = row.get("job_detail") or {}
        row["job_detail"] = job_detail(job, now)
        failure = row["job_detail"]["last_failure"]
        if failure and failure != before.get("last_failure"):
            # AWS's failure text may quote record values: it goes to the deal, never to the log.
            log.warning(
                "Snapshot job %s of opportunity %s reports a new failure (shown in the deal's %s)",
                job_id,
                oid,
                JOB_LAST_FAILURE,
            )
        done.add(oid)
    return done


def _job_details(
    r: SnapshotRun,
    state: dict[str, dict[str, Any]],
    engaged: dict[str, tuple[str, str | None, str | None]],
    known_status: dict[str, Any],
    acted: set[str],
    read_now: dict[str, str | None],
    new: dict[str, list[dict[str, Any]]],
    budget: list[int],
    now: datetime,
    restricted: bool,
) -> set[str]:
    """Refresh the job details the deals show; returns the opportunities whose job properties may change.

    Reads (rules in :func:`sync_snapshots`' step 3b) go through :func:`_read_job_details`. A job the run
    deleted shows ``Deleted`` without a read; a deal whose last write of the job properties failed is
    sent its values again (no read).
    """
    cfg = r.env.config.snapshots
    linked = {o for o, row in state.items() if o in engaged and row.get("job_id")}
    handled = {
        o
        for o in linked
        if o in acted
        or o in r.refused
        or state[o].get("job_status") != known_status.get(o)
        or o in read_now
        or new.get(o)
    }
    due = sorted(
        (
            o
            for o in linked - handled
            if not restricted and details_due(state[o].get("job_detail"), now, cfg.job_details_hours)
        ),
        key=lambda o: str((state[o].get("job_detail") or {}).get("read_at") or ""),
    )
    out = _read_job_details(r, state, handled, due, budget, now)
    for oid in acted:
        row = state[oid]
        detail = row.get("job_detail") or {}
        if oid in engaged and not row.get("job_id") and detail.get("status") != DELETED:
            row["job_detail"] = {**detail, "status": DELETED, "read_at": utc_iso(now)}
            out.add(oid)
    for oid, row in state.items():
        shown = {k: str(row["props"].get(k) or "") for k in JOB_PROPERTIES}
        if oid in engaged and row.get("job_detail") and job_properties(row["job_detail"]) != shown:
            out.add(oid)
    return out


# -- snapshots -----------------------------------------------------------------------------------------
def _read_snapshots(
    r: SnapshotRun, eid: str, oids: list[str], state: dict[str, dict[str, Any]], budget: list[int]
) -> dict[str, list[dict[str, Any]]]:
    """Read one engagement's snapshots into the rows of ``oids``; returns each one's new revisions."""
    summaries = r.pages(
        "ListResourceSnapshots",
        "list_resource_snapshots",
        "ResourceSnapshotSummaries",
        EngagementIdentifier=eid,
    )
    new: dict[str, list[dict[str, Any]]] = {}
    for oid in oids:
        row = state[oid]
        row["total"] = len(summaries)
        known = {(x["template"], int(x["revision"])) for x in row["revisions"]}
        fresh = sorted(
            (
                s
                for s in summaries
                if s.get("ResourceId") == oid
                and (s.get("ResourceSnapshotTemplateName"), int(s.get("Revision") or 0)) not in known
            ),
            key=lambda s: (str(s.get("ResourceSnapshotTemplateName")), int(s.get("Revision") or 0)),
        )
        row["pending"] = False
        added: list[dict[str, Any]] = []
        for s in fresh:
            if budget[0] <= 0:
                row["pending"] = True  # the rest wait for the next run
                break
            budget[0] -= 1
            got = r.read(
                "GetResourceSnapshot",
                "get_resource_snapshot",
                EngagementIdentifier=eid,
                ResourceType=RESOURCE_TYPE,
                ResourceIdentifier=oid,
                ResourceSnapshotTemplateIdentifier=s["ResourceSnapshotTemplateName"],
                Revision=int(s["Revision"]),
            )
            created = got.get("CreatedAt")
            added.append(
                {
                    "arn": str(got.get("Arn") or s.get("Arn")),
                    "template": str(s["ResourceSnapshotTemplateName"]),
                    "revision": int(s["Revision"]),
                    "created_at": utc_iso(created) if isinstance(created, datetime) else clean(created),
                    "created_by": clean(got.get("CreatedBy") or s.get("CreatedBy")),
                }
            )
        row["revisions"] = row["revisions"] + added
        new[oid] = added
    return new


def _write_deals(
    r: SnapshotRun,
    gw: HubSpotGateway,
    state: dict[str, dict[str, Any]],
    new: dict[str, list[dict[str, Any]]],
    extra: dict[str, dict[str, str]] | None = None,
    jobs: set[str] | None = None,
) -> tuple[int, int, int]:
    """Deal properties that changed and one note per new revision; returns (written, failed, notes).

    ``extra``: more properties per deal (``aws_sync_error``), sent in the same batch update; ``jobs``:
    opportunities whose job details were read (their job properties are sent where they changed).
    """
    from cosell_sync.writers.hubspot import Checkpoints, HubSpotWriter

    cfg = r.env.config.snapshots
    updates: dict[str, dict[str, str]] = {}
    wanted: dict[str, dict[str, str]] = {}
    for oid, row in state.items():
        if (oid not in new and oid not in (jobs or ())) or not row.get("deal_id"):
            continue
        props: dict[str, str] = {}
        if oid in new:
            props = deal_properties(row["revisions"], int(row.get("total") or 0), cfg.listed_revisions)
        if oid in (jobs or ()):
            props.update(job_properties(row.get("job_detail") or {}))
        wanted[oid] = props
        changed = {k: v for k, v in props.items() if (row["props"].get(k) or "") != v}
        if changed:
            updates[str(row["deal_id"])] = changed
    for deal_id, props in (extra or {}).items():
        updates.setdefault(deal_id, {}).update(props)
    writer = HubSpotWriter(r.env.config, gw)
    outcome = writer.update_objects({DEAL.plural: updates}, {(DEAL.plural, d): d for d in updates})
    r.unwritten |= set(outcome.failed)
    for deal_id, error in outcome.failed.items():
        log.error("Snapshot properties not written to deal %s: %s", deal_id, error.get("message"))
    for oid, props in wanted.items():
        if str(state[oid]["deal_id"]) not in outcome.failed:
            state[oid]["props"] = {**state[oid]["props"], **props}

    # One note per new revision: round k holds each deal's k-th new revision (write_notes: one per deal).
    notes = 0
    rounds: list[dict[str, str]] = []
    for oid, added in sorted(new.items()):
        row = state[oid]
        if row.get("_first") or not added or not row.get("deal_id"):
            continue
        for k, rev in enumerate(added):
            if len(rounds) <= k:
                rounds.append({})
            rounds[k][str(row["deal_id"])] = note_body(oid, str(row["engagement_id"]), rev)
    catalog = r.catalog
    for bodies in rounds:
        # Checkpointed by content, not by run: a retry or a later run seeing these revisions writes nothing.
        digest = hashlib.sha256(json.dumps(bodies, sort_keys=True).encode()).hexdigest()[:20]
        checkpoints = Checkpoints(r.env.snapshots, {"notes": f"state/{catalog}/snapshot-notes/{digest}.json"})
        notes += HubSpotWriter(r.env.config, gw, checkpoints).write_notes(bodies, ref=f"snapshots-{digest}")
    return len(outcome.updated), len(outcome.failed), notes


def _error_changes(
    r: SnapshotRun, state: dict[str, dict[str, Any]], tried: set[str], settled: set[str]
) -> dict[str, str | None]:
    """Opportunity -> this step's ``aws_sync_error`` line now (None: none), where it may have to change.

    ``tried``: opportunities whose job was brought in step this run (a refusal sets the line, success
    clears it); ``settled``: ones with nothing left to do (a line left by an earlier refusal goes). A
    refused line is re-checked every run, as other steps do: another step may have rewritten the text.
    """
    out: dict[str, str | None] = {}
    for oid in sorted(tried | {o for o in settled if state[o].get("error")}):
        row = state[oid]
        line = r.refused.get(oid) if oid in tried else None
        if row.get("deal_id") and (line or (row.get("error") or None) != line):
            out[oid] = line
    return out


def _error_updates(
    gw: HubSpotGateway, state: dict[str, dict[str, Any]], lines: dict[str, str | None]
) -> dict[str, dict[str, str]]:
    """The deals whose ``aws_sync_error`` must change: this step's lines replaced, others' kept.

    One batch read (100 deals a call) of the current text; a deal whose text is already right is left out.
    """
    by_deal: dict[str, list[str]] = {}
    for oid, line in lines.items():
        by_deal.setdefault(str(state[oid]["deal_id"]), []).extend([line] if line else [])
    if not by_deal:
        return {}
    current, _ = gw.batch_read(DEAL.plural, sorted(by_deal), [SYNC_ERROR_PROPERTY])
    text = {str(o["id"]): (o.get("properties") or {}).get(SYNC_ERROR_PROPERTY) or "" for o in current}
    out: dict[str, dict[str, str]] = {}
    for deal_id, deal_lines in by_deal.items():
        if deal_id not in text:
            continue  # the deal is gone: nothing to show the error on
        merged = merge_step_error(text[deal_id], ERROR_PREFIX, deal_lines)
        if merged != text[deal_id]:
            out[deal_id] = {SYNC_ERROR_PROPERTY: merged}
    return out


# -- the reconcile step --------------------------------------------------------------------------------
def sync_snapshots(
    env: SyncEnv,
    run: dict[str, Any],
    pc: dict[str, Any] | None = None,
    hs: dict[str, Any] | None = None,
    engagement_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Keep each linked opportunity's snapshot job in step with the deal and its revisions on the deal.

    Args:
        env: clients and stores.
        run: the run description (``run_id``, ``catalog``, ``started_at``, ``dry_run``, ``direction``,
            ``mode``, ``opportunity_ids``).
        pc: the Partner Central extract's result (which opportunities were read: their snapshots are read).
        hs: the HubSpot extract's result (unused today: a deal edit makes no snapshot; kept so the step
            has the same inputs as its siblings).
        engagement_ids: engagements an event named ("Engagement Resource Snapshot Created"): read too.

    Returns:
        Counts, ``key`` of the stored result and ``api_calls``; or ``skipped``.
    """
    from cosell_sync.hubspot_api import HubSpotGateway

    del hs
    cfg = env.config.snapshots
    if not cfg.enabled:
        return {"skipped": "snapshots.enabled is false"}
    if run.get("dry_run"):
        return {"skipped": "dry run"}
    catalog = run["catalog"]
    send = run.get("direction") != Direction.TO_HUBSPOT.value
    show = run.get("direction") != Direction.TO_PARTNER_CENTRAL.value
    r = SnapshotRun(env, run)
    gw = HubSpotGateway(env.hubspot)
    step_state = StepState(env.snapshots, catalog, STATE_NAME)
    previous, meta = step_state.load()
    initial = previous is None
    state = _rows(previous)
    now = datetime.now(UTC)
    last_full = parse_ts(meta["last_full_refresh"]) if meta.get("last_full_refresh") else None
    # A run restricted to some records (opportunity_ids, an event run) never does the periodic full refresh:
    # it would cost the whole book's reads in a run meant for a few records.
    restricted = bool(run.get("opportunity_ids")) or bool(run.get("events"))
    full = not restricted and (
        initial
        or run.get("mode") == "full"
        or last_full is None
        or now - last_full >= timedelta(hours=cfg.full_refresh_hours)
    )
    engaged = _engagements(env, catalog)
    read_now = _read_this_run(env, pc)
    wanted_ids = set(run.get("opportunity_ids") or [])
    named = set(engagement_ids or ())

    # 1. What each job should be; rows for new links with an engagement.
    plan: dict[str, str] = {}
    for oid, (deal_id, eid, stage) in engaged.items():
        if wanted_ids and oid not in wanted_ids:
            continue
        stage = read_now.get(oid) or stage
        row = state.get(oid)
        if row is None:
            if not eid:
                continue
            row = state[oid] = _new_row(deal_id, eid)
        row["deal_id"] = deal_id
        if stage in CLOSED_STAGES:
            row["closed_since"] = row.get("closed_since") or utc_iso(now)
        else:
            row["closed_since"] = None
        if row.get("engagement_id") != eid and row.get("job_id"):
            plan[oid] = DELETED  # it left the engagement: the old job goes, the next run makes the new one
        else:
            if eid and row.get("engagement_id") != eid:
                # A new engagement: its snapshots are another history (counted from scratch, no notes).
                row.update(engagement_id=eid, revisions=[], total=0, _first=True)
            plan[oid] = wanted_status(bool(eid), stage, row["closed_since"], now, cfg.delete_after_days)
    for oid in state:
        if oid not in engaged and (not wanted_ids or oid in wanted_ids):
            plan[oid] = DELETED  # unlinked: the engagement is over for this deal
    # 2. Jobs: only where the status we know differs from the wanted one, or at a full refresh.
    todo = {
        o: w
        for o, w in plan.items()
        if (w == DELETED and state[o].get("job_id"))
        or (w == RUNNING and state[o].get("job_status") != RUNNING)
        or (w == STOPPED and (state[o].get("job_status") == RUNNING or state[o].get("_first")))
    }
    acted: set[str] = set()
    tried: set[str] = set()
    known_status = {o: row.get("job_status") for o, row in state.items()}
    if send and (todo or (full and any(state[o].get("job_id") or plan[o] == RUNNING for o in plan))):
        try:
            jobs = _job_statuses(r)
        except AuthError as err:
            log.warning(
                "Snapshot jobs are not readable with this account (%s): jobs left as they are.", err.message
            )
            jobs = None
        if jobs is not None:
            claimed = {str(row["job_id"]) for row in state.values() if row.get("job_id")}
            # A full refresh checks every job against the deal (a job stopped or deleted outside the sync).
            for oid in sorted(plan if full else todo):
                if plan[oid] == DELETED and not state[oid].get("job_id"):
                    continue
                tried.add(oid)
                if _converge(r, oid, state[oid], plan[oid], jobs, claimed):
                    acted.add(oid)
    # 3. Snapshots: engagements of opportunities read or acted on, new rows, named engagements, all at a full
    # refresh; a row with revisions left unread by the budget too.
    by_engagement: dict[str, list[str]] = {}
    for oid, row in state.items() if show else ():
        eid = row.get("engagement_id")
        if not eid or oid not in engaged:
            continue
        if full or oid in read_now or oid in acted or row.get("_first") or row.get("pending") or eid in named:
            by_engagement.setdefault(str(eid), []).append(oid)
    budget = [cfg.reads_per_run]
    new: dict[str, list[dict[str, Any]]] = {}
    for eid, oids in sorted(by_engagement.items()):
        try:
            new.update(_read_snapshots(r, eid, sorted(oids), state, budget))
        except NotFoundError:
            log.warning("Engagement %s not found: its snapshots are not read", eid)
        except AuthError as err:
            log.warning("Resource snapshots are not readable with this account (%s): skipped.", err.message)
            break
    # 3b. The job's monitoring on the deal (status, last success, last failure), from GetResourceSnapshotJob:
    # for jobs the run wrote, refused or saw change status, and of opportunities that changed (a running
    # job executes when its opportunity changes); any other job once per job_details_hours, within the
    # read budget, never in a restricted run. An unchanged book costs no job read between those.
    details: set[str] = set()
    if show:
        details = _job_details(r, state, engaged, known_status, acted, read_now, new, budget, now, restricted)
    # The deals' aws_sync_error: a refused job write names itself there; it goes once the write goes through
    # (or is no longer needed). Sent with the snapshot properties, one batch update a run.
    error_lines = _error_changes(r, state, tried, {o for o in plan if o not in todo})
    error_updates = _error_updates(gw, state, error_lines)
    written = failed_deals = notes = 0
    if (show and new) or error_updates or details:
        written, failed_deals, notes = _write_deals(r, gw, state, new if show else {}, error_updates, details)
    for oid, line in error_lines.items():
        if str(state[oid]["deal_id"]) not in r.unwritten:
            state[oid]["error"] = line

    # 4. State: unlinked rows whose job is gone leave it.
    for oid in [o for o, row in state.items() if o not in engaged and not row.get("job_id")]:
        del state[oid]
    for row in state.values():
        row.pop("_first", None)
    step_state.save_frame(_frame(state))
    if full:
        meta["last_full_refresh"] = now.isoformat()
    meta["last_run_id"] = run["run_id"]
    step_state.save_meta(meta)
    r.calls.update(gw.calls)
    result = {
        "linked": len(plan),
        "jobs_acted": len(acted),
        "engagements_read": len(by_engagement),
        "new_revisions": sum(len(v) for v in new.values()),
        "deals_written": written,
        "deals_failed": failed_deals,
        "notes": notes,
        "job_details_read": r.calls["GetResourceSnapshotJob"],
        "jobs_failing": sum(
            1
            for o, row in state.items()
            if o in engaged and (row.get("job_detail") or {}).get("last_failure")
        ),
        "failed": len(r.failed),
        "audited": r.audited,
        "full": full,
    }
    key = run_key(catalog, run["run_id"], "snapshots.json")
    env.snapshots.put_json({**result, "failed_opportunities": r.failed, "api_calls": dict(r.calls)}, key)
    log.info("Resource snapshots: %s", result)
    return {**result, "key": key, "api_calls": dict(r.calls)}


# -- cosell_snapshot -----------------------------------------------------------------------------------
def check_params(deal_id: str, opportunity_id: str) -> None:
    """The ``cosell_snapshot`` params, checked before any call.

    Raises:
        ParamError: not exactly one of ``deal_id`` / ``opportunity_id``, or an opportunity id the model's
            pattern refuses.
    """
    import re

    given = [n for n, v in (("deal_id", deal_id), ("opportunity_id", opportunity_id)) if v]
    if len(given) != 1:
        raise ParamError(
            "give exactly one of deal_id or opportunity_id (got "
            f"{', '.join(given) if given else 'none'}); no snapshot was made"
        )
    if opportunity_id and not re.fullmatch(r"O[0-9]{1,19}", opportunity_id):
        raise ParamError("opportunity_id: must be O followed by 1-19 digits; no snapshot was made")


def locate(
    env: SyncEnv, r: SnapshotRun, gw: HubSpotGateway, deal_id: str, opportunity_id: str, outcome: str
) -> tuple[str, str, str]:
    """(deal, opportunity, engagement) of a manual run's params (one of ``deal_id`` / ``opportunity_id``).

    The deal by id or by the unique link property; the engagement from ``sync_engagements``' state, else
    ``ListEngagementResourceAssociations``.

    Args:
        env: clients and stores.
        r: the run (counts the call).
        gw: the HubSpot gateway.
        deal_id: the deal param.
        opportunity_id: the opportunity param.
        outcome: what the failing run did not do ("no snapshot was made"), ending each error message.

    Raises:
        NotFoundError: no such deal or opportunity, they are not linked, or the opportunity has no engagement.
    """
    cfg = env.config
    if deal_id:
        found, _ = gw.batch_read(DEAL.plural, [deal_id], [cfg.link_property])
    else:
        found, _ = gw.batch_read(
            DEAL.plural, [opportunity_id], [cfg.link_property], id_property=cfg.link_property
        )
    if not found:
        what = f"deal {deal_id}" if deal_id else f"opportunity {opportunity_id}"
        raise NotFoundError(f"{what}: no HubSpot deal linked to it; {outcome}")
    deal_id = str(found[0]["id"])
    oid = clean((found[0].get("properties") or {}).get(cfg.link_property))
    if not oid:
        raise NotFoundError(f"deal {deal_id} is not linked to an opportunity; {outcome}")
    eid = (_engagements(env, r.catalog).get(oid) or (None, None, None))[1]
    if not eid:
        assoc = r.read(
            "ListEngagementResourceAssociations",
            "list_engagement_resource_associations",
            ResourceType=RESOURCE_TYPE,
            ResourceIdentifier=oid,
        )
        eids = [a.get("EngagementId") for a in assoc.get("EngagementResourceAssociationSummaries") or []]
        eid = next((str(e) for e in eids if e), None)
    if not eid:
        raise NotFoundError(f"opportunity {oid} has no engagement (submit it to AWS first); {outcome}")
    return deal_id, str(oid), str(eid)


def snapshot_manually(
    env: SyncEnv, run: dict[str, Any], deal_id: str, opportunity_id: str, dry_run: bool
) -> dict[str, Any]:
    """``cosell_snapshot``: one ``CreateResourceSnapshot`` of a linked opportunity in its engagement.

    Finds the linked deal (by id, or by the unique link property) and the engagement
    (``sync_engagements``' state, else ``ListEngagementResourceAssociations``), shows the latest revision;
    unless a dry run, creates the snapshot (ClientToken from the run: a retry makes no second one), audits
    it, and shows the new revision on the deal with its note, as ``sync_snapshots`` does.

    Raises:
        ParamError: bad params (nothing read).
        NotFoundError: no such deal or opportunity, they are not linked, or the opportunity has no engagement.
        ValidationError: Partner Central refuses the snapshot.
    """
    from cosell_sync.hubspot_api import HubSpotGateway

    check_params(deal_id, opportunity_id)
    cfg = env.config
    catalog = run["catalog"]
    gw = HubSpotGateway(env.hubspot)
    r = SnapshotRun(env, run)
    deal_id, oid, eid = locate(env, r, gw, deal_id, opportunity_id, "no snapshot was made")
    template = cfg.snapshots.template
    step_state = StepState(env.snapshots, catalog, STATE_NAME)
    previous, meta = step_state.load()
    state = _rows(previous)
    row = state.get(oid) or _new_row(deal_id, eid)
    latest = max((x["revision"] for x in row["revisions"] if x["template"] == template), default=None)
    log.info(
        "Opportunity %s (deal %s) in engagement %s, template %s: latest revision known %s%s",
        oid,
        deal_id,
        eid,
        template,
        latest if latest is not None else "(none)",
        "; DRY RUN, nothing written" if dry_run else "",
    )
    result: dict[str, Any] = {
        "opportunity_id": oid,
        "deal_id": deal_id,
        "engagement_id": eid,
        "template": template,
        "dry_run": dry_run,
        "revision": None,
        "notes": 0,
    }
    if dry_run:
        r.calls.update(gw.calls)
        return {**result, "api_calls": dict(r.calls)}
    made = r.write(
        SnapshotAction.CREATE_SNAPSHOT,
        oid,
        deal_id,
        eid,
        ClientToken=snapshot_token(catalog, oid, run["run_id"]),
        EngagementIdentifier=eid,
        ResourceType=RESOURCE_TYPE,
        ResourceIdentifier=oid,
        ResourceSnapshotTemplateIdentifier=template,
    )
    if made is None:
        from cosell_sync.errors import ValidationError

        raise ValidationError(f"opportunity {oid}: {r.failed.get(oid)}")
    # Shown on the deal as sync_snapshots shows it: the row is no longer "first seen", so the revision
    # gets its note; the state keeps it, so the next scheduled run does not note it again.
    first = bool(row.pop("_first", False))
    row.update(deal_id=deal_id, engagement_id=eid)
    state[oid] = row
    new = _read_snapshots(r, eid, [oid], state, [cfg.snapshots.reads_per_run])
    if first:
        # History the sync had not recorded yet is shown without notes, as a first sight is: only the
        # revision made here gets one.
        new[oid] = [x for x in new[oid] if (x["template"], x["revision"]) == (template, made.get("Revision"))]
    _, _, notes = _write_deals(r, gw, state, new)
    step_state.save_frame(_frame(state))
    step_state.save_meta(meta)
    r.calls.update(gw.calls)
    return {**result, "revision": made.get("Revision"), "notes": notes, "api_calls": dict(r.calls)}


__all__ = [
    "DEAL_PROPERTIES",
    "JOB_PROPERTIES",
    "SnapshotAction",
    "check_params",
    "deal_properties",
    "details_due",
    "job_detail",
    "job_properties",
    "job_token",
    "locate",
    "note_body",
    "partner_resources",
    "snapshot_manually",
    "snapshot_token",
    "sync_snapshots",
    "wanted_status",
]
