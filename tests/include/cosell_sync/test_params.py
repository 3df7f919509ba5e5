"""Unit tests for ``cosell_sync.params``: a run conf with a typo is refused, timestamps read as UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cosell_sync.errors import ParamError
from cosell_sync.params import check_conf_keys, param_timestamp

VALID = ["mode", "direction", "dry_run", "since", "catalog", "opportunity_ids"]


def test_known_keys_and_an_empty_conf_pass() -> None:
    check_conf_keys({"mode": "full", "dry_run": True}, VALID, "cosell_reconcile")
    check_conf_keys({}, VALID, "cosell_reconcile")
    check_conf_keys(None, VALID, "cosell_reconcile")


def test_an_unknown_key_is_named_with_its_closest_param_and_the_valid_keys() -> None:
    with pytest.raises(ParamError) as caught:
        check_conf_keys({"mdoe": "full", "zzz": "secret value"}, VALID, "cosell_reconcile")
    message = caught.value.message
    assert message.startswith(
        "cosell_reconcile: unknown run conf key(s) 'mdoe' (did you mean 'mode'?), 'zzz';"
    )
    assert "valid keys: catalog, direction, dry_run, mode, opportunity_ids, since" in message
    assert "secret value" not in message  # keys, never values
    assert "full" not in message.split("valid keys")[0]
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-02T10:00:00", datetime(2026, 11, 2, 10, tzinfo=UTC)),
        ("2026-11-02T10:00", datetime(2026, 11, 2, 10, tzinfo=UTC)),
        ("2026-11-02", datetime(2026, 11, 2, tzinfo=UTC)),
        ("2026-11-02T10:00:00Z", datetime(2026, 11, 2, 10, tzinfo=UTC)),
        ("2026-11-02T11:00:00+01:00", datetime(2026, 11, 2, 11, tzinfo=timezone(timedelta(hours=1)))),
    ],
)
def test_timestamps_without_an_offset_are_utc(value: str, expected: datetime) -> None:
    got = param_timestamp("since", value)
    assert got == expected
    assert got is not None
    assert got.utcoffset() is not None


def test_empty_timestamps_are_none_and_bad_ones_a_clear_error() -> None:
    assert param_timestamp("since", None) is None
    assert param_timestamp("since", "") is None
    with pytest.raises(ParamError, match=r"^since: not an ISO 8601 timestamp .*UTC when it has no offset"):
        param_timestamp("since", "2026-13-02T10:00")
