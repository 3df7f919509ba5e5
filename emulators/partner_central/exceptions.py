"""AWS Partner Central error codes, one class per code, with the exact wire shape.

The members come from botocore's ``partnercentral-selling`` error shapes: every error carries ``Message``;
``ValidationException`` also carries ``Reason``
(``REQUEST_VALIDATION_FAILED`` | ``BUSINESS_VALIDATION_FAILED``)
and ``ErrorList`` (``FieldName``, ``Message``, ``Code``); ``AccessDeniedException`` an optional ``Reason``
(``AccessDeniedExceptionErrorCode``). JSON 1.0 services name the error in ``__type``.
"""

from __future__ import annotations

from typing import Any


class PartnerCentralError(Exception):
    """Base class: an AWS error response with its ``__type``, HTTP status and body members.

    Args:
        message: the human-readable ``Message``.
    """

    code = "InternalServerException"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON body exactly as AWS sends it."""
        return {"__type": self.code, "Message": self.message}


class ValidationException(PartnerCentralError):
    """Input failed model validation or a business rule.

    Args:
        message: the ``Message``.
        errors: ``ErrorList`` entries (``FieldName``, ``Message``, ``Code``).
        reason: ``REQUEST_VALIDATION_FAILED`` (shape rules) or ``BUSINESS_VALIDATION_FAILED`` (service rules).
    """

    code = "ValidationException"

    def __init__(
        self,
        message: str,
        errors: list[dict[str, str]] | None = None,
        reason: str = "REQUEST_VALIDATION_FAILED",
    ) -> None:
        super().__init__(message)
        self.errors = errors or []
        self.reason = reason

    def body(self) -> dict[str, Any]:
        """The JSON body, with ``Reason`` and ``ErrorList``."""
        out = super().body()
        out["Reason"] = self.reason
        if self.errors:
            out["ErrorList"] = self.errors
        return out


def business_error(field: str, message: str, code: str = "INVALID_VALUE") -> ValidationException:
    """A ``BUSINESS_VALIDATION_FAILED`` error naming one field."""
    return ValidationException(
        message, [{"FieldName": field, "Message": message, "Code": code}], reason="BUSINESS_VALIDATION_FAILED"
    )


class ConflictException(PartnerCentralError):
    """Optimistic-lock mismatch, ClientToken reuse with another body, or a conflicting state."""

    code = "ConflictException"


class ResourceNotFoundException(PartnerCentralError):
    """The identifier does not exist in this catalog."""

    code = "ResourceNotFoundException"


#: The model's ``AccessDeniedExceptionErrorCode`` enum: the only values ``Reason`` may take.
ACCESS_DENIED_REASONS = frozenset(
    {
        "INCOMPATIBLE_BENEFIT_AWS_PARTNER_STATE",
        "SEARCH_OPPORTUNITIES_NOT_ENABLED",
        "SEARCH_OPPORTUNITIES_DATA_NOT_ROUTED_TO_DDB",
        "OPPORTUNITY_BULK_JOB_NOT_ENABLED",
    }
)


class AccessDeniedException(PartnerCentralError):
    """The caller may not perform the action (another party's resource, a feature not enabled).

    Args:
        message: the ``Message``.
        reason: an ``AccessDeniedExceptionErrorCode`` value (``SEARCH_OPPORTUNITIES_NOT_ENABLED``), or None
            where the model has no value for the case (the body then has no ``Reason``).
    """

    code = "AccessDeniedException"

    def __init__(self, message: str, reason: str | None = None) -> None:
        if reason is not None and reason not in ACCESS_DENIED_REASONS:
            # Fail loudly in the emulator rather than send a Reason the real service never sends.
            raise ValueError(f"not an AccessDeniedExceptionErrorCode: {reason!r}")
        super().__init__(message)
        self.reason = reason

    def body(self) -> dict[str, Any]:
        """The JSON body, with ``Reason`` when set (botocore exposes it as ``error.response["Reason"]``)."""
        out = super().body()
        if self.reason is not None:
            out["Reason"] = self.reason
        return out


class ThrottlingException(PartnerCentralError):
    """A rate or daily quota was exceeded (botocore retries this code)."""

    code = "ThrottlingException"


class ServiceQuotaExceededException(PartnerCentralError):
    """A resource-count quota was exceeded."""

    code = "ServiceQuotaExceededException"


class InternalServerException(PartnerCentralError):
    """A service-side failure (HTTP 500; botocore retries it)."""

    code = "InternalServerException"
    status = 500


class UnknownOperationException(PartnerCentralError):
    """The ``X-Amz-Target`` names no operation of this service."""

    code = "UnknownOperationException"
