"""Resource snapshots and resource snapshot jobs (a running job re-snapshots its opportunity on change).

Rules, from the API reference (botocore model documentation of each operation):

* ``CreateResourceSnapshotJob`` makes a job for one opportunity, engagement and template; it is created
  ``Stopped`` and ``StartResourceSnapshotJob`` runs it ("Starts a resource snapshot job that has been
  previously created"). A second job for the same resource, engagement and template is a
  ``ConflictException`` (the operation's documented error for a conflicting state).
* A running job "creates a new snapshot only if the resource state has changed": starting a job, and each
  change of its opportunity, takes a revision only when the template's view differs from the latest one.
  Starting a job that is already running changes nothing (the operation is idempotent in the model).
* ``StopResourceSnapshotJob``: "The job must be started prior to being stopped": stopping a stopped job is
  a ``ValidationException`` (its documented errors have no ``ConflictException``).
* ``DeleteResourceSnapshotJob``: "The job must be in a stopped state before it can be deleted": deleting a
  running job is a ``ConflictException``.
* ``CreateResourceSnapshot`` always takes a new immutable revision (no "only if changed" rule there).
* ``ListResourceSnapshotJobs`` returns 50 per page unless ``MaxResults`` says otherwise.

``GetResourceSnapshotJob`` answers ``LastSuccessfulExecutionDate`` (set at each execution: a start and each
change of a running job's opportunity) and ``LastFailure`` ("the error message from the most recent
failure"). AWS documents no cause of a failure, so the emulator fails a job only on the test control
``POST /_emulator/simulate/snapshot-job-failure``; assumption: a failure leaves the job's ``Status`` as it
was, and a later success does not clear ``LastFailure`` (it is the *most recent* failure).

Every new revision emits "Engagement Resource Snapshot Created" (the developer guide's event for it). AWS
documents no event for a job being created, started, stopped or deleted, so none is emitted for those.
"""

from __future__ import annotations

import copy
from typing import Any

from emulators.partner_central import shapes
from emulators.partner_central.exceptions import (
    ConflictException,
    ResourceNotFoundException,
    business_error,
)
from emulators.partner_central.models.base import paginate
from emulators.partner_central.models.engagements import EngagementsMixin
from emulators.partner_central.models.opportunities import OpportunitiesMixin


