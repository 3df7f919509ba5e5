"""Unit tests for ``cosell_sync.dry_run``: a dry run's log shows old and new values, never PII values."""

from __future__ import annotations

import pandas as pd

from cosell_sync.dry_run import MAX_SHOWN, change_lines, show
from cosell_sync.plan import Plan


def keep_all_but_email(name: str) -> str:
    return "hash" if name == "contact_email" else "keep"


def test_each_field_shows_its_old_and_new_value_sorted_by_name() -> None:
    current = pd.DataFrame({"stage": ["Prospect"], "next_steps": [None]}, index=["O1"])
    lines = change_lines(
        "HubSpot deal of O1", "O1", {"stage": "Qualified", "next_steps": "Call"}, current, keep_all_but_email
    )
    assert lines == [
        "DRY RUN - HubSpot deal of O1, next_steps: empty -> 'Call'",
        "DRY RUN - HubSpot deal of O1, stage: 'Prospect' -> 'Qualified'",
    ]


def test_a_field_whose_values_the_audit_policy_withholds_is_named_only() -> None:
    current = pd.DataFrame({"contact_email": ["old@example.com"]}, index=["O1"])
    lines = change_lines(
        "opportunity O1", "O1", {"contact_email": "new@example.com"}, current, keep_all_but_email
    )
    assert lines == [
        "DRY RUN - opportunity O1, contact_email: would change (value not shown: audit value policy)"
    ]
    assert "example.com" not in " ".join(lines)


def test_the_value_partner_central_had_when_planned_is_preferred_to_the_snapshot() -> None:
    lines = change_lines(
        "opportunity O1",
        "O1",
        {"stage": "Committed"},
        None,
        keep_all_but_email,
        expected={"stage": "Qualified"},
    )
    assert lines == ["DRY RUN - opportunity O1, stage: 'Qualified' -> 'Committed'"]


def test_a_long_value_is_cut_with_its_length() -> None:
    shown = show("x" * (MAX_SHOWN + 50))
    assert shown.endswith(f"... ({MAX_SHOWN + 50} characters)")
    assert len(shown) < MAX_SHOWN + 40


def test_log_values_covers_updates_both_ways_and_creates(caplog: object) -> None:
    from cosell_sync.dry_run import log_values

    plan = Plan(
        hubspot_updates={"O1": {"stage": "Qualified"}},
        partner_central_updates={"O2": {"next_steps": "Demo"}},
        expected={"O2": {"next_steps": "Intro"}},
        create_opportunities=[{"deal_id": "D9", "values": {"project_title": "New", "next_steps": None}}],
    )
    hs = pd.DataFrame({"stage": ["Prospect"]}, index=["O1"])
    assert log_values(plan, None, hs, keep_all_but_email) == 3
