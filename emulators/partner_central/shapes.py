r"""Validate requests and responses against botocore's ``partnercentral-selling`` service model.

A generic shape walker, used on every request (AWS rejects bad input with ``ValidationException``,
``Reason`` ``REQUEST_VALIDATION_FAILED`` and one ``ErrorList`` entry per field) and, in tests, on every
response. It checks what the model declares: required members, types, enums, patterns, string lengths,
list and map sizes, numeric ranges, and unions (at most one member).

The model's patterns are Java/Smithy regexes, matched against the whole value; the Unicode classes
``\\p{L}``, ``\\p{N}``, ``\\p{Z}`` are mapped to their closest Python ``re`` equivalents.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import TYPE_CHECKING, Any

import botocore.session

from emulators.partner_central.exceptions import ValidationException

if TYPE_CHECKING:
    from botocore.model import ServiceModel, Shape

SERVICE_NAME = "partnercentral-selling"


@functools.cache
def service_model() -> ServiceModel:
    """The botocore service model, loaded once."""
    return botocore.session.get_session().get_service_model(SERVICE_NAME)


@functools.cache
def operation_names() -> tuple[str, ...]:
    """All operation names of the service (45 in botocore 1.44)."""
    return tuple(service_model().operation_names)


@functools.cache
def regex(pattern: str) -> re.Pattern[str]:
    """The compiled form of a model pattern (Java/Smithy syntax)."""
    # Java's Unicode property classes have no ``re`` spelling; \w and \d are their Unicode-aware kin. \p{Z}
    # (only inside the tag patterns' character classes) is spelled out: \s would also take a tab or a
    # newline, which are control characters (Cc), not separators (Zs, Zl, Zp).
    translated = pattern.replace(r"\p{L}", r"\w").replace(r"\p{N}", r"\d").replace(r"\p{Z}", _SEPARATORS)
    return re.compile(translated)


#: The Unicode separators (categories Zs, Zl, Zp), for use inside a character class.
_SEPARATORS = "\\u0020\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"


def _err(errors: list[dict[str, str]], path: str, code: str, message: str) -> None:
    errors.append({"FieldName": path or "body", "Message": message, "Code": code})


def _is_timestamp(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    return False


def validate(
    shape: Shape, value: Any, path: str, errors: list[dict[str, str]], *, output: bool = False
) -> None:
    """Walk ``value`` against ``shape`` and append one error per violation to ``errors``.

    Args:
        shape: the botocore shape.
        value: the decoded JSON value.
        path: dotted field path used as ``FieldName`` (``Project.ExpectedCustomerSpend[0].Amount``).
        errors: list collecting ``{"FieldName", "Message", "Code"}`` dicts.
        output: validating a response: list minimums are not enforced there, because services return
            empty lists (e.g. ``Tags`` of an untagged resource) even where the input shape says ``min: 1``.
    """
    tname = shape.type_name
    meta = shape.metadata
    if tname == "structure":
        if not isinstance(value, dict):
            _err(errors, path, "INVALID_VALUE", f"{path or 'body'} must be an object")
            return
        for name in shape.required_members:
            if value.get(name) is None:
                _err(errors, _join(path, name), "REQUIRED_FIELD_MISSING", f"{_join(path, name)} is required")
        present = [k for k, v in value.items() if k in shape.members and v is not None]
        if meta.get("union") and len(present) > 1:
            _err(
                errors, path, "INVALID_VALUE", f"{path or 'body'} accepts only one of {sorted(shape.members)}"
            )
        for name in present:
            validate(shape.members[name], value[name], _join(path, name), errors, output=output)
        return
    if tname == "list":
        if not isinstance(value, list):
            _err(errors, path, "INVALID_VALUE", f"{path} must be a list")
            return
        if "min" in meta and len(value) < meta["min"] and not output:
            _err(errors, path, "NOT_ENOUGH_VALUES", f"{path} needs at least {meta['min']} values")
        if "max" in meta and len(value) > meta["max"]:
            _err(errors, path, "TOO_MANY_VALUES", f"{path} accepts at most {meta['max']} values")
        for i, item in enumerate(value):
            validate(shape.member, item, f"{path}[{i}]", errors, output=output)
        return
    if tname == "map":
        if not isinstance(value, dict):
            _err(errors, path, "INVALID_VALUE", f"{path} must be a map")
            return
        if "max" in meta and len(value) > meta["max"]:
            _err(errors, path, "TOO_MANY_VALUES", f"{path} accepts at most {meta['max']} entries")
        for k, v in value.items():
            validate(shape.key, k, f"{path}.{k}", errors, output=output)
            validate(shape.value, v, f"{path}.{k}", errors, output=output)
        return
    if tname == "string":
        if not isinstance(value, str):
            _err(errors, path, "INVALID_VALUE", f"{path} must be a string")
            return
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            _err(errors, path, "INVALID_ENUM_VALUE", f"{path} must be one of the allowed values")
            return
        if "min" in meta and len(value) < meta["min"]:
            _err(errors, path, "INVALID_STRING_FORMAT", f"{path} must be at least {meta['min']} characters")
        elif "max" in meta and len(value) > meta["max"]:
            _err(errors, path, "INVALID_STRING_FORMAT", f"{path} must be at most {meta['max']} characters")
        elif "pattern" in meta and not regex(meta["pattern"]).fullmatch(value):
            _err(errors, path, "INVALID_STRING_FORMAT", f"{path} does not match pattern {meta['pattern']}")
        return
    if tname in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            _err(errors, path, "INVALID_VALUE", f"{path} must be an integer")
            return
        if ("min" in meta and value < meta["min"]) or ("max" in meta and value > meta["max"]):
            _err(
                errors,
                path,
                "VALUE_OUT_OF_RANGE",
                f"{path} must be between {meta.get('min', '-inf')} and {meta.get('max', 'inf')}",
            )
        return
    if tname in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            _err(errors, path, "INVALID_VALUE", f"{path} must be a number")
        return
    if tname == "boolean":
        if not isinstance(value, bool):
            _err(errors, path, "INVALID_VALUE", f"{path} must be a boolean")
        return
    if tname == "timestamp":
        if not _is_timestamp(value):
            _err(errors, path, "INVALID_VALUE", f"{path} must be a timestamp")
        return
    # blob / document: nothing further the model can tell us.


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def input_errors(operation: str, params: Any) -> list[dict[str, str]]:
    """Every violation of the operation's input shape (empty when valid)."""
    shape = service_model().operation_model(operation).input_shape
    errors: list[dict[str, str]] = []
    if shape is not None:
        validate(shape, params, "", errors)
    return errors


