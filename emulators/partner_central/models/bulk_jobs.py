"""Opportunity and customer account bulk jobs: a CSV file in, one single-record operation per row.

The nine operations (``StartOpportunityBulkJob``, ``ListOpportunityBulkJobs``,
``ListOpportunityBulkJobResults``, ``GetOpportunityBulkJobReportUrl`` and the five
``*CustomerAccountBulkJob*`` ones) follow the API reference in botocore's ``partnercentral-selling``
model. The file template is ours (AWS has not published it) and lives in ``cosell_sync.bulk_csv``, shared
with the product.

Life cycle, on the emulator clock and processed lazily before each request (``run_due_tasks``):

* ``SUBMITTED`` until ``task_delay_ms`` after creation; then the file is read: ``FileName``,
  ``OperationType`` and ``TotalRecords`` appear and the job is ``IN_PROGRESS`` (``StartedAt``), or ``FAILED``
  with a ``FailureReason`` when the file could not be fetched or does not follow the template.
* Records are processed at ``bulk_records_per_second`` (control ``POST /_emulator/config``; 0 pauses), each
  with the rules of the single-record operation (``CreateOpportunity``/``UpdateOpportunity``,
  ``CreateCustomerAccount``); a record that breaks a rule fails on its own, the others go on.
* ``COMPLETED`` (``CompletedAt``) once every record is processed, even if some failed.

The file is fetched when the job is started (the emulator has no background workers) and read when the job
leaves ``SUBMITTED``; the difference is invisible through the API. See docs/api-rules.md, "Bulk jobs".
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from cosell_sync import bulk_csv
from emulators.partner_central import shapes
from emulators.partner_central.exceptions import (
    AccessDeniedException,
    ConflictException,
    PartnerCentralError,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
    ValidationException,
)
from emulators.partner_central.models.base import paginate
from emulators.partner_central.models.customer_accounts import CustomerAccountsMixin

log = logging.getLogger(__name__)

OPPORTUNITY = bulk_csv.OPPORTUNITY
CUSTOMER_ACCOUNT = bulk_csv.CUSTOMER_ACCOUNT
KINDS = (OPPORTUNITY, CUSTOMER_ACCOUNT)

DEFAULT_RECORDS_PER_SECOND = 50.0
DEFAULT_MAX_ACTIVE_JOBS = 10
REPORT_URL_TTL_MS = 15 * 60 * 1000  # "The URL expires after 15 minutes" (GetOpportunityBulkJobReportUrl)
REPORT_TTL_MS = 7 * 24 * 3600 * 1000  # "the report expires after about 7 days"
FETCH_TIMEOUT_S = 15
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_STORE_KEY = {OPPORTUNITY: "opportunity_bulk_jobs", CUSTOMER_ACCOUNT: "customer_account_bulk_jobs"}
_ARN_SEGMENT = {OPPORTUNITY: "opportunity-bulk-job", CUSTOMER_ACCOUNT: "customer-account-bulk-job"}
_URL_SEGMENT = {OPPORTUNITY: "opportunity", CUSTOMER_ACCOUNT: "customer-account"}
_FILE_NAME_MAX = {OPPORTUNITY: 255, CUSTOMER_ACCOUNT: 1024}  # BulkFileName / FileName shapes
_ACTIVE = ("SUBMITTED", "IN_PROGRESS")
# Job members the API returns (the rest, prefixed ``_``, is the emulator's bookkeeping).
_PUBLIC = (
    "JobId",
    "Arn",
    "Id",
    "Status",
    "TotalRecords",
    "ProcessedRecords",
    "SuccessCount",
    "FailureCount",
    "DeletedCount",
    "CreatedAt",
    "StartedAt",
    "CompletedAt",
    "FailureReason",
    "FileName",
    "OperationType",
)


class FetchError(Exception):
    """The bulk file could not be fetched; the message becomes the job's ``FailureReason``."""


def _field_error(field: str, message: str, code: str = "INVALID_VALUE") -> ValidationException:
    return ValidationException(message, [{"FieldName": field, "Message": message, "Code": code}])


