"""Wait for Partner Central's asynchronous work without holding a worker slot.

:class:`PartnerCentralJobsSensor` checks once; while any job is unfinished it defers to
:class:`PartnerCentralJobTrigger`, which polls in the triggerer (one read per job per poll, well within
the 10 reads/s quota) and resumes the task when every job has finished. The kinds of work it knows are
listed in :data:`KINDS`: opportunity bulk jobs, the accept-invitation task and the submission task
(``StartEngagementFromOpportunityTask``). Resource snapshots need no wait: ``CreateResourceSnapshot``
answers with the new revision, and a snapshot job has no final state to wait for (``Running`` and
``Stopped`` are both steady; ``ListResourceSnapshotJobs`` cannot filter by job id either).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobKind:
    """How to read the status of one kind of asynchronous Partner Central work."""

    operation: str
    id_param: str
    summaries: str
    id_member: str
    finished: frozenset[str]
    status_member: str = "Status"
    #: The List operation takes a list of ids (one per job here).
    id_as_list: bool = False


#: Kinds of asynchronous work: the List operation that filters by the job id, and its final states.
KINDS: dict[str, JobKind] = {
    "opportunity_bulk_job": JobKind(
        operation="list_opportunity_bulk_jobs",
        id_param="JobId",
        summaries="OpportunityBulkJobSummaries",
        id_member="JobId",
        finished=frozenset({"COMPLETED", "FAILED"}),
    ),
    "accept_invitation_task": JobKind(
        operation="list_engagement_by_accepting_invitation_tasks",
        id_param="TaskIdentifier",
        summaries="TaskSummaries",
        id_member="TaskId",
        finished=frozenset({"COMPLETE", "FAILED"}),
        status_member="TaskStatus",
        id_as_list=True,
    ),
    # StartEngagementFromOpportunityTask (the submission: engagement, snapshot job, invitation, submit).
    "engagement_from_opportunity_task": JobKind(
        operation="list_engagement_from_opportunity_tasks",
        id_param="TaskIdentifier",
        summaries="TaskSummaries",
        id_member="TaskId",
        finished=frozenset({"COMPLETE", "FAILED"}),
        status_member="TaskStatus",
        id_as_list=True,
    ),
}


def poll_jobs(kind: str, job_ids: Sequence[str], catalog: str, conn_id: str) -> dict[str, dict[str, Any]]:
    """The current summary of each job (one read each), through the Partner Central hook.

    Args:
        kind: a key of :data:`KINDS`.
        job_ids: the jobs.
        catalog: the catalog they run in.
        conn_id: the Partner Central connection.

    Returns:
        job id -> its summary (``Status`` and the counts).
    """
    from cosell_hooks.partner_central import PartnerCentralHook

    spec = KINDS[kind]
    hook = PartnerCentralHook(conn_id, catalog=catalog)
    out: dict[str, dict[str, Any]] = {}
    for job_id in job_ids:
        page = hook.call(spec.operation, **{spec.id_param: [job_id] if spec.id_as_list else job_id})
        for summary in page.get(spec.summaries) or []:
            if summary.get(spec.id_member) == job_id:
                out[job_id] = {k: str(v) if not isinstance(v, int | str) else v for k, v in summary.items()}
    return out


def _unfinished(kind: str, job_ids: Sequence[str], statuses: dict[str, dict[str, Any]]) -> list[str]:
    spec = KINDS[kind]
    return [j for j in job_ids if (statuses.get(j) or {}).get(spec.status_member) not in spec.finished]


def next_poll(
    poll_seconds: float, before: tuple[float, int] | None, now: tuple[float, int], left: int
) -> float:
    """Seconds to the next poll: the estimated time to finish at the rate seen, within bounds.

    Args:
        poll_seconds: the shortest wait.
        before: (time, records processed) at the previous poll, if any.
        now: (time, records processed) now.
        left: records not processed yet.
    """
    if before is None or left <= 0:
        return poll_seconds
    elapsed, done = now[0] - before[0], now[1] - before[1]
    if elapsed <= 0 or done <= 0:
        return poll_seconds
    eta = left / (done / elapsed)
    return min(max(poll_seconds, eta), 20 * poll_seconds)


class PartnerCentralJobTrigger(BaseTrigger):
    """Poll Partner Central until every job has finished, then fire once with their summaries.

    Args:
        kind: a key of :data:`KINDS`.
        job_ids: the jobs to wait for.
        catalog: their catalog.
        conn_id: the Partner Central connection.
        poll_seconds: seconds between two polls.
    """

    def __init__(
        self, kind: str, job_ids: list[str], catalog: str, conn_id: str, poll_seconds: float = 30.0
    ) -> None:
        super().__init__()
        self.kind = kind
        self.job_ids = list(job_ids)
        self.catalog = catalog
        self.conn_id = conn_id
        self.poll_seconds = poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and kwargs, as the triggerer stores them."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "kind": self.kind,
                "job_ids": self.job_ids,
                "catalog": self.catalog,
                "conn_id": self.conn_id,
                "poll_seconds": self.poll_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll (in a thread: the hook is synchronous) until done; a failure fires an error event.

        Between polls it waits ``poll_seconds``, or longer when the jobs report their progress: the
        time the records left need at the rate seen so far (at most 20 polls' worth), so a long job costs
        a few reads, not one every ``poll_seconds``.
        """
        seen: tuple[float, int] | None = None
        while True:
            try:
                statuses = await asyncio.to_thread(
                    poll_jobs, self.kind, self.job_ids, self.catalog, self.conn_id
                )
            except Exception as err:  # the task decides: it fails with the message, and retries
                yield TriggerEvent({"status": "error", "message": f"polling {self.kind} failed: {err}"})
                return
            waiting = _unfinished(self.kind, self.job_ids, statuses)
            if not waiting:
                yield TriggerEvent({"status": "done", "jobs": statuses})
                return
            self.log.info("Waiting for %s %s", self.kind, ", ".join(waiting))
            now = asyncio.get_running_loop().time()
            processed = sum(int(statuses.get(j, {}).get("ProcessedRecords") or 0) for j in waiting)
            left = sum(int(statuses.get(j, {}).get("TotalRecords") or 0) for j in waiting) - processed
            await asyncio.sleep(next_poll(self.poll_seconds, seen, (now, processed), left))
            seen = (now, processed)