def validate_input(operation: str, params: Any) -> None:
    """Raise ``ValidationException`` (``REQUEST_VALIDATION_FAILED``) if ``params`` violate the input shape."""
    errors = input_errors(operation, params)
    if errors:
        raise ValidationException(
            f"Invalid input: {', '.join(sorted({e['FieldName'] for e in errors}))}", errors
        )


def output_errors(operation: str, data: Any) -> list[dict[str, str]]:
    """Every violation of the operation's output shape (used by tests to check the emulator's responses)."""
    shape = service_model().operation_model(operation).output_shape
    errors: list[dict[str, str]] = []
    if shape is None:
        if data not in ({}, None):
            _err(errors, "", "INVALID_VALUE", "operation has no output, body must be empty")
        return errors
    validate(shape, data, "", errors, output=True)
    return errors


def project(shape: Shape, value: Any) -> Any:
    """Keep only what ``shape`` declares (recursively) and drop nulls: what a service would return."""
    if value is None:
        return None
    if shape.type_name == "structure" and isinstance(value, dict):
        out = {}
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                projected = project(member, value[name])
                if projected is not None:
                    out[name] = projected
        return out
    if shape.type_name == "list" and isinstance(value, list):
        return [project(shape.member, v) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: project(shape.value, v) for k, v in value.items()}
    if shape.type_name == "timestamp" and isinstance(value, int) and not isinstance(value, bool):
        # Internal timestamps are epoch milliseconds; render them as ISO-8601 with milliseconds.
        return iso_ms(value)
    return value


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds (the precision Partner Central keeps)."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def shape(name: str) -> Shape:
    """A named shape of the model (e.g. ``OpportunitySummary``)."""
    return service_model().shape_for(name)


def output_shape(operation: str) -> Shape | None:
    """The output shape of an operation, or None when it returns nothing."""
    return service_model().operation_model(operation).output_shape