def _error_message(err: PartnerCentralError) -> str:
    """A record's ``ErrorMessage``: the exception message plus the fields it names, if any."""
    fields = getattr(err, "errors", None) or []
    detail = "; ".join(f"{e['FieldName']}: {e['Code']}" for e in fields)
    return f"{err.message} ({detail})" if detail else err.message


class BulkJobsMixin(CustomerAccountsMixin):
    """The opportunity and customer account bulk job operations."""

    # ------------------------------------------------------------------------------------- plumbing
    def reset(self) -> None:
        """Reset everything and restore the bulk job settings (the S3 endpoint is wiring and is kept)."""
        with self.lock:
            super().reset()
            self.bulk_jobs_enabled = True
            self.bulk_records_per_second = DEFAULT_RECORDS_PER_SECOND
            self.bulk_max_active_jobs = DEFAULT_MAX_ACTIVE_JOBS
            self.bulk_report_delay_ms = 0
            # RequestIds whose resource gets created and whose record then fails (test control).
            self.bulk_fail_after_create: set[str] = set()
            # The S3 endpoint s3:// FileURIs are read from (moto locally); set once by the stack.
            self.s3_endpoint_url: str | None = getattr(self, "s3_endpoint_url", None)
            # Where report URLs point; the server sets it from each request's host.
            self.base_url: str = getattr(self, "base_url", "http://127.0.0.1")

    def bulk_settings(self) -> dict[str, Any]:
        """The bulk job settings, as ``POST /_emulator/config`` reports them."""
        return {
            "bulk_jobs_enabled": self.bulk_jobs_enabled,
            "bulk_records_per_second": self.bulk_records_per_second,
            "bulk_max_active_jobs": self.bulk_max_active_jobs,
            "bulk_report_delay_ms": self.bulk_report_delay_ms,
            "bulk_fail_after_create": sorted(self.bulk_fail_after_create),
            "s3_endpoint_url": self.s3_endpoint_url,
        }

    def configure_bulk(self, body: dict[str, Any]) -> None:
        """Apply the bulk job keys of ``POST /_emulator/config`` (other keys are ignored)."""
        with self.lock:
            # Records due under the old rate are processed at the old rate before it changes.
            self.advance_bulk_jobs()
            if "bulk_jobs_enabled" in body:
                self.bulk_jobs_enabled = bool(body["bulk_jobs_enabled"])
            if "bulk_records_per_second" in body:
                rate = float(body["bulk_records_per_second"])
                if rate < 0 or not math.isfinite(rate):
                    raise ValueError("bulk_records_per_second must be a finite number >= 0")
                self.bulk_records_per_second = rate
            if "bulk_max_active_jobs" in body:
                self.bulk_max_active_jobs = int(body["bulk_max_active_jobs"])
            if "bulk_report_delay_ms" in body:
                self.bulk_report_delay_ms = int(body["bulk_report_delay_ms"])
            if "bulk_fail_after_create" in body:
                self.bulk_fail_after_create = {str(r) for r in body["bulk_fail_after_create"] or []}
            if "s3_endpoint_url" in body:
                self.s3_endpoint_url = body["s3_endpoint_url"] or None

    def run_due_tasks(self) -> None:
        """Finish due tasks and matches (base mixins), then move bulk jobs along."""
        super().run_due_tasks()
        self.advance_bulk_jobs()

    def on_customer_account_deleted(self, account: dict[str, Any]) -> None:
        """Count the deletion in the job that imported the account (``DeletedCount`` only increases)."""
        super().on_customer_account_deleted(account)
        job = self._jobs(account["Catalog"], CUSTOMER_ACCOUNT).get(account.get("ImportId") or "")
        if job is not None:
            job["DeletedCount"] += 1

    def _jobs(self, catalog: str, kind: str) -> dict[str, dict[str, Any]]:
        return self.store(catalog).setdefault(_STORE_KEY[kind], {})

    def _check_enabled(self, kind: str) -> None:
        if self.bulk_jobs_enabled:
            return
        if kind == OPPORTUNITY:
            raise AccessDeniedException(
                "Opportunity bulk jobs are not enabled for this account", "OPPORTUNITY_BULK_JOB_NOT_ENABLED"
            )
        # The model's AccessDeniedExceptionErrorCode has no value for customer account bulk jobs.
        raise AccessDeniedException("Customer account bulk jobs are not enabled for this account")

    def _job(self, catalog: str, kind: str, identifier: str) -> dict[str, Any]:
        job = self._jobs(catalog, kind).get(identifier.rsplit("/", 1)[-1])
        if job is None or (identifier.startswith("arn:") and identifier != job.get("Arn")):
            raise ResourceNotFoundException(f"Bulk job {identifier} not found in catalog {catalog}")
        return job

    # ---------------------------------------------------------------------------------- file access
    def _check_uri(self, uri: str, field: str) -> None:
        """Synchronous checks of FileURI: a bucket and key, and no query parameter but ``versionId``."""
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme == "s3":
            if not parts.netloc or not parts.path.strip("/"):
                raise _field_error(field, f"{field} must name a bucket and a key: s3://bucket/key")
            extra = [
                k for k in urllib.parse.parse_qs(parts.query, keep_blank_values=True) if k != "versionId"
            ]
            if extra:
                raise _field_error(field, f"{field} accepts only the versionId query parameter")
        elif not parts.netloc:
            raise _field_error(field, f"{field} must be an https:// URL with a host")

    @staticmethod
    def _file_name(uri: str, kind: str) -> str | None:
        name = urllib.parse.unquote(urllib.parse.urlsplit(uri).path.rsplit("/", 1)[-1])
        return name[-_FILE_NAME_MAX[kind] :] or None

    def fetch_bulk_file(self, uri: str) -> bytes:
        """The bytes at a FileURI (s3:// from the configured S3 endpoint, https:// by HTTP GET).

        Raises:
            FetchError: the file cannot be read or is larger than 100 MB.
        """
        if uri.startswith("s3://"):
            return self._fetch_s3(uri)
        return self._fetch_https(uri)

    def _s3_endpoint(self) -> str | None:
        return (
            self.s3_endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )

    def _fetch_s3(self, uri: str) -> bytes:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        endpoint = self._s3_endpoint()
        if not endpoint:
            # The emulator never reaches real AWS: without an endpoint there is nowhere to read from.
            raise FetchError("The file could not be read: no S3 endpoint is configured for the emulator")
        parts = urllib.parse.urlsplit(uri)
        request: dict[str, Any] = {
            "Bucket": parts.netloc,
            "Key": urllib.parse.unquote(parts.path.lstrip("/")),
        }
        version = urllib.parse.parse_qs(parts.query).get("versionId")
        if version:
            request["VersionId"] = version[0]
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            config=Config(
                s3={"addressing_style": "path"},
                retries={"total_max_attempts": 2, "mode": "standard"},
                connect_timeout=FETCH_TIMEOUT_S,
                read_timeout=FETCH_TIMEOUT_S,
            ),
        )
        try:
            response = client.get_object(**request)
            if int(response.get("ContentLength") or 0) > bulk_csv.MAX_FILE_BYTES:
                raise FetchError("The file is larger than 100 MB")
            data: bytes = response["Body"].read(bulk_csv.MAX_FILE_BYTES + 1)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "Unknown")
            raise FetchError(f"The file could not be read from S3 ({code})") from None
        except BotoCoreError as err:
            raise FetchError(f"The file could not be read from S3 ({type(err).__name__})") from None
        if len(data) > bulk_csv.MAX_FILE_BYTES:
            raise FetchError("The file is larger than 100 MB")
        return data

    def _fetch_https(self, uri: str) -> bytes:
        parts = urllib.parse.urlsplit(uri)
        endpoint = urllib.parse.urlsplit(self._s3_endpoint() or "")
        url = uri
        # Local servers (moto, this emulator) speak plain HTTP, but FileURI must be https://: a presigned URL
        # for a loopback host or for the configured plain-HTTP S3 endpoint is fetched over HTTP. SigV4 does
        # not sign the scheme, so the signature still holds.
        if parts.hostname in LOOPBACK_HOSTS or (
            endpoint.scheme == "http" and parts.netloc == endpoint.netloc
        ):
            url = urllib.parse.urlunsplit(("http", *parts[1:]))
        try:
            with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310 - http(s) only
                length = response.headers.get("Content-Length")
                if length and int(length) > bulk_csv.MAX_FILE_BYTES:
                    raise FetchError("The file is larger than 100 MB")
                data: bytes = response.read(bulk_csv.MAX_FILE_BYTES + 1)
        except urllib.error.HTTPError as err:
            raise FetchError(f"The file could not be downloaded (HTTP {err.code})") from None
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise FetchError(f"The file could not be downloaded ({type(err).__name__})") from None
        if len(data) > bulk_csv.MAX_FILE_BYTES:
            raise FetchError("The file is larger than 100 MB")
        return data

    # ------------------------------------------------------------------------------------ start jobs
    def start_opportunity_bulk_job(self, params: dict[str, Any]) -> dict[str, Any]:
        """StartOpportunityBulkJob: a new ``SUBMITTED`` job; returns ``JobId``."""
        job = self._start(OPPORTUNITY, "StartOpportunityBulkJob", "FileURI", params)
        return {"JobId": job["JobId"]}

    def start_customer_account_bulk_job(self, params: dict[str, Any]) -> dict[str, Any]:
        """StartCustomerAccountBulkJob: a new job; returns ``Arn``, ``Id``, ``Status``, ``CreatedAt``."""
        job = self._start(CUSTOMER_ACCOUNT, "StartCustomerAccountBulkJob", "FileUri", params)
        return {k: job[k] for k in ("Arn", "Id", "Status", "CreatedAt")}

    def _start(self, kind: str, operation: str, field: str, params: dict[str, Any]) -> dict[str, Any]:
        self._check_enabled(kind)
        catalog = params["Catalog"]
        self.store(catalog)
        uri = params[field]
        self._check_uri(uri, field)
        with self.lock:
            key = f"{catalog}|{operation}|{params['ClientToken']}"
            seen = key in self.idempotency
        content: bytes | None = None
        error: str | None = None
        if not seen:
            # Fetched outside the lock: the URL may point back at this emulator (e.g. a report URL).
            try:
                content = self.fetch_bulk_file(uri)
            except FetchError as err:
                error = str(err)

        def action() -> str:
            with self.lock:
                jobs = self._jobs(catalog, kind)
                active = sum(j["Status"] in _ACTIVE for j in jobs.values())
                if active >= self.bulk_max_active_jobs:
                    raise ServiceQuotaExceededException(
                        f"Catalog {catalog} already has {active} bulk jobs in progress, "
                        f"the maximum is {self.bulk_max_active_jobs}"
                    )
                return self._new_job(catalog, kind, uri, content, error)["_key"]

        job_id = self.idempotent(catalog, operation, params, action)
        with self.lock:
            return self._public(self._jobs(catalog, kind)[job_id])

    def _new_job(
        self, catalog: str, kind: str, uri: str, content: bytes | None, error: str | None
    ) -> dict[str, Any]:
        jobs = self._jobs(catalog, kind)
        jid = f"bulkjob-{self.rand_id(13)}"
        while jid in jobs:
            jid = f"bulkjob-{self.rand_id(13)}"
        now = self.now()
        job: dict[str, Any] = {
            "_key": jid,
            "_kind": kind,
            "_catalog": catalog,
            "_seq": sum(len(self._jobs(c, k)) for c in self.stores for k in KINDS),
            "Status": "SUBMITTED",
            "TotalRecords": 0,
            "ProcessedRecords": 0,
            "SuccessCount": 0,
            "FailureCount": 0,
            "CreatedAt": now,
            "_uri": uri,
            # Read (and started) like the emulator's other asynchronous work, task_delay_ms later.
            "_read_at": now + max(self.task_delay_ms, 0),
            "_rows": [],
            "_results": [],
            "_reports": {},
            "_urls": {},
        }
        if kind == OPPORTUNITY:
            job["JobId"] = jid
        else:
            job.update({"Id": jid, "Arn": self.make_arn(catalog, _ARN_SEGMENT[kind], jid), "DeletedCount": 0})
        if error is None and content is not None:
            try:
                operation, rows = bulk_csv.read_csv(kind, content)
                if not rows:
                    error = "The file contains no records"
                elif kind == CUSTOMER_ACCOUNT and operation == bulk_csv.BULK_UPDATE:
                    # StartCustomerAccountBulkJob creates accounts; it documents no update template.
                    error = (
                        "Customer account bulk jobs only create accounts; the file has an Identifier column"
                    )
                else:
                    job["_operation"] = operation
                    job["_rows"] = [
                        {
                            "RequestId": r.request_id,
                            "Identifier": r.identifier,
                            "LastModifiedDate": r.last_modified_date,
                            "Request": r.request,
                        }
                        for r in rows
                    ]
            except bulk_csv.BulkFileError as err:
                error = f"The file does not follow the bulk template: {err}"
        job["_error"] = error
        jobs[jid] = job
        if job["_read_at"] <= self.peek_now():
            self.advance_bulk_jobs()
        return job

    # --------------------------------------------------------------------------------- processing
    def advance_bulk_jobs(self) -> None:
        """Read due files and process the records due at the current rate (called before each request)."""
        with self.lock:
            now = self.peek_now()
            for catalog in list(self.stores):
                for kind in KINDS:
                    for job in self._jobs(catalog, kind).values():
                        if job["Status"] == "SUBMITTED" and now >= job["_read_at"]:
                            self._read(job)
                        if job["Status"] == "IN_PROGRESS":
                            self._process_due(job, now)

    def _read(self, job: dict[str, Any]) -> None:
        job["StartedAt"] = job["_read_at"]
        job["FileName"] = self._file_name(job["_uri"], job["_kind"])
        if job["_error"]:
            job.update({"Status": "FAILED", "FailureReason": job["_error"], "CompletedAt": job["_read_at"]})
            return
        job.update(
            {
                "Status": "IN_PROGRESS",
                "OperationType": job["_operation"],
                "TotalRecords": len(job["_rows"]),
                "_progress_at": job["_read_at"],
                "_credit": 0.0,
            }
        )

    def _process_due(self, job: dict[str, Any], now: int) -> None:
        # Records accrue at the current rate since the last step; whole records are processed.
        elapsed = max(now - job["_progress_at"], 0)
        job["_credit"] += elapsed * self.bulk_records_per_second / 1000
        job["_progress_at"] = now
        due = min(int(job["_credit"] + 1e-9), job["TotalRecords"] - job["ProcessedRecords"])
        job["_credit"] -= due
        for _ in range(due):
            row = job["_rows"][job["ProcessedRecords"]]
            result = self._process_record(job, row)
            job["_results"].append(result)
            job["ProcessedRecords"] += 1
            job["SuccessCount" if result["Status"] == "SUCCEEDED" else "FailureCount"] += 1
        if job["ProcessedRecords"] >= job["TotalRecords"]:
            job.update({"Status": "COMPLETED", "CompletedAt": max(now, job["StartedAt"])})
            job.pop("_credit", None)

    def _record_token(self, job: dict[str, Any], request_id: str) -> str:
        """A deterministic ClientToken per record, so retrying never creates a record twice."""
        digest = hashlib.sha256(request_id.encode()).hexdigest()[:32]
        return f"{job['_key']}/{digest}"

    def _process_record(self, job: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {"RequestId": row["RequestId"], "Status": "SUCCEEDED"}
        catalog = job["_catalog"]
        try:
            if job["_operation"] == bulk_csv.BULK_CREATE:
                params = {"Catalog": catalog, "ClientToken": self._record_token(job, row["RequestId"])}
                params.update(copy.deepcopy(row["Request"]))
                if job["_kind"] == OPPORTUNITY:
                    shapes.validate_input("CreateOpportunity", params)
                    created = self.create_opportunity(params)
                else:
                    shapes.validate_input("CreateCustomerAccount", params)
                    created = self.create_customer_account(params, import_id=job["_key"])
                result["ResourceIdentifier"] = created["Id"]
                if row["RequestId"] in self.bulk_fail_after_create:
                    # A step after the create failed: the record fails but names what was created.
                    raise PartnerCentralError("An internal error occurred after the resource was created")
            else:
                params = {"Catalog": catalog, **copy.deepcopy(row["Request"])}
                for name in ("Identifier", "LastModifiedDate"):
                    if row.get(name):
                        params[name] = row[name]
                shapes.validate_input("UpdateOpportunity", params)
                self.update_opportunity(params)
                result["ResourceIdentifier"] = params["Identifier"]
        except PartnerCentralError as err:
            if job["_operation"] == bulk_csv.BULK_UPDATE:
                # Only a resource created before the failure is named (ListOpportunityBulkJobResults).
                result.pop("ResourceIdentifier", None)
            result.update({"Status": "FAILED", "ErrorCode": err.code, "ErrorMessage": _error_message(err)})
        except Exception:  # a bug must fail one record, not every request that processes jobs
            log.exception("bulk job %s: record %s failed unexpectedly", job["_key"], row["RequestId"])
            result.update(
                {"Status": "FAILED", "ErrorCode": "InternalServerException", "ErrorMessage": "Internal error"}
            )
        return result

    # ------------------------------------------------------------------------------------------ reads
    @staticmethod
    def _public(job: dict[str, Any]) -> dict[str, Any]:
        return {k: job[k] for k in _PUBLIC if job.get(k) is not None}

    def _newest_first(self, catalog: str, kind: str) -> list[dict[str, Any]]:
        return sorted(
            self._jobs(catalog, kind).values(), key=lambda j: (j["CreatedAt"], j["_seq"]), reverse=True
        )

    def list_opportunity_bulk_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListOpportunityBulkJobs: newest first, filters ``JobId`` and ``Status``, pages of 20 by default."""
        self._check_enabled(OPPORTUNITY)
        with self.lock:
            catalog = params["Catalog"]
            if params.get("JobId"):
                # ResourceNotFoundException is among the operation's errors: an unknown JobId filter.
                self._job(catalog, OPPORTUNITY, params["JobId"])
            items = [
                self._public(j)
                for j in self._newest_first(catalog, OPPORTUNITY)
                if (not params.get("JobId") or j["JobId"] == params["JobId"])
                and (not params.get("Status") or j["Status"] == params["Status"])
            ]
            page, nxt = paginate(items, params, 20)
            return {"OpportunityBulkJobSummaries": page, "NextToken": nxt}

    def get_customer_account_bulk_job(self, params: dict[str, Any]) -> dict[str, Any]:
        """GetCustomerAccountBulkJob: status and counts."""
        self._check_enabled(CUSTOMER_ACCOUNT)
        with self.lock:
            return self._public(self._job(params["Catalog"], CUSTOMER_ACCOUNT, params["Identifier"]))

    def list_customer_account_bulk_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListCustomerAccountBulkJobs: newest first, ``Filter`` by ``Identifier``/``Status``, pages of 20."""
        self._check_enabled(CUSTOMER_ACCOUNT)
        with self.lock:
            flt = params.get("Filter") or {}
            wanted = flt.get("Identifier")
            items = [
                self._public(j)
                for j in self._newest_first(params["Catalog"], CUSTOMER_ACCOUNT)
                if (not wanted or wanted in (j["Id"], j["Arn"]))
                and (not flt.get("Status") or j["Status"] == flt["Status"])
            ]
            page, nxt = paginate(items, params, 20)
            return {"items": page, "NextToken": nxt}

    def list_bulk_job_results(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        """List*BulkJobResults: the processed records in file order, ``Status`` filter, pages of 20."""
        self._check_enabled(kind)
        field = "JobId" if kind == OPPORTUNITY else "Identifier"
        with self.lock:
            job = self._job(params["Catalog"], kind, params[field])
            results = [
                copy.deepcopy(r)
                for r in job["_results"]
                if not params.get("Status") or r["Status"] == params["Status"]
            ]
            page, nxt = paginate(results, params, 20)
            return {"Results": page, "NextToken": nxt}

    # ---------------------------------------------------------------------------------------- reports
    def bulk_job_report_url(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        """Get*BulkJobReportUrl: report status and, once generated, a URL valid for 15 minutes."""
        self._check_enabled(kind)
        field = "JobId" if kind == OPPORTUNITY else "Identifier"
        report_type = params.get("ReportType") or "FAILED_RECORDS"
        base: dict[str, Any] = {"ReportType": report_type}
        if kind == OPPORTUNITY:
            base["ReportFormat"] = params["ReportFormat"]
            if report_type == "ALL_RECORDS":
                # "ALL_RECORDS isn't supported yet, and a request for it fails with a ValidationException."
                raise _field_error("ReportType", "ReportType ALL_RECORDS is not supported yet")
        with self.lock:
            catalog = params["Catalog"]
            job = self._job(catalog, kind, params[field])
            if job["Status"] in _ACTIVE:
                if kind == CUSTOMER_ACCOUNT:
                    # "For a job that is still running, the request fails with a ConflictException."
                    raise ConflictException(
                        f"Bulk job {job['_key']} is still running; its report is not available"
                    )
                return {**base, "ReportStatus": "NOT_STARTED"}
            now = self.peek_now()
            if now >= job["CompletedAt"] + REPORT_TTL_MS:
                return {**base, "ReportStatus": "EXPIRED"}
            # "The report is generated on request": the first request starts it.
            report = job["_reports"].setdefault(report_type, {"ReadyAt": now + self.bulk_report_delay_ms})
            if now < report["ReadyAt"]:
                return {**base, "ReportStatus": "IN_PROGRESS"}
            token = uuid.uuid4().hex
            expires = now + REPORT_URL_TTL_MS
            job["_urls"][token] = {"ExpiresAt": expires, "ReportType": report_type}
            path = f"/_emulator/reports/{catalog}/{_URL_SEGMENT[kind]}/{job['_key']}/{token}.csv"
            url = self.base_url.rstrip("/") + path
            return {**base, "ReportStatus": "AVAILABLE", "Url": url, "ExpiresAt": expires}

    def bulk_report_content(self, catalog: str, segment: str, job_id: str, token: str) -> tuple[int, bytes]:
        """The report behind a report URL: (200, CSV), (403, ...) once expired, (404, ...) if unknown."""
        kinds = {v: k for k, v in _URL_SEGMENT.items()}
        with self.lock:
            if catalog not in self.stores or segment not in kinds:
                return 404, b"NoSuchKey"
            kind = kinds[segment]
            job = self._jobs(catalog, kind).get(job_id)
            if job is None:
                return 404, b"NoSuchKey"
            grant = job["_urls"].get(token.removesuffix(".csv"))
            now = self.peek_now()
            if grant is None or now >= grant["ExpiresAt"] or now >= job["CompletedAt"] + REPORT_TTL_MS:
                return 403, b"AccessDenied: Request has expired"
            rows = {r["RequestId"]: r for r in job["_rows"]}
            entries = [
                bulk_csv.BulkReportRow(
                    bulk_csv.BulkRow(
                        res["RequestId"],
                        rows[res["RequestId"]]["Identifier"],
                        rows[res["RequestId"]]["LastModifiedDate"],
                        rows[res["RequestId"]]["Request"],
                    ),
                    res["Status"],
                    res.get("ResourceIdentifier"),
                    res.get("ErrorCode"),
                    res.get("ErrorMessage"),
                )
                for res in job["_results"]
                if grant["ReportType"] == "ALL_RECORDS" or res["Status"] == "FAILED"
            ]
            update = job.get("_operation") == bulk_csv.BULK_UPDATE
            return 200, bulk_csv.write_report(kind, entries, update=update)
