"""Opportunity and customer account bulk jobs: file access, life cycle, per-record rules, results, reports.

Files live in moto S3 (the session ``moto_server`` fixture of tests/conftest.py); the emulator reads ``s3://``
URIs from the endpoint set with ``POST /_emulator/config {"s3_endpoint_url": ...}`` and fetches ``https://``
presigned URLs itself. Progress is driven with the emulator clock (``POST /_emulator/clock``), not by
sleeping.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from pc_helpers import associate_solution, opportunity_payload, update_from

from cosell_sync import bulk_csv
from emulators.partner_central.models import PartnerCentralBackend

SLOW = 0.01  # records per second: one record per 100 emulator seconds, so wall time never adds a record


@dataclass
class S3:
    """A moto S3 client and a fresh bucket the emulator can read from."""

    client: Any
    bucket: str
    endpoint: str

    def put(self, key: str, data: bytes) -> str:
        """Upload ``data`` and return its ``s3://`` URI."""
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"

    def presigned(self, key: str, data: bytes) -> str:
        """Upload ``data`` and return a presigned GET URL, https:// as the API requires.

        moto serves plain HTTP; the emulator fetches https:// URLs of loopback hosts over HTTP.
        """
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        url = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=3600
        )
        assert url.startswith("http://")
        return "https://" + url[len("http://") :]


def _s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def s3(moto_server: str, ctl: Callable[..., Any]) -> S3:
    """A bucket in moto, and the emulator told to read ``s3://`` URIs from moto."""
    client = _s3_client(moto_server)
    bucket = f"bulk-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    ctl("config", {"s3_endpoint_url": moto_server})
    return S3(client, bucket, moto_server)


def record(**overrides: Any) -> dict[str, Any]:
    """A full CreateOpportunity request as a bulk record (no Catalog, no ClientToken)."""
    body = opportunity_payload(**overrides)
    body.pop("Catalog")
    body.pop("ClientToken")
    return body


def opp_file(rows: list[tuple[str, dict[str, Any]]], *, update: bool = False) -> bytes:
    """An opportunity bulk file in our template."""
    return bulk_csv.write_csv(bulk_csv.OPPORTUNITY, rows, update=update)


def start(pc: Any, uri: str, token: str | None = None, catalog: str = "AWS") -> str:
    """StartOpportunityBulkJob; returns the JobId."""
    out = pc.start_opportunity_bulk_job(
        Catalog=catalog, ClientToken=token or uuid.uuid4().hex, FileURI=uri, FileFormat="CSV"
    )
    return out["JobId"]


def job(pc: Any, job_id: str, catalog: str = "AWS") -> dict[str, Any]:
    """The job's summary from ListOpportunityBulkJobs."""
    (summary,) = pc.list_opportunity_bulk_jobs(Catalog=catalog, JobId=job_id)["OpportunityBulkJobSummaries"]
    return summary


def finish(ctl: Callable[..., Any]) -> None:
    """Let every job read its file and process all records (fast rate, clock an hour ahead)."""
    ctl("config", {"bulk_records_per_second": 1000})
    ctl("clock", {"advance_seconds": 3600})


