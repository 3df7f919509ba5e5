"""The Partner Central service model: shapes, enum values and dotted paths into them.

Everything here reads botocore's ``partnercentral-selling`` service model (the same model boto3
validates requests with), so configuration, transforms and mapping check paths and enum values
against one authority. The model is loaded once per process; lookups are cached.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from botocore.model import ServiceModel, Shape

__all__ = [
    "parse_path",
    "pc_enum",
    "pc_shape",
    "shape_at",
    "strip_indexes",
]

_SEGMENT = re.compile(r"^([A-Za-z][A-Za-z0-9]*)((?:\[\d+\])*)$")
_INDEX = re.compile(r"\[(\d+)\]")


@lru_cache(maxsize=1)
def _service_model() -> ServiceModel:
    import botocore.session

    return botocore.session.get_session().get_service_model("partnercentral-selling")


def pc_shape(operation: str, kind: Literal["input", "output"]) -> Shape:
    """The botocore input or output shape of a Partner Central operation.

    Args:
        operation: e.g. ``GetOpportunity``.
        kind: ``input`` or ``output``.

    Returns:
        The botocore structure shape.
    """
    op = _service_model().operation_model(operation)
    return op.input_shape if kind == "input" else op.output_shape


@lru_cache(maxsize=64)
def pc_enum(shape_name: str) -> tuple[str, ...]:
    """The exact enum values of a named Partner Central shape (``ReviewStatus``, ``Stage``...).

    Args:
        shape_name: the botocore shape name.

    Returns:
        The enum values in model order.
    """
    return tuple(_service_model().shape_for(shape_name).enum)


def parse_path(path: str) -> tuple[str | int, ...]:
    """Split a dotted path with list indexes into keys: ``a.b[0].c`` -> ``("a", "b", 0, "c")``.

    Args:
        path: the dotted path.

    Returns:
        The keys, ints for list indexes.

    Raises:
        ValueError: the path is malformed.
    """
    return _parse_path(path)


@lru_cache(maxsize=1024)
def _parse_path(path: str) -> tuple[str | int, ...]:
    keys: list[str | int] = []
    if not path:
        raise ValueError("empty path")
    for segment in path.split("."):
        match = _SEGMENT.match(segment)
        if match is None:
            raise ValueError(f"{path!r} is not a dotted path like 'Project.ExpectedCustomerSpend[0].Amount'")
        keys.append(match.group(1))
        keys.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return tuple(keys)


def strip_indexes(path: str) -> str:
    """Drop list indexes: ``Customer.Contacts[0].Email`` -> ``Customer.Contacts.Email``.

    Args:
        path: dotted path with list indexes.

    Returns:
        The path without indexes.
    """
    return _INDEX.sub("", path)


def shape_at(root: Shape, path: str) -> Shape | None:
    """The botocore shape a path leads to, or ``None`` if the path does not exist in ``root``.

    Args:
        root: a structure shape (e.g. the GetOpportunity output).
        path: dotted path with list indexes.

    Returns:
        The leaf shape or ``None``.
    """
    shape = root
    for key in parse_path(path):
        if isinstance(key, int):
            if shape.type_name != "list":
                return None
            shape = shape.member
        else:
            if shape.type_name != "structure" or key not in shape.members:
                return None
            shape = shape.members[key]
    return shape
