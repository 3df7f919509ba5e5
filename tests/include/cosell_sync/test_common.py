"""Unit tests for ``cosell_sync.common``: timestamps as baselines store them, missing values, JSON.

Timestamps are compared as strings across baselines, plans and watermarks, so two spellings of one
instant must give one key; a mismatch re-reads (or re-writes) records every run.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest

from cosell_sync.common import HUBSPOT_OBJECTS, clean, json_default, parse_ts, ts_key

INSTANT = "2026-01-02T03:04:05.678+00:00"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2026-01-02T03:04:05.678Z", id="iso-z"),
        pytest.param("2026-01-02T05:04:05.678+02:00", id="iso-offset"),
        pytest.param("2026-01-02T03:04:05.678", id="iso-naive-is-utc"),
        pytest.param(datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), id="aware-datetime"),
        pytest.param(
            datetime(2026, 1, 1, 22, 4, 5, 678000, tzinfo=timezone(timedelta(hours=-5))), id="other-tz"
        ),
        pytest.param(datetime(2026, 1, 2, 3, 4, 5, 678000), id="naive-datetime"),
        pytest.param(pd.Timestamp("2026-01-02T03:04:05.678Z"), id="pandas-timestamp"),
    ],
)
def test_ts_key_gives_one_key_per_instant(value: Any) -> None:
    assert ts_key(value) == INSTANT


def test_ts_key_pads_and_truncates_to_milliseconds() -> None:
    # PC's LastModifiedDate has no fraction; a microsecond value must not break equality with the baseline.
    assert ts_key("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05.000+00:00"
    assert ts_key("2026-01-02T03:04:05.678999Z") == INSTANT


@pytest.mark.parametrize("value", [None, ""])
def test_ts_key_of_missing_is_none(value: Any) -> None:
    assert ts_key(value) is None


def test_ts_key_round_trips_through_parse_ts() -> None:
    assert ts_key(parse_ts(INSTANT)) == INSTANT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), id="z"),
        pytest.param("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), id="naive"),
        pytest.param("2026-01-02T05:04:05+02:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), id="offset"),
    ],
)
def test_parse_ts_is_always_aware(text: str, expected: datetime) -> None:
    parsed = parse_ts(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("value", [None, ""])
def test_parse_ts_of_missing_is_none(value: str | None) -> None:
    assert parse_ts(value) is None


def test_parse_ts_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="yesterday"):
        parse_ts("yesterday")


@pytest.mark.parametrize("value", [None, math.nan, float("nan"), pd.NaT, pd.NA])
def test_clean_maps_every_missing_kind_to_none(value: Any) -> None:
    assert clean(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "0"), (0.0, "0.0"), ("", ""), (False, "False"), ("Qualified", "Qualified"), (1500, "1500")],
)
def test_clean_keeps_falsy_but_present_values(value: Any, expected: str) -> None:
    # An explicit 0 or empty string is a value a user set; it must not read as "missing".
    assert clean(value) == expected


def test_json_default_writes_datetimes_as_ts_keys() -> None:
    doc = {"at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), "n": 1}
    assert json.loads(json.dumps(doc, default=json_default)) == {"at": INSTANT, "n": 1}


def test_json_default_refuses_other_types() -> None:
    with pytest.raises(TypeError, match="set"):
        json.dumps({"x": {1, 2}}, default=json_default)


def test_hubspot_objects_name_the_api_paths_and_modified_properties() -> None:
    assert {n: o.plural for n, o in HUBSPOT_OBJECTS.items()} == {
        "deal": "deals",
        "company": "companies",
        "contact": "contacts",
    }
    # HubSpot contacts are the odd one out: a windowed search on hs_lastmodifieddate misses their edits.
    assert HUBSPOT_OBJECTS["contact"].modified_property == "lastmodifieddate"
    assert HUBSPOT_OBJECTS["deal"].modified_property == "hs_lastmodifieddate"
    # Every object but the deal itself is associated to a deal.
    assert HUBSPOT_OBJECTS["deal"].to_deal_association is None
    assert all(HUBSPOT_OBJECTS[n].to_deal_association for n in ("company", "contact"))