def results(pc: Any, job_id: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every result of an opportunity bulk job, following NextToken."""
    out: list[dict[str, Any]] = []
    token = None
    while True:
        page = pc.list_opportunity_bulk_job_results(
            Catalog="AWS", JobId=job_id, **kwargs, **({"NextToken": token} if token else {})
        )
        out.extend(page["Results"])
        token = page.get("NextToken")
        if not token:
            return out


def error_code(err: pytest.ExceptionInfo[ClientError]) -> str:
    """The error code of a ClientError."""
    return str(err.value.response["Error"]["Code"])


# ------------------------------------------------------------------------------------------- life cycle
def test_s3_job_runs_through_its_life_cycle_at_the_configured_rate(pc, ctl, s3):
    """SUBMITTED -> IN_PROGRESS (file read) -> COMPLETED, counts moving with the emulator clock."""
    ctl("config", {"task_delay_ms": 60_000, "bulk_records_per_second": 0})
    rows = [(f"hs-{i}", record(PartnerOpportunityIdentifier=f"HS-{i}")) for i in range(3)]
    rows.append(("hs-bad", record(OpportunityType="Not A Type")))
    job_id = start(pc, s3.put("in/opportunities.csv", opp_file(rows)))
    assert job_id.startswith("bulkjob-")
    assert len(job_id) == len("bulkjob-") + 13

    submitted = job(pc, job_id)
    assert submitted["Status"] == "SUBMITTED"
    assert submitted["TotalRecords"] == submitted["ProcessedRecords"] == 0
    # "Partner Central doesn't set this field until it reads the file."
    assert "OperationType" not in submitted
    assert "FileName" not in submitted
    assert "StartedAt" not in submitted

    ctl("clock", {"advance_seconds": 60})
    running = job(pc, job_id)
    assert running["Status"] == "IN_PROGRESS"
    assert running["OperationType"] == "BULK_CREATE"
    assert running["FileName"] == "opportunities.csv"
    assert running["TotalRecords"] == 4
    assert running["ProcessedRecords"] == 0
    assert running["StartedAt"] >= running["CreatedAt"]
    assert "CompletedAt" not in running

    ctl("config", {"bulk_records_per_second": SLOW})
    ctl("clock", {"advance_seconds": 250})  # 2.5 records' worth
    partial = job(pc, job_id)
    assert partial["Status"] == "IN_PROGRESS"
    assert partial["ProcessedRecords"] == 2
    assert partial["SuccessCount"] == 2
    assert partial["FailureCount"] == 0
    assert [r["RequestId"] for r in results(pc, job_id)] == ["hs-0", "hs-1"]

    ctl("clock", {"advance_seconds": 200})
    done = job(pc, job_id)
    assert done["Status"] == "COMPLETED"  # completed although a record failed
    assert (done["ProcessedRecords"], done["SuccessCount"], done["FailureCount"]) == (4, 3, 1)
    assert done["CompletedAt"] >= done["StartedAt"]
    assert "FailureReason" not in done

    outcome = {r["RequestId"]: r for r in results(pc, job_id)}
    assert outcome["hs-bad"]["Status"] == "FAILED"
    assert outcome["hs-bad"]["ErrorCode"] == "ValidationException"
    assert "OpportunityType" in outcome["hs-bad"]["ErrorMessage"]
    assert "ResourceIdentifier" not in outcome["hs-bad"]
    for i in range(3):
        oid = outcome[f"hs-{i}"]["ResourceIdentifier"]
        opp = pc.get_opportunity(Catalog="AWS", Identifier=oid)
        assert opp["PartnerOpportunityIdentifier"] == f"HS-{i}"
        assert opp["LifeCycle"]["ReviewStatus"] == "Pending Submission"
        assert opp["Customer"]["Account"]["Address"]["City"] == "Seattle"
    listed = pc.list_opportunities(Catalog="AWS")["OpportunitySummaries"]
    assert len(listed) == 3  # each record created exactly once, however often the job was advanced


def test_https_presigned_url_job(pc, ctl, s3):
    """An https:// presigned S3 URL is fetched by the emulator; FileName comes from the URL path."""
    uri = s3.presigned("exports/batch-7.csv", opp_file([("a", record()), ("b", record())]))
    job_id = start(pc, uri)
    finish(ctl)
    done = job(pc, job_id)
    assert done["Status"] == "COMPLETED"
    assert done["FileName"] == "batch-7.csv"
    assert done["SuccessCount"] == 2
    assert all(r["Status"] == "SUCCEEDED" for r in results(pc, job_id))


def test_jobs_are_listed_newest_first_with_filters_and_pages(pc, ctl, s3):
    """ListOpportunityBulkJobs: newest first, JobId and Status filters, paging; unknown JobId is not found."""
    ctl("config", {"task_delay_ms": 60_000})
    uri = s3.put("in/one.csv", opp_file([("a", record())]))
    first = start(pc, uri)
    ctl("clock", {"advance_seconds": 1})
    second = start(pc, uri)
    ids = [j["JobId"] for j in pc.list_opportunity_bulk_jobs(Catalog="AWS")["OpportunityBulkJobSummaries"]]
    assert ids == [second, first]
    page = pc.list_opportunity_bulk_jobs(Catalog="AWS", MaxResults=1)
    assert [j["JobId"] for j in page["OpportunityBulkJobSummaries"]] == [second]
    rest = pc.list_opportunity_bulk_jobs(Catalog="AWS", MaxResults=1, NextToken=page["NextToken"])
    assert [j["JobId"] for j in rest["OpportunityBulkJobSummaries"]] == [first]
    assert "NextToken" not in rest
    assert (
        pc.list_opportunity_bulk_jobs(Catalog="AWS", Status="COMPLETED")["OpportunityBulkJobSummaries"] == []
    )
    finish(ctl)
    completed = pc.list_opportunity_bulk_jobs(Catalog="AWS", Status="COMPLETED")[
        "OpportunityBulkJobSummaries"
    ]
    assert {j["JobId"] for j in completed} == {first, second}
    # Catalogs are separate.
    assert pc.list_opportunity_bulk_jobs(Catalog="Sandbox")["OpportunityBulkJobSummaries"] == []
    with pytest.raises(ClientError) as err:
        pc.list_opportunity_bulk_jobs(Catalog="AWS", JobId="bulkjob-0000000000000")
    assert error_code(err) == "ResourceNotFoundException"


# ------------------------------------------------------------------------------------------- idempotency
def test_client_token_returns_the_same_job_and_conflicts_on_other_parameters(pc, ctl, s3):
    """Same token and parameters -> the original JobId; the token with another file -> ConflictException."""
    uri = s3.put("in/a.csv", opp_file([("a", record())]))
    other = s3.put("in/b.csv", opp_file([("b", record())]))
    job_id = start(pc, uri, token="tok-1")
    assert start(pc, uri, token="tok-1") == job_id
    with pytest.raises(ClientError) as err:
        start(pc, other, token="tok-1")
    assert error_code(err) == "ConflictException"
    finish(ctl)
    assert start(pc, uri, token="tok-1") == job_id  # also once the job has finished
    assert len(pc.list_opportunity_bulk_jobs(Catalog="AWS")["OpportunityBulkJobSummaries"]) == 1
    assert len(pc.list_opportunities(Catalog="AWS")["OpportunitySummaries"]) == 1


# ------------------------------------------------------------------------------------------ bad files
def test_unreadable_or_malformed_files_fail_the_job_with_a_reason(pc, ctl, s3, monkeypatch):
    """Missing object, non-text, unknown column, duplicate RequestId, oversize: job FAILED, no records."""
    good = opp_file([("a", record())])
    dup = good + good.split(b"\r\n", 1)[1]  # the record twice
    cases = {
        f"s3://{s3.bucket}/missing.csv": "NoSuchKey",
        s3.put("bin.csv", b"\xff\xfe\x00\x01binary"): "not UTF-8 text",
        s3.put("cols.csv", b"RequestId,Project.Colour\r\nr1,secret-value\r\n"): "Project.Colour",
        s3.put("dup.csv", dup): "RequestId",
        s3.put("empty.csv", b"RequestId,Project.Title\r\n"): "no records",
        f"s3://{s3.bucket}/none.csv?versionId=nope": "could not be read",
    }
    ids = {start(pc, uri): reason for uri, reason in cases.items()}
    finish(ctl)
    for job_id, reason in ids.items():
        failed = job(pc, job_id)
        assert failed["Status"] == "FAILED", job_id
        assert reason in failed["FailureReason"]
        assert "secret-value" not in failed["FailureReason"]  # reasons never echo cell values
        assert failed["ProcessedRecords"] == 0
        assert "CompletedAt" in failed
        assert results(pc, job_id) == []
    # Over 100 MB (the limit shrunk so the test need not upload 100 MB).
    monkeypatch.setattr(bulk_csv, "MAX_FILE_BYTES", 64)
    big = start(pc, s3.put("big.csv", good))
    finish(ctl)
    assert "larger than 100 MB" in job(pc, big)["FailureReason"]


def test_s3_uri_with_other_query_parameters_is_rejected_at_start(pc, s3):
    """ "You can add only the versionId query parameter": anything else is a ValidationException."""
    with pytest.raises(ClientError) as err:
        start(pc, f"s3://{s3.bucket}/in.csv?acl=1")
    assert error_code(err) == "ValidationException"
    assert err.value.response["ErrorList"][0]["FieldName"] == "FileURI"


def test_without_an_s3_endpoint_an_s3_job_fails(pc, ctl):
    """The emulator never reaches real AWS: no configured endpoint, no file."""
    ctl("config", {"s3_endpoint_url": None})
    job_id = start(pc, "s3://bucket-x/in.csv")
    finish(ctl)
    assert "no S3 endpoint" in job(pc, job_id)["FailureReason"]


# --------------------------------------------------------------------------------------------- records
def test_update_job_applies_update_opportunity_rules_per_record(pc, ctl, s3):
    """A draft updates (whole-record replace); one in review and a stale LastModifiedDate fail alone."""
    draft = pc.create_opportunity(**opportunity_payload())["Id"]
    in_review = pc.create_opportunity(**opportunity_payload())["Id"]
    stale = pc.create_opportunity(**opportunity_payload())["Id"]
    associate_solution(pc, in_review)
    pc.submit_opportunity(Catalog="AWS", Identifier=in_review, InvolvementType="Co-Sell")
    assert pc.get_opportunity(Catalog="AWS", Identifier=in_review)["LifeCycle"]["ReviewStatus"] == "Submitted"

    def update_row(oid: str, title: str) -> dict[str, Any]:
        current = pc.get_opportunity(Catalog="AWS", Identifier=oid)
        body = record()
        body["Project"]["Title"] = title
        body["LifeCycle"].pop("NextSteps")  # absent in an update = null (full replace)
        return {**body, "Identifier": oid, "LastModifiedDate": current["LastModifiedDate"]}

    rows = [("u-draft", update_row(draft, "Renamed")), ("u-review", update_row(in_review, "Nope"))]
    rows.append(("u-stale", update_row(stale, "Too late")))
    # Someone else changes it after the file was written: the row's LastModifiedDate is now stale.
    current = pc.get_opportunity(Catalog="AWS", Identifier=stale)
    pc.update_opportunity(**update_from(current, OpportunityType="Expansion"))
    job_id = start(pc, s3.put("in/updates.csv", opp_file(rows, update=True)))
    finish(ctl)
    done = job(pc, job_id)
    assert done["OperationType"] == "BULK_UPDATE"
    assert (done["SuccessCount"], done["FailureCount"]) == (1, 2)
    outcome = {r["RequestId"]: r for r in results(pc, job_id)}
    assert outcome["u-draft"] == {"RequestId": "u-draft", "Status": "SUCCEEDED", "ResourceIdentifier": draft}
    updated = pc.get_opportunity(Catalog="AWS", Identifier=draft)
    assert updated["Project"]["Title"] == "Renamed"
    assert "NextSteps" not in updated["LifeCycle"]
    review = outcome["u-review"]
    assert review["Status"] == "FAILED"
    assert review["ErrorCode"] == "ValidationException"
    assert "ReviewStatus" in review["ErrorMessage"]
    assert "ResourceIdentifier" not in review
    assert pc.get_opportunity(Catalog="AWS", Identifier=in_review)["Project"]["Title"] != "Nope"
    assert outcome["u-stale"]["ErrorCode"] == "ConflictException"


def test_a_record_that_fails_after_its_create_names_the_created_opportunity(pc, ctl, s3):
    """ "A failed record includes this value when Partner Central created the resource before the failure"."""
    ctl("config", {"bulk_fail_after_create": ["r2"]})
    job_id = start(pc, s3.put("in/x.csv", opp_file([("r1", record()), ("r2", record())])))
    finish(ctl)
    outcome = {r["RequestId"]: r for r in results(pc, job_id)}
    assert outcome["r2"]["Status"] == "FAILED"
    created = outcome["r2"]["ResourceIdentifier"]
    assert pc.get_opportunity(Catalog="AWS", Identifier=created)["Id"] == created
    assert outcome["r1"]["Status"] == "SUCCEEDED"


def test_results_filter_and_pages(pc, ctl, s3):
    """ListOpportunityBulkJobResults: file order, Status filter, MaxResults pages, MaxResults <= 1000."""
    rows = [(f"r{i}", record(OpportunityType="Bad") if i % 2 else record()) for i in range(5)]
    job_id = start(pc, s3.put("in/p.csv", opp_file(rows)))
    finish(ctl)
    first = pc.list_opportunity_bulk_job_results(Catalog="AWS", JobId=job_id, MaxResults=2)
    assert [r["RequestId"] for r in first["Results"]] == ["r0", "r1"]
    assert [r["RequestId"] for r in results(pc, job_id, MaxResults=2)] == [f"r{i}" for i in range(5)]
    assert [r["RequestId"] for r in results(pc, job_id, Status="FAILED")] == ["r1", "r3"]
    assert [r["RequestId"] for r in results(pc, job_id, Status="SUCCEEDED")] == ["r0", "r2", "r4"]
    with pytest.raises(ClientError) as err:
        pc.list_opportunity_bulk_job_results(Catalog="AWS", JobId=job_id, MaxResults=1001)
    assert error_code(err) == "ValidationException"
    with pytest.raises(ClientError) as err:
        pc.list_opportunity_bulk_job_results(Catalog="AWS", JobId="bulkjob-0000000000000")
    assert error_code(err) == "ResourceNotFoundException"


# --------------------------------------------------------------------------------------------- reports
def test_report_url_serves_the_failed_records_and_expires(pc, ctl, s3):
    """NOT_STARTED while running; then a 15-minute URL to the failed records in the template + outcome."""
    ctl("config", {"task_delay_ms": 60_000})
    bad = record(OpportunityType="Bad")
    job_id = start(pc, s3.put("in/r.csv", opp_file([("ok", record()), ("bad", bad)])))
    report = pc.get_opportunity_bulk_job_report_url(Catalog="AWS", JobId=job_id, ReportFormat="CSV")
    assert report["ReportStatus"] == "NOT_STARTED"
    assert "Url" not in report
    assert report["ReportType"] == "FAILED_RECORDS"
    assert report["ReportFormat"] == "CSV"
    with pytest.raises(ClientError) as err:
        pc.get_opportunity_bulk_job_report_url(
            Catalog="AWS", JobId=job_id, ReportFormat="CSV", ReportType="ALL_RECORDS"
        )
    assert error_code(err) == "ValidationException"

    finish(ctl)
    report = pc.get_opportunity_bulk_job_report_url(Catalog="AWS", JobId=job_id, ReportFormat="CSV")
    assert report["ReportStatus"] == "AVAILABLE"
    assert (report["ExpiresAt"] - job(pc, job_id)["CompletedAt"]).total_seconds() >= 15 * 60
    response = requests.get(report["Url"], timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    operation, entries = bulk_csv.read_report(bulk_csv.OPPORTUNITY, response.content)
    assert operation == "BULK_CREATE"
    (entry,) = entries
    assert entry.row.request_id == "bad"
    assert entry.status == "FAILED"
    assert entry.row.request == bad  # the record as submitted, ready to fix and resubmit
    assert entry.error_code == "ValidationException"
    assert "OpportunityType" in (entry.error_message or "")

    ctl("clock", {"advance_seconds": 15 * 60 + 1})
    assert requests.get(report["Url"], timeout=10).status_code == 403
    again = pc.get_opportunity_bulk_job_report_url(Catalog="AWS", JobId=job_id, ReportFormat="CSV")
    assert requests.get(again["Url"], timeout=10).status_code == 200
    ctl("clock", {"advance_seconds": 8 * 24 * 3600})
    expired = pc.get_opportunity_bulk_job_report_url(Catalog="AWS", JobId=job_id, ReportFormat="CSV")
    assert expired["ReportStatus"] == "EXPIRED"
    assert "Url" not in expired


def test_report_generation_delay_reports_in_progress(pc, ctl, s3):
    """With a report delay the first request answers IN_PROGRESS ("call the operation again later")."""
    ctl("config", {"bulk_report_delay_ms": 5000})
    job_id = start(pc, s3.put("in/d.csv", opp_file([("a", record())])))
    finish(ctl)
    first = pc.get_opportunity_bulk_job_report_url(Catalog="AWS", JobId=job_id, ReportFormat="CSV")
    assert first["ReportStatus"] == "IN_PROGRESS"
    assert "Url" not in first
    ctl("clock", {"advance_seconds": 6})
    ready = pc.get_opportunity_bulk_job_report_url(Catalog="AWS", JobId=job_id, ReportFormat="CSV")
    assert ready["ReportStatus"] == "AVAILABLE"
    _, entries = bulk_csv.read_report(bulk_csv.OPPORTUNITY, requests.get(ready["Url"], timeout=10).content)
    assert entries == []  # nothing failed


# ------------------------------------------------------------------------------------- switches, quota
def test_disabled_bulk_jobs_are_access_denied_until_reset(pc, ctl, s3):
    """bulk_jobs_enabled=false: AccessDeniedException, Reason OPPORTUNITY_BULK_JOB_NOT_ENABLED."""
    uri = s3.put("in/a.csv", opp_file([("a", record())]))
    ctl("config", {"bulk_jobs_enabled": False})
    with pytest.raises(ClientError) as err:
        start(pc, uri)
    assert error_code(err) == "AccessDeniedException"
    assert err.value.response["Reason"] == "OPPORTUNITY_BULK_JOB_NOT_ENABLED"
    with pytest.raises(ClientError) as err:
        pc.start_customer_account_bulk_job(Catalog="AWS", ClientToken="t", FileUri=uri)
    assert error_code(err) == "AccessDeniedException"
    assert "Reason" not in err.value.response  # the model has no reason value for this case
    ctl("reset")
    ctl("config", {"s3_endpoint_url": s3.endpoint})
    assert job(pc, start(pc, uri))["Status"] in ("SUBMITTED", "IN_PROGRESS", "COMPLETED")


def test_active_job_quota(pc, ctl, s3):
    """More active jobs than bulk_max_active_jobs: ServiceQuotaExceededException."""
    ctl("config", {"task_delay_ms": 60_000, "bulk_max_active_jobs": 1})
    uri = s3.put("in/a.csv", opp_file([("a", record())]))
    start(pc, uri)
    with pytest.raises(ClientError) as err:
        start(pc, uri)
    assert error_code(err) == "ServiceQuotaExceededException"
    finish(ctl)
    start(pc, uri)  # the first one finished


def test_jobs_survive_dump_and_load(pc, ctl, s3, emu):
    """Bulk jobs are part of the persisted state (``--state FILE``)."""
    ctl("config", {"task_delay_ms": 60_000, "bulk_records_per_second": SLOW})
    job_id = start(pc, s3.put("in/a.csv", opp_file([("a", record()), ("b", record())])))
    ctl("clock", {"advance_seconds": 60 + 150})
    state = json.loads(json.dumps(emu.backend.dump()))
    restored = PartnerCentralBackend()
    restored.load(state)
    restored.bulk_records_per_second = 1000
    restored.clock_offset_ms = emu.backend.clock_offset_ms + 3_600_000
    restored.run_due_tasks()
    (summary,) = restored.list_opportunity_bulk_jobs({"Catalog": "AWS", "JobId": job_id})[
        "OpportunityBulkJobSummaries"
    ]
    assert summary["Status"] == "COMPLETED"
    assert summary["SuccessCount"] == 2
    assert len(restored.store("AWS")["opportunities"]) == 2  # the record done before the dump is not redone


# ----------------------------------------------------------------------------------- customer accounts
def account(name: str, domain: str) -> dict[str, Any]:
    """A CreateCustomerAccount request as a bulk record."""
    return {
        "Account": {
            "CompanyName": name,
            "WebsiteUrl": f"https://www.{domain}",
            "Domain": domain,
            "Industry": "Software and Internet",
            "Address": {"City": "Austin", "CountryCode": "US", "PostalCode": "78701"},
        },
        "PartnerAccountIdentifier": f"crm-{name.lower().replace(' ', '-')}",
        "Tags": [{"Key": "source", "Value": "bulk"}],
    }


def test_customer_account_job(pc, ctl, s3):
    """Create accounts in bulk; Get/List/Results; ConflictException for the report while running."""
    ctl("config", {"task_delay_ms": 60_000, "bulk_records_per_second": 0})
    bad = account("Broken", "broken.example")
    bad["Account"]["Duns"] = "12"  # DUNS is nine digits
    rows = [
        ("c1", account("Alpha Corp", "alpha.example")),
        ("c2", account("Beta Ltd", "beta.example")),
        ("c3", bad),
    ]
    uri = s3.put("in/accounts.csv", bulk_csv.write_csv(bulk_csv.CUSTOMER_ACCOUNT, rows))
    started = pc.start_customer_account_bulk_job(Catalog="AWS", ClientToken="acc-1", FileUri=uri)
    assert started["Status"] == "SUBMITTED"
    assert started["Arn"].endswith(f"/customer-account-bulk-job/{started['Id']}")
    again = pc.start_customer_account_bulk_job(Catalog="AWS", ClientToken="acc-1", FileUri=uri)
    assert again["Id"] == started["Id"]
    got = pc.get_customer_account_bulk_job(Catalog="AWS", Identifier=started["Arn"])
    assert got["Status"] == "SUBMITTED"
    assert got["TotalRecords"] == 0
    assert "FileName" not in got
    with pytest.raises(ClientError) as err:
        pc.get_customer_account_bulk_job_report_url(Catalog="AWS", Identifier=started["Id"])
    assert error_code(err) == "ConflictException"  # "For a job that is still running"

    finish(ctl)
    done = pc.get_customer_account_bulk_job(Catalog="AWS", Identifier=started["Id"])
    assert done["Status"] == "COMPLETED"
    assert done["FileName"] == "accounts.csv"
    assert (done["TotalRecords"], done["SuccessCount"], done["FailureCount"], done["DeletedCount"]) == (
        3,
        2,
        1,
        0,
    )
    listed = pc.list_customer_account_bulk_jobs(Catalog="AWS", Filter={"Status": "COMPLETED"})["items"]
    assert [j["Id"] for j in listed] == [started["Id"]]
    assert pc.list_customer_account_bulk_jobs(Catalog="AWS", Filter={"Status": "FAILED"})["items"] == []
    outcome = {
        r["RequestId"]: r
        for r in pc.list_customer_account_bulk_job_results(Catalog="AWS", Identifier=started["Id"])["Results"]
    }
    assert outcome["c3"]["Status"] == "FAILED"
    assert "Account.Duns" in outcome["c3"]["ErrorMessage"]
    alpha = pc.get_customer_account(Catalog="AWS", Identifier=outcome["c1"]["ResourceIdentifier"])
    assert alpha["Account"]["CompanyName"] == "Alpha Corp"

    # DeletedCount counts accounts of this job deleted since; it never goes down.
    pc.delete_customer_account(Catalog="AWS", Identifier=outcome["c1"]["ResourceIdentifier"])
    pc.delete_customer_account(Catalog="AWS", Identifier=outcome["c1"]["ResourceIdentifier"])
    assert pc.get_customer_account_bulk_job(Catalog="AWS", Identifier=started["Id"])["DeletedCount"] == 1

    every = pc.get_customer_account_bulk_job_report_url(
        Catalog="AWS", Identifier=started["Id"], ReportType="ALL_RECORDS"
    )
    assert every["ReportStatus"] == "AVAILABLE"
    assert every["ReportType"] == "ALL_RECORDS"
    _, entries = bulk_csv.read_report(
        bulk_csv.CUSTOMER_ACCOUNT, requests.get(every["Url"], timeout=10).content
    )
    assert [(e.row.request_id, e.status) for e in entries] == [
        ("c1", "SUCCEEDED"),
        ("c2", "SUCCEEDED"),
        ("c3", "FAILED"),
    ]
    assert entries[0].row.request == rows[0][1]


def test_customer_account_update_file_fails_the_job(pc, ctl, s3):
    """StartCustomerAccountBulkJob creates accounts; an update template fails the job."""
    row = {**account("Alpha", "alpha.example"), "Identifier": "cust-acc-0000000000000"}
    row["LastModifiedDate"] = "2025-01-01T00:00:00Z"
    row.pop("Tags")
    uri = s3.put("in/u.csv", bulk_csv.write_csv(bulk_csv.CUSTOMER_ACCOUNT, [("u1", row)], update=True))
    job_id = pc.start_customer_account_bulk_job(Catalog="AWS", ClientToken="u", FileUri=uri)["Id"]
    finish(ctl)
    failed = pc.get_customer_account_bulk_job(Catalog="AWS", Identifier=job_id)
    assert failed["Status"] == "FAILED"
    assert "only create" in failed["FailureReason"]
    assert pc.list_customer_account_bulk_job_results(Catalog="AWS", Identifier=job_id)["Results"] == []
    with pytest.raises(ClientError) as err:
        pc.get_customer_account_bulk_job(Catalog="AWS", Identifier="bulkjob-0000000000000")
    assert error_code(err) == "ResourceNotFoundException"


# ----------------------------------------------------------------------------------- conformance walk
def drive_bulk_jobs(pc: Any, ctl: Callable[..., Any]) -> None:
    """Call all 9 bulk job operations successfully, with fully populated outputs (conformance test)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = S3(
            _s3_client(f"http://{host}:{port}"), f"drive-{uuid.uuid4().hex[:12]}", f"http://{host}:{port}"
        )
        s3.client.create_bucket(Bucket=s3.bucket)
        ctl("config", {"s3_endpoint_url": s3.endpoint, "bulk_fail_after_create": ["late", "acc-late"]})
        # Opportunities: successes, a validation failure, a record failing after its create, a failed job.
        rows = [("ok", record()), ("bad", record(OpportunityType="Bad")), ("late", record())]
        job_id = start(pc, s3.presigned("drive/opportunities.csv", opp_file(rows)))
        failed_job = start(pc, f"s3://{s3.bucket}/drive/missing.csv")
        # Customer accounts likewise.
        accounts = [
            ("acc-ok", account("Gamma", "gamma.example")),
            ("acc-late", account("Delta", "delta.example")),
        ]
        acc_uri = s3.put("drive/accounts.csv", bulk_csv.write_csv(bulk_csv.CUSTOMER_ACCOUNT, accounts))
        acc = pc.start_customer_account_bulk_job(Catalog="AWS", ClientToken=uuid.uuid4().hex, FileUri=acc_uri)
        pc.start_customer_account_bulk_job(
            Catalog="AWS", ClientToken=uuid.uuid4().hex, FileUri=f"s3://{s3.bucket}/drive/missing.csv"
        )
        finish(ctl)

        summaries = pc.list_opportunity_bulk_jobs(Catalog="AWS")["OpportunityBulkJobSummaries"]
        assert {j["JobId"]: j["Status"] for j in summaries}[job_id] == "COMPLETED"
        assert job(pc, failed_job)["Status"] == "FAILED"
        assert {r["Status"] for r in results(pc, job_id)} == {"SUCCEEDED", "FAILED"}
        report = pc.get_opportunity_bulk_job_report_url(Catalog="AWS", JobId=job_id, ReportFormat="CSV")
        assert report["ReportStatus"] == "AVAILABLE"

        got = pc.get_customer_account_bulk_job(Catalog="AWS", Identifier=acc["Id"])
        assert got["Status"] == "COMPLETED"
        assert len(pc.list_customer_account_bulk_jobs(Catalog="AWS")["items"]) == 2
        acc_results = pc.list_customer_account_bulk_job_results(Catalog="AWS", Identifier=acc["Arn"])[
            "Results"
        ]
        assert {r["Status"] for r in acc_results} == {"SUCCEEDED", "FAILED"}
        acc_report = pc.get_customer_account_bulk_job_report_url(Catalog="AWS", Identifier=acc["Id"])
        assert acc_report["ReportStatus"] == "AVAILABLE"
    finally:
        ctl("config", {"bulk_fail_after_create": [], "s3_endpoint_url": None})
        server.stop()


def test_drive_bulk_jobs(pc, ctl):
    """The conformance walk itself runs green on a fresh emulator."""
    drive_bulk_jobs(pc, ctl)
