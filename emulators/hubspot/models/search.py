"""CRM search: filter groups, operators, sorts, free-text query, paging and HubSpot's 10,000-result cap."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

from emulators.hubspot import schema
from emulators.hubspot.exceptions import ValidationError
from emulators.hubspot.models.base import BackendBase, Record, parse_time

# HubSpot search limits (developers.hubspot.com/docs/api/crm/search, "Limitations").
SEARCH_MAX_LIMIT = 200
SEARCH_MAX_RESULTS = 10_000
SEARCH_MAX_GROUPS = 5
SEARCH_MAX_FILTERS_PER_GROUP = 6
SEARCH_MAX_FILTERS = 18
SEARCH_MAX_QUERY = 3000
OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}


class SearchMixin(BackendBase):
    """``POST /crm/v3/objects/{type}/search``."""

    def search(self, object_type: str, body: dict[str, Any]) -> tuple[int, list[Record], str | None]:
        """Run a CRM search: total matches, one page of records, and the next ``after`` cursor."""
        if not isinstance(body, dict):
            raise ValidationError("Invalid input JSON: search body must be an object")
        limit = body.get("limit")
        limit = 10 if limit is None else limit
        if not isinstance(limit, int) or limit < 0:
            raise ValidationError(f"limit must be a non-negative integer, got {limit!r}")
        if limit > SEARCH_MAX_LIMIT:
            raise ValidationError(
                f"Limit {limit} is larger than the maximum of {SEARCH_MAX_LIMIT}.",
                context={"limit": [str(limit)]},
            )
        after_raw = body.get("after")
        try:
            offset = int(after_raw) if after_raw not in (None, "") else 0
        except (TypeError, ValueError):
            raise ValidationError(f"Invalid after value: {after_raw}") from None
        if offset >= SEARCH_MAX_RESULTS:
            # HubSpot: "The search endpoints are limited to 10,000 total results for any given query.
            # Attempting to page beyond 10,000 will result in a 400 error."
            raise ValidationError(
                f"Paging beyond {SEARCH_MAX_RESULTS} results is not supported: the search endpoints are "
                f"limited to {SEARCH_MAX_RESULTS} total results for any given query.",
                context={"after": [str(after_raw)]},
            )
        query = body.get("query")
        if query is not None and len(str(query)) > SEARCH_MAX_QUERY:
            raise ValidationError(f"query is longer than {SEARCH_MAX_QUERY} characters")
        groups = body.get("filterGroups") or []
        if len(groups) > SEARCH_MAX_GROUPS:
            raise ValidationError(f"Too many filter groups: {len(groups)} (maximum {SEARCH_MAX_GROUPS})")
        total_filters = 0
        with self.lock:
            defs = self.properties[object_type]
            compiled_groups = []
            for group in groups:
                filters = group.get("filters") or []
                if len(filters) > SEARCH_MAX_FILTERS_PER_GROUP:
                    raise ValidationError(
                        f"Too many filters in a group: {len(filters)} "
                        f"(maximum {SEARCH_MAX_FILTERS_PER_GROUP})"
                    )
                total_filters += len(filters)
                compiled_groups.append([self._compile_filter(object_type, defs, f) for f in filters])
            if total_filters > SEARCH_MAX_FILTERS:
                raise ValidationError(f"Too many filters: {total_filters} (maximum {SEARCH_MAX_FILTERS})")
            sort_key = self._compile_sorts(object_type, defs, body.get("sorts") or [])
            tokens = [t for t in re.split(r"\s+", str(query).lower().strip()) if t] if query else []
            qprops = schema.OBJECT_TYPES[object_type].query_props
            matches = []
            for rec in self.objects[object_type].values():
                if rec.archived:
                    continue
                if compiled_groups and not any(all(f(rec) for f in g) for g in compiled_groups):
                    continue
                if tokens and not self._query_match(rec, tokens, qprops):
                    continue
                matches.append(rec)
            matches.sort(key=sort_key)
            total = len(matches)
            visible = min(total, SEARCH_MAX_RESULTS)
            page = matches[offset : min(offset + limit, visible)]
            nxt = str(offset + limit) if offset + limit < total else None
            return total, page, nxt

    def _query_match(self, rec: Record, tokens: list[str], props: tuple[str, ...]) -> bool:
        words: list[str] = []
        for p in props:
            v = self.value(rec, p)
            if v:
                low = v.lower()
                words.append(low)
                words += [w for w in re.split(r"[^\w@.\-]+|[\s]+", low) if w]
        words.append(rec.id)
        return all(any(w.startswith(t) or (t in w and "@" in t) for w in words) for t in tokens)

    def _typed(self, prop: dict[str, Any] | None, value: str | None) -> Any:
        if value is None or value == "":
            return None
        type_ = prop["type"] if prop else "string"
        if type_ == "number":
            try:
                return float(value)
            except ValueError:
                return None
        if type_ in ("date", "datetime"):
            return parse_time(value)
        return str(value).lower()

    def typed_value(self, rec: Record, name: str, prop: dict[str, Any] | None) -> Any:
        """A property value converted for comparison (numbers, epoch ms, lower-cased strings)."""
        ot = schema.OBJECT_TYPES[rec.object_type]
        if name == ot.modified_prop:
            return rec.updated_ms
        if name == "hs_object_id":
            return float(rec.id)
        if name == ot.created_prop and not rec.properties.get(name):
            return rec.created_ms
        return self._typed(prop, self.value(rec, name))

    def _compile_filter(
        self, object_type: str, defs: dict[str, dict[str, Any]], f: dict[str, Any]
    ) -> Callable[[Record], bool]:
        name = f.get("propertyName")
        op = f.get("operator")
        if not name or not op:
            raise ValidationError("Each filter needs a propertyName and an operator")
        if op not in OPERATORS:
            raise ValidationError(f"Invalid operator {op!r}; use one of {sorted(OPERATORS)}")
        prop = defs.get(name)
        if prop is None:
            raise ValidationError(
                f"Unable to find property {name} for object type {object_type}",
                context={"propertyName": [name]},
            )
        if name == "hs_object_id":
            prop = {"type": "number"}

        def get(rec: Record) -> Any:
            return self.typed_value(rec, name, prop)

        if op == "HAS_PROPERTY":
            return lambda r: get(r) is not None
        if op == "NOT_HAS_PROPERTY":
            return lambda r: get(r) is None
        if op in ("IN", "NOT_IN"):
            values = f.get("values")
            if not isinstance(values, list):
                raise ValidationError(f"Operator {op} requires values")
            wanted = {self._typed(prop, str(v)) for v in values}
            if op == "IN":
                return lambda r: get(r) in wanted
            return lambda r: get(r) not in wanted
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            pattern = str(f.get("value", "")).lower()

            def contains(r: Record) -> bool:
                raw = self.value(r, name)
                if not raw:
                    return False
                low = raw.lower()
                tokens = [low, *(t for t in re.split(r"[\s,;]+", low) if t)]
                if "*" in pattern:
                    return any(fnmatch.fnmatchcase(t, pattern) for t in tokens)
                return pattern in tokens or pattern in re.split(r"[^\w]+", low)

            if op == "CONTAINS_TOKEN":
                return contains
            return lambda r: not contains(r)
        if "value" not in f and op != "BETWEEN":
            raise ValidationError(f"Operator {op} requires a value")
        target = self._typed(prop, None if f.get("value") is None else str(f.get("value")))
        if target is None and prop["type"] in ("number", "date", "datetime") and op != "BETWEEN":
            raise ValidationError(
                f"{f.get('value')} is not a valid value for {name}", context={"propertyName": [name]}
            )
        if op == "EQ":
            return lambda r: get(r) == target
        if op == "NEQ":
            return lambda r: get(r) != target
        if op == "BETWEEN":
            low = self._typed(prop, str(f.get("value")))
            high = self._typed(prop, str(f.get("highValue")))
            if low is None or high is None:
                raise ValidationError("BETWEEN requires value and highValue")
            return lambda r: (v := get(r)) is not None and low <= v <= high
        cmp = {
            "LT": lambda a, b: a < b,
            "LTE": lambda a, b: a <= b,
            "GT": lambda a, b: a > b,
            "GTE": lambda a, b: a >= b,
        }[op]
        return lambda r: (v := get(r)) is not None and cmp(v, target)

    def _compile_sorts(
        self, object_type: str, defs: dict[str, dict[str, Any]], sorts: list[Any]
    ) -> Callable[[Record], Any]:
        # HubSpot accepts ``"sorts": ["-createdate"]``-style strings and
        # ``[{"propertyName": ..., "direction": "ASCENDING"|"DESCENDING"}]``; only one sort rule applies.
        if len(sorts) > 1:
            raise ValidationError("Only one sort is allowed per search request")
        if not sorts:
            return lambda r: int(r.id)
        spec = sorts[0]
        if isinstance(spec, str):
            desc = spec.startswith("-")
            name = spec.lstrip("-")
        elif isinstance(spec, dict):
            name = spec.get("propertyName", "")
            direction = str(spec.get("direction", "ASCENDING")).upper()
            if direction not in ("ASCENDING", "DESCENDING"):
                raise ValidationError(f"Invalid sort direction {direction}")
            desc = direction == "DESCENDING"
        else:
            raise ValidationError("Invalid sort")
        prop = defs.get(name)
        if prop is None:
            raise ValidationError(f"Unable to find property {name} for object type {object_type}")
        if name == "hs_object_id":
            prop = {"type": "number"}

        def key(rec: Record) -> Any:
            v = self.typed_value(rec, name, prop)
            # Records without the value sort last; ties break by id so paging is stable.
            if desc:
                if v is None:
                    return (1, 0, int(rec.id))
                return (0, _Neg(v), int(rec.id))
            return (v is None, v if v is not None else 0, int(rec.id))

        return key


class _Neg:
    """Reverses ordering of a value inside a sort key (descending sort with an ascending id tie-break)."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: _Neg) -> bool:
        return self.v > other.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Neg) and self.v == other.v

    def __hash__(self) -> int:
        return hash(self.v)
