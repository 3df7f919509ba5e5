"""The bulk phase at a small size: ``python -m bench.bulk`` completes, and its figures say what went wrong.

The phase's timing belongs to ``make bench``; these tests check its behaviour only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.bulk import BulkFigures, BulkSettings, bulk_results, is_bulk_figure, merge_results
from bench.report import figure
from bench.run import _previous_figures
from bench.stack import ROOT

RECORDS = 30


@pytest.mark.slow
@pytest.mark.xdist_group("dags")
@pytest.mark.timeout(300)
def test_the_module_loads_every_deal_once_as_one_bulk_job_and_prints_its_figures(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT, ROOT / "include", ROOT / "plugins")),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bulk",
            "--records",
            str(RECORDS),
            "--poll-seconds",
            "1",
            "--results",
            str(results),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # The table, then the measurements as JSON.
    assert f"Initial load {RECORDS} co-sell deals -> Partner Central with a bu" in out
    measured = json.loads(out[out.index("\n{\n") : out.rindex("\n}\n") + 2])
    assert measured["lost"] == 0, measured["lost_examples"]
    assert measured["duplicated"] == 0, measured["duplicate_examples"]
    assert measured["opportunities"] == RECORDS
    calls = measured["load_pc_calls"]
    assert calls["StartOpportunityBulkJob"] == 1
    assert "CreateOpportunity" not in calls
    assert calls["ListOpportunityBulkJobs"] >= 2  # the sensor's check, then the trigger's polls
    assert measured["load_report"]["created"] == RECORDS
    assert [j["Status"] for j in measured["bulk_jobs"]] == ["COMPLETED"]
    # One SearchOpportunities page holds the 30 opportunities; AWS re-scored all of them, and every
    # deal holds its new score.
    assert measured["insights_calls"] == measured["insights_counter"] == 1
    assert measured["insights"]["read"] == RECORDS
    assert measured["insights_deals_checked"] == measured["insights_expected"] == RECORDS

    written = json.loads(results.read_text())
    assert [is_bulk_figure(r["name"]) for r in written] == [True, True, True]
    assert [(r["unit"], r["goal"], r["met"]) for r in written] == [
        ("calls", "<= 30", True),
        ("s", "", True),
        ("calls", "<= 2", True),
    ]
    assert written[0]["value"] == sum(calls.values())
    assert written[2]["value"] == 1


def _measured(**changes: object) -> BulkFigures:
    """Figures of a clean 1,000-deal load (what a good phase measures), with ``changes``."""
    base = BulkFigures(
        records=1000,
        load_seconds=30.0,
        load_pc_calls={
            "ListOpportunities": 1,
            "SearchOpportunities": 11,
            "StartOpportunityBulkJob": 1,
            "ListOpportunityBulkJobs": 4,
            "ListOpportunityBulkJobResults": 1,
        },
        load_insights={"read": 1000, "full": True, "api_calls": {"SearchOpportunities": 10}},
        load_report={"created": 1000, "failed": 0},
        opportunities=1000,
        insights_expected=10,
        insights={
            "read": 1000,
            "changed": 10,
            "written": 10,
            "failed": 0,
            "full": True,
            "api_calls": {"SearchOpportunities": 10},
        },
        insights_counter=10,
        insights_deals_checked=10,
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_a_load_that_lost_or_duplicated_deals_is_never_a_success() -> None:
    settings = BulkSettings(records=1000)
    good = bulk_results(_measured(), settings)
    assert [r.met for r in good] == [True, True, True]

    lost = bulk_results(_measured(lost=2, lost_examples=["deal 7: no opportunity"]), settings)
    assert [r.met for r in lost] == [False, False, True]
    assert lost[0].value == 18  # the calls are still shown, under the goal, but not met
    assert lost[0].note.startswith("NOT VALID: 2 deals lost (deal 7: no opportunity)")

    single = bulk_results(
        _measured(load_pc_calls={"ListOpportunities": 1, "CreateOpportunity": 1000}), settings
    )
    assert not single[0].met
    assert "not one bulk job" in single[0].note


def test_an_insights_scan_that_missed_opportunities_is_never_a_success() -> None:
    settings = BulkSettings(records=1000)
    partial = {
        "read": 600,
        "changed": 10,
        "written": 10,
        "failed": 0,
        "full": True,
        "api_calls": {"SearchOpportunities": 6},
    }
    result = bulk_results(_measured(insights=partial, insights_counter=6), settings)[2]
    assert (result.value, result.goal, result.met) == (6, "<= 11", False)
    assert "the scan read 600 of 1000" in result.note
    unwritten = bulk_results(_measured(insights_deals_checked=9), settings)[2]
    assert not unwritten.met
    assert "9 of 10 re-scored deals" in unwritten.note


def test_bulk_figures_are_kept_and_replaced_apart_from_the_others(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    others = [
        figure("Initial load 10,000 opps: wall time / quota floor", 1.1, "ratio", "<=", 1.15),
        figure("Initial load: wall time at time_scale 1 (extrapolated)", 24.0, "min"),
        figure("Soak: records lost (10,000-record book)", 0, "records", "<=", 0),
    ]
    old = bulk_results(_measured(), BulkSettings(records=1000))
    path.write_text(json.dumps([r.to_dict() for r in others + old]))
    assert [r["name"] for r in _previous_figures(is_bulk_figure, path)] == [r.name for r in old]
    assert [r["name"] for r in _previous_figures(lambda n: n.startswith("Soak: "), path)] == [others[2].name]

    new = bulk_results(_measured(load_seconds=12.0), BulkSettings(records=1000))
    merge_results(new, path)
    data = json.loads(path.read_text())
    assert [r["name"] for r in data] == [r.name for r in others + new]
    assert data[4]["value"] == 12.0
