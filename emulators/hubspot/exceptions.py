"""HubSpot error bodies.

HubSpot answers every failed request with a JSON body of the ``Error`` schema in its public OpenAPI specs
(``{"status": "error", "message": ..., "correlationId": ..., "category": ...}``), and reports per-item
failures inside batch responses with the ``StandardError`` schema (``status``, ``category``, ``message``,
``context``, ``errors``, ``links`` all required). These classes carry exactly those shapes.
"""

from __future__ import annotations

import json
import uuid
from typing import Any


def correlation_id() -> str:
    """A fresh correlation id (HubSpot sends a UUID with every error)."""
    return str(uuid.uuid4())


class HubSpotError(Exception):
    """An error HubSpot would answer with a non-2xx status.

    Args:
        status: HTTP status code.
        message: human readable message, as HubSpot words it.
        category: HubSpot error category (``VALIDATION_ERROR``, ``OBJECT_NOT_FOUND``...).
        extra: further top-level fields (``errors``, ``context``, ``subCategory``, ``policyName``...).
    """

    def __init__(self, status: int, message: str, category: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body HubSpot sends for this error."""
        out: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id(),
            "category": self.category,
        }
        out.update(self.extra)
        return out


class ValidationError(HubSpotError):
    """400 VALIDATION_ERROR, e.g. a bad input or a property value HubSpot rejects."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(400, message, "VALIDATION_ERROR", **extra)


class NotFound(HubSpotError):
    """404 OBJECT_NOT_FOUND (HubSpot's answer for a missing record, property, pipeline...)."""

    def __init__(self, message: str = "resource not found", **extra: Any) -> None:
        super().__init__(404, message, "OBJECT_NOT_FOUND", **extra)


class Conflict(HubSpotError):
    """409 CONFLICT, e.g. a contact with an email that already exists."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(409, message, "CONFLICT", **extra)


class AlreadyExists(HubSpotError):
    """409 OBJECT_ALREADY_EXISTS, e.g. creating a property or group whose name is taken."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(409, message, "OBJECT_ALREADY_EXISTS", **extra)


class Unauthorized(HubSpotError):
    """401 INVALID_AUTHENTICATION with HubSpot's wording for a missing or unknown token."""

    def __init__(self) -> None:
        super().__init__(
            401,
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
            "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            "INVALID_AUTHENTICATION",
        )


class RateLimited(HubSpotError):
    """429 as HubSpot sends it: ``errorType`` RATE_LIMIT and a ``policyName`` naming the limit hit.

    See https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details (error responses).
    """

    def __init__(self, policy: str, message: str) -> None:
        super().__init__(429, message, "RATE_LIMITS", errorType="RATE_LIMIT", policyName=policy)

    def body(self) -> dict[str, Any]:
        """HubSpot's 429 body: status, message, errorType, correlationId, policyName, requestId."""
        out = super().body()
        out.pop("category", None)
        out["requestId"] = correlation_id()
        return out


class InternalError(HubSpotError):
    """5xx injected by the fault controls."""

    def __init__(self, status: int = 500) -> None:
        super().__init__(status, "internal error", "INTERNAL_ERROR")


def property_errors_message(errors: list[dict[str, Any]]) -> str:
    """HubSpot's message for invalid property values: ``Property values were not valid: [json list]``."""
    return "Property values were not valid: " + json.dumps(errors, separators=(",", ":"))


def property_error(name: str, error: str, message: str) -> dict[str, Any]:
    """One entry of the list HubSpot embeds in a property-validation message."""
    return {
        "isValid": False,
        "message": message,
        "error": error,
        "name": name,
        "localizedErrorMessage": message,
    }


def standard_error(
    message: str, category: str, status: str = "error", context: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """A per-item batch error in the ``StandardError`` shape of the specs (all required keys present)."""
    return {
        "status": status,
        "category": category,
        "message": message,
        "context": context or {},
        "errors": [],
        "links": {},
    }
