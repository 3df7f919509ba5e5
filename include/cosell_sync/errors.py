"""Typed errors shared by the hooks and the sync logic.

The hooks turn every API failure into one of these, so callers decide on the *class* of failure
(retry later, fix the record, stop the run) without parsing service messages. Each error keeps the
service's own code and message, which end up in the task log and the audit trail.
"""

from __future__ import annotations

import re


class SyncError(Exception):
    """Base class of every error raised by co-sell sync.

    Args:
        message: a precise, PII-free description naming the record and field where known.
        service: ``partner_central`` or ``hubspot`` when the error came from an API.
        code: the service's error code (``ConflictException``, ``VALIDATION_ERROR``, HTTP status...).
        record_id: the record the error concerns, if any.
        reason: the service's machine-readable reason, where it gives one (Partner Central's
            ``AccessDeniedException.Reason``, e.g. ``OPPORTUNITY_BULK_JOB_NOT_ENABLED``).
        fields: the request members the service named as wrong (Partner Central's
            ``ValidationException.ErrorList[].FieldName``), names only, never values.
    """

    retriable: bool = False

    def __init__(
        self,
        message: str,
        *,
        service: str | None = None,
        code: str | None = None,
        record_id: str | None = None,
        reason: str | None = None,
        fields: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.service = service
        self.code = code
        self.record_id = record_id
        self.reason = reason
        self.fields = list(fields) if fields else []

    def to_dict(self) -> dict[str, str | bool | None]:
        """A JSON-friendly form for audit entries."""
        out: dict[str, str | bool | None] = {
            "type": type(self).__name__,
            "service": self.service,
            "code": self.code,
            "message": self.message,
            "record_id": self.record_id,
            "retriable": self.retriable,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.fields:
            out["fields"] = ",".join(self.fields)
        return out


class RetriableError(SyncError):
    """A transient failure (throttling, 5xx, timeout): the same call may succeed later."""

    retriable = True


class ThrottledError(RetriableError):
    """The service said we were over a quota (HTTP 429 / ThrottlingException)."""


class ServiceUnavailableError(RetriableError):
    """5xx, connection reset or timeout."""


class FatalError(SyncError):
    """A failure that will recur until something changes (bad input, auth, missing record)."""


class AuthError(FatalError):
    """Credentials were rejected (401/403, AccessDeniedException)."""


class NotFoundError(FatalError):
    """The record does not exist (404, ResourceNotFoundException)."""


class ValidationError(FatalError):
    """The service rejected the input (400, ValidationException, VALIDATION_ERROR)."""


class WriteBlockedError(ValidationError):
    """A value cannot be written now (review state, one-way field, missing object): nothing was sent."""


class ConflictError(FatalError):
    """Optimistic-lock or idempotency conflict (ConflictException, 409): re-read and re-merge."""


class StalePlanError(FatalError):
    """A step's plan is older than the committed baseline: replaying it would write old values.

    Clear the whole run (from ``prepare``) to plan again.
    """


class RunOverlapError(FatalError):
    """Another run holds the catalog's lease: two runs at once would duplicate writes."""


class ConfigError(FatalError):
    """The sync configuration is invalid; the message names the key and the reason."""


class UnknownOpportunitiesError(NotFoundError):
    """None of the opportunity ids a run was restricted to (``opportunity_ids``) exists in its catalog."""


class ParamError(FatalError, ValueError):
    """A run's params are invalid (an unknown key, a bad value): the message names the param and the rule.

    Also a :class:`ValueError`, as the checks it replaces raised, so callers that caught those still do.
    """


class RecordErrorsError(FatalError):
    """A run finished and committed, but some records could not be read or written, or do not exist.

    Raised by the ``report`` step after ``report.json`` is written (``report.fail_on_record_errors``), so
    the run does not end plain green; the message gives the counts, never ids or values.
    """


#: ``Value 'x' at 'project.title'`` (AWS validation messages quote non-sensitive values) and botocore's
#: ``..., value: x, type: ...`` (client-side parameter validation): the value goes, the rule stays.
_QUOTED_VALUE = re.compile(r"Value '.*?' at '", re.DOTALL)
_PARAM_VALUE = re.compile(r", value: [^\n]*?, (?=type:|valid )")


def without_values(message: str) -> str:
    """A service or botocore error message with the values it quotes removed (they may be PII).

    The message names the parameter and the rule, which is what the task log, the deal's
    ``aws_sync_error`` and retry items need.
    """
    return _PARAM_VALUE.sub(", ", _QUOTED_VALUE.sub("Value at '", message))


def merge_step_error(current: str | None, prefix: str, lines: list[str]) -> str:
    """A deal's ``aws_sync_error`` with one step's lines (each starting with ``prefix``) replaced.

    Other steps' lines are kept, so a step clearing its own error never clears another's. An empty
    ``lines`` clears the step's lines. Capped at 1,000 characters (the property is a text area).
    """
    kept = [ln for ln in (current or "").split("\n") if ln.strip() and not ln.startswith(prefix)]
    return "\n".join([*kept, *(f"{prefix}{ln}" for ln in lines)])[:1000]
