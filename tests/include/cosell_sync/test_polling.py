"""``cosell_sync.polling``: which polls a run makes, and that a skipped poll never moves its mark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from cosell_sync.config import load_config
from cosell_sync.polling import advance_related, lists_invitations, plan_polling, related_poll

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class _Marks:
    """The watermark store's get/advance, in memory."""

    def __init__(self, **marks: datetime) -> None:
        self.marks = dict(marks)

    def get(self, catalog: str, side: str) -> datetime | None:
        return self.marks.get(side)

    def advance(self, catalog: str, side: str, value: datetime, run_id: str) -> bool:
        if side in self.marks and self.marks[side] >= value:
            return False
        self.marks[side] = value
        return True


def _env(overrides: dict[str, Any], **marks: datetime) -> Any:
    return SimpleNamespace(config=load_config(overrides=overrides), watermarks=_Marks(**marks))


def _run(**extra: Any) -> dict[str, Any]:
    return {"catalog": "AWS", "run_id": "r1", "mode": "incremental", "opportunity_ids": [], **extra}


ON = {"webhooks": {"enabled": True, "backstop_minutes": 60}, "events": {"enabled": True}}


@pytest.mark.parametrize(
    ("overrides", "marks", "poll", "since"),
    [
        pytest.param({}, {"hubspot_related": NOW - timedelta(minutes=30)}, True, "11:25", id="webhooks-off"),
        pytest.param(ON, {"hubspot_related": NOW - timedelta(minutes=30)}, False, "11:25", id="on-fresh"),
        pytest.param(ON, {"hubspot_related": NOW - timedelta(minutes=90)}, True, "10:25", id="on-due"),
        # Before the company/contact search had a mark of its own, the deal watermark stood for both.
        pytest.param(ON, {"hubspot": NOW - timedelta(minutes=30)}, True, "11:25", id="no-mark-yet"),
        pytest.param(ON, {}, True, None, id="first-run"),
    ],
)
def test_companies_and_contacts_are_searched_from_their_own_mark(
    overrides: dict[str, Any], marks: dict[str, datetime], poll: bool, since: str | None
) -> None:
    env = _env(overrides, **marks)

    polling = plan_polling(env, _run(), NOW, watermark_run=True)

    related = polling["companies_contacts"]
    assert related["poll"] is poll
    assert (related["since"][11:16] if related["since"] else None) == since


def test_a_run_that_did_not_search_leaves_the_company_mark_where_it_was() -> None:
    mark = NOW - timedelta(minutes=30)
    env = _env(ON, hubspot_related=mark)
    run = _run(started_at=NOW.isoformat())
    run["polling"] = plan_polling(env, run, NOW, watermark_run=True)

    assert advance_related(env, run) is False
    assert env.watermarks.marks["hubspot_related"] == mark
    # Due an hour later: searched from the old mark, which then moves to that run's start.
    later = NOW + timedelta(minutes=31)
    run = _run(started_at=later.isoformat())
    run["polling"] = plan_polling(env, run, later, watermark_run=True)
    assert related_poll(run) == (True, run["polling"]["companies_contacts"]["since"])
    assert run["polling"]["companies_contacts"]["since"] < mark.isoformat()
    assert advance_related(env, run) is True
    assert env.watermarks.marks["hubspot_related"] == later


def test_a_full_run_never_moves_the_company_mark() -> None:
    env = _env({}, hubspot_related=NOW - timedelta(minutes=30))
    run = _run(mode="full", since_hubspot=None, started_at=NOW.isoformat())
    run["polling"] = plan_polling(env, run, NOW, watermark_run=False)

    assert advance_related(env, run) is False


@pytest.mark.parametrize(
    ("overrides", "listed_ago", "lists"),
    [
        pytest.param({}, 5, True, id="events-off"),
        pytest.param(ON, 5, False, id="events-on-fresh"),
        pytest.param(ON, 61, True, id="events-on-backstop-due"),
        pytest.param(ON, None, True, id="never-listed"),
    ],
)
def test_invitations_are_listed_every_run_or_at_the_backstop(
    overrides: dict[str, Any], listed_ago: int | None, lists: bool
) -> None:
    marks = {} if listed_ago is None else {"invitations": NOW - timedelta(minutes=listed_ago)}
    env = _env(overrides, **marks)
    run = _run()
    run["polling"] = plan_polling(env, run, NOW, watermark_run=True)

    assert lists_invitations(run) is lists
    # An invitation event always lists them (cosell_events).
    assert lists_invitations({**run, "events": {"invitations": True}}) is True