class PartnerCentralJobsSensor(BaseOperator):
    """Wait for Partner Central jobs; deferred (no worker slot held) while any is unfinished.

    Args:
        job_ids: the jobs (templated; an empty list ends the task at once).
        catalog: their catalog (templated).
        kind: a key of :data:`KINDS`.
        conn_id: the Partner Central connection.
        poll_seconds: seconds between polls (None: the sync config's ``bulk.poll_seconds``).
    """

    template_fields: Sequence[str] = ("job_ids", "catalog")

    def __init__(
        self,
        *,
        job_ids: Any,
        catalog: Any,
        kind: str = "opportunity_bulk_job",
        conn_id: str = "partner_central_default",
        poll_seconds: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_ids = job_ids
        self.catalog = catalog
        self.kind = kind
        self.conn_id = conn_id
        self.poll_seconds = poll_seconds

    def execute(self, context: Any) -> dict[str, Any]:
        """Check once; defer to the trigger while any job is unfinished."""
        job_ids = [str(j) for j in self.job_ids or []]
        if not job_ids:
            self.log.info("No Partner Central job to wait for.")
            return {}
        statuses = poll_jobs(self.kind, job_ids, str(self.catalog), self.conn_id)
        if not _unfinished(self.kind, job_ids, statuses):
            return statuses
        poll = self.poll_seconds
        if poll is None:
            from cosell_sync.config import load_config

            poll = load_config().bulk.poll_seconds
        self.defer(
            trigger=PartnerCentralJobTrigger(self.kind, job_ids, str(self.catalog), self.conn_id, poll),
            method_name="execute_complete",
        )
        return {}  # not reached: defer raises

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: fail with its message, or return the job summaries."""
        if event.get("status") != "done":
            from airflow.exceptions import AirflowException

            raise AirflowException(event.get("message") or "waiting for Partner Central jobs failed")
        for job_id, summary in (event.get("jobs") or {}).items():
            self.log.info(
                "%s %s: %s (%s of %s records processed, %s failed)",
                self.kind,
                job_id,
                summary.get(KINDS[self.kind].status_member),
                summary.get("ProcessedRecords"),
                summary.get("TotalRecords"),
                summary.get("FailureCount"),
            )
        return dict(event.get("jobs") or {})