class SnapshotsMixin(OpportunitiesMixin, EngagementsMixin):
    """The resource snapshot and snapshot job operations."""

    def on_opportunity_changed(self, opp: dict[str, Any]) -> None:
        """Every running snapshot job of the opportunity takes a new snapshot."""
        super().on_opportunity_changed(opp)
        for job in self.store(opp["Catalog"])["snapshot_jobs"].values():
            if job["Status"] == "Running" and job["ResourceId"] == opp["Id"]:
                self.run_job(opp["Catalog"], job)

    def run_job(self, catalog: str, job: dict[str, Any]) -> None:
        """One execution of a running job: a new revision only if the resource's view changed (API doc)."""
        eid, oid, template = job["EngagementId"], job["ResourceId"], job["ResourceSnapshotTemplateName"]
        revisions = self.store(catalog)["snapshots"].get(f"{eid}|{oid}|{template}") or []
        if not revisions or revisions[-1]["Payload"] != self._payload(catalog, oid):
            self.take_snapshot(catalog, eid, oid, template)
        job["LastSuccessfulExecutionDate"] = self.peek_now()

    def _payload(self, catalog: str, oid: str) -> dict[str, Any]:
        """The opportunity's view as a snapshot holds it (``OpportunitySummaryView``).

        Assumption from the developer guide's "Event scenarios": associating a solution yields "Opportunity
        Updated, Engagement Resource Snapshot Created" but associating an AWS Marketplace offer only
        "Opportunity Updated", with snapshots taken only for "field updates ... on the template". So the
        template leaves Marketplace offers and offer sets out, and an offer change makes no new revision.
        """
        view = copy.deepcopy(self.opportunity(catalog, oid))
        view["Lifecycle"] = view.get("LifeCycle")
        related = view.get("RelatedEntityIdentifiers") or {}
        view["RelatedEntityIdentifiers"] = {
            k: v for k, v in related.items() if k not in ("AwsMarketplaceOffers", "AwsMarketplaceOfferSets")
        }
        return {"OpportunitySummary": shapes.project(shapes.shape("OpportunitySummaryView"), view)}

    def take_snapshot(self, catalog: str, eid: str, oid: str, template: str) -> dict[str, Any]:
        """A new snapshot revision of the opportunity in the engagement, with its event."""
        key = f"{eid}|{oid}|{template}"
        payload = self._payload(catalog, oid)
        revisions = self.store(catalog)["snapshots"].setdefault(key, [])
        rev = len(revisions) + 1
        snap = {
            "Catalog": catalog,
            "EngagementId": eid,
            "ResourceType": "Opportunity",
            "ResourceId": oid,
            "ResourceSnapshotTemplateName": template,
            "Revision": rev,
            "CreatedBy": self.account_id,
            "CreatedAt": self.now(),
            "Arn": self.make_arn(
                catalog,
                "engagement",
                f"{eid}/resource/Opportunity/{oid}/template/{template}/resource-snapshot/{rev}",
            ),
            "Payload": payload,
        }
        revisions.append(snap)
        self.emit(
            "Engagement Resource Snapshot Created",
            {
                "catalog": catalog,
                "resourceSnapshot": {
                    "arn": snap["Arn"],
                    "engagementId": eid,
                    "resourceType": "Opportunity",
                    "resourceId": oid,
                    "createdBy": self.account_id,
                    "revision": rev,
                    "resourceSnapshotTemplateName": template,
                },
            },
            [snap["Arn"]],
        )
        return snap

    def _check_associated(self, catalog: str, eid: str, oid: str) -> dict[str, Any]:
        eng = self.engagement(catalog, eid)
        self.opportunity(catalog, oid)
        if not any(r["ResourceId"] == oid for r in eng["Resources"]):
            raise business_error(
                "ResourceIdentifier",
                f"Opportunity {oid} is not associated with engagement {eid}",
                "INVALID_VALUE",
            )
        return eng

    def create_resource_snapshot(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateResourceSnapshot: a new revision of the opportunity's view in the engagement."""

        def action() -> dict[str, Any]:
            with self.lock:
                c, e, o = params["Catalog"], params["EngagementIdentifier"], params["ResourceIdentifier"]
                self._check_associated(c, e, o)
                snap = self.take_snapshot(c, e, o, params["ResourceSnapshotTemplateIdentifier"])
                return {"Arn": snap["Arn"], "Revision": snap["Revision"]}

        return self.idempotent(params["Catalog"], "CreateResourceSnapshot", params, action)

    def get_resource_snapshot(self, params: dict[str, Any]) -> dict[str, Any]:
        """GetResourceSnapshot: the given revision, or the latest."""
        with self.lock:
            key = (
                f"{params['EngagementIdentifier']}|{params['ResourceIdentifier']}|"
                f"{params['ResourceSnapshotTemplateIdentifier']}"
            )
            revisions = self.store(params["Catalog"])["snapshots"].get(key) or []
            rev = params.get("Revision") or len(revisions)
            if not revisions or rev > len(revisions):
                raise ResourceNotFoundException(f"No resource snapshot revision {rev} for {key}")
            snap = revisions[rev - 1]
            return {**snap, "ResourceSnapshotTemplateName": snap["ResourceSnapshotTemplateName"]}

    def list_resource_snapshots(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListResourceSnapshots of one engagement."""
        with self.lock:
            catalog = params["Catalog"]
            self.engagement(catalog, params["EngagementIdentifier"])
            items = []
            for revisions in self.store(catalog)["snapshots"].values():
                for snap in revisions:
                    if snap["EngagementId"] != params["EngagementIdentifier"]:
                        continue
                    if (
                        params.get("ResourceIdentifier")
                        and snap["ResourceId"] != params["ResourceIdentifier"]
                    ):
                        continue
                    if (
                        params.get("ResourceSnapshotTemplateIdentifier")
                        and snap["ResourceSnapshotTemplateName"]
                        != params["ResourceSnapshotTemplateIdentifier"]
                    ):
                        continue
                    if params.get("CreatedBy") and snap["CreatedBy"] != params["CreatedBy"]:
                        continue
                    items.append(snap)
            page, nxt = paginate(items, params, 100)
            return {"ResourceSnapshotSummaries": page, "NextToken": nxt}

    def job(self, catalog: str, identifier: str) -> dict[str, Any]:
        """Resource snapshot job or ``ResourceNotFoundException``."""
        job = self.store(catalog)["snapshot_jobs"].get(identifier)
        if job is None:
            raise ResourceNotFoundException(
                f"Resource snapshot job {identifier} not found in catalog {catalog}"
            )
        return job

    def new_job(
        self,
        catalog: str,
        eid: str,
        oid: str,
        template: str,
        tags: list[dict[str, str]] | None,
        status: str = "Stopped",
    ) -> dict[str, Any]:
        """A new resource snapshot job (Stopped unless told otherwise)."""
        jid = f"job-{self.rand_id(13)}"
        opp = self.opportunity(catalog, oid)
        job = {
            "Catalog": catalog,
            "Id": jid,
            "Arn": self.make_arn(catalog, "resource-snapshot-job", jid),
            "EngagementId": eid,
            "ResourceType": "Opportunity",
            "ResourceId": oid,
            "ResourceArn": opp["Arn"],
            "ResourceSnapshotTemplateName": template,
            "CreatedAt": self.now(),
            "Status": status,
        }
        self.store(catalog)["snapshot_jobs"][jid] = job
        if tags:
            self.tags[job["Arn"]] = {t["Key"]: t["Value"] for t in tags}
        return job

    def create_resource_snapshot_job(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateResourceSnapshotJob (created Stopped; StartResourceSnapshotJob runs it)."""

        def action() -> dict[str, Any]:
            with self.lock:
                c, e, o = params["Catalog"], params["EngagementIdentifier"], params["ResourceIdentifier"]
                self._check_associated(c, e, o)
                template = params["ResourceSnapshotTemplateIdentifier"]
                if any(
                    j["EngagementId"] == e
                    and j["ResourceId"] == o
                    and j["ResourceSnapshotTemplateName"] == template
                    for j in self.store(c)["snapshot_jobs"].values()
                ):
                    raise ConflictException(
                        f"A snapshot job for {o} in {e} with template {template} already exists"
                    )
                job = self.new_job(c, e, o, template, params.get("Tags"))
                return {"Id": job["Id"], "Arn": job["Arn"]}

        return self.idempotent(params["Catalog"], "CreateResourceSnapshotJob", params, action)

    def set_job_status(self, catalog: str, identifier: str, status: str) -> None:
        """Start/StopResourceSnapshotJob (rules in the module doc).

        Starting runs the job at once (a revision if the view changed since the latest); starting a running
        job is a no-op; stopping a job that is not running is a ``ValidationException``.
        """
        with self.lock:
            job = self.job(catalog, identifier)
            if status == "Stopped" and job["Status"] != "Running":
                raise business_error(
                    "ResourceSnapshotJobIdentifier",
                    f"Resource snapshot job {identifier} is not running; it must be started before it can "
                    "be stopped",
                    "INVALID_RESOURCE_STATE",
                )
            if status == "Running" and job["Status"] == "Running":
                return
            job["Status"] = status
            if status == "Running":
                self.run_job(catalog, job)

    def fail_job(self, catalog: str, identifier: str, message: str) -> dict[str, Any]:
        """Test control: the job's execution failed now with ``message`` (no revision taken)."""
        with self.lock:
            job = self.job(catalog, identifier)
            job["LastFailure"] = message
            return {"Id": job["Id"], "Status": job["Status"], "LastFailure": message}

    def delete_job(self, catalog: str, identifier: str) -> None:
        """DeleteResourceSnapshotJob: only a stopped job can be deleted (API reference)."""
        with self.lock:
            job = self.job(catalog, identifier)
            if job["Status"] == "Running":
                raise ConflictException(
                    f"Resource snapshot job {identifier} is Running; stop it before deleting"
                )
            del self.store(catalog)["snapshot_jobs"][identifier]
            self.tags.pop(job["Arn"], None)

    def list_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListResourceSnapshotJobs."""
        with self.lock:
            items = [
                j
                for j in self.store(params["Catalog"])["snapshot_jobs"].values()
                if (
                    not params.get("EngagementIdentifier")
                    or j["EngagementId"] == params["EngagementIdentifier"]
                )
                and (not params.get("Status") or j["Status"] == params["Status"])
            ]
            order = (params.get("Sort") or {}).get("SortOrder", "DESCENDING")
            items.sort(key=lambda j: (j["CreatedAt"], j["Id"]), reverse=order == "DESCENDING")
            # "If omitted, defaults to 50" (ListResourceSnapshotJobsRequest.MaxResults).
            page, nxt = paginate(items, params, 50)
            return {"ResourceSnapshotJobSummaries": page, "NextToken": nxt}
