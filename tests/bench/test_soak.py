"""The soak at a small size: nothing lost, nothing duplicated, figures in the shape ``make bench`` writes.

The soak's timing belongs to ``make bench``; this test checks its behaviour only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.report import figure
from bench.soak import (
    NOTE_REF,
    SOAK_PREFIX,
    Expected,
    SoakSettings,
    hs_objects,
    measure,
    merge_results,
    run_soak,
    soak_results,
)
from bench.stack import CATALOG, BenchStack
from tests.dags.conftest import airflow_db

__all__ = ["airflow_db"]

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags"), pytest.mark.timeout(900)]

#: What ``BenchStack.set_scale`` and the soak set in this process's environment.
_ENV = (
    "COSELL_SYNC_CONFIG",
    "AIRFLOW_CONN_PARTNER_CENTRAL_DEFAULT",
    "AIRFLOW_CONN_HUBSPOT_DEFAULT",
    "AIRFLOW_CONN_AWS_DEFAULT",
)


def _keep_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Have monkeypatch restore the variables the soak sets (it writes ``os.environ`` directly)."""
    for key in _ENV:
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)


def test_soak_loses_and_duplicates_nothing(
    airflow_db: None,
    pc_emulator: Any,
    hubspot_emulator: Any,
    aws_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _keep_environment(monkeypatch)
    stack = BenchStack(
        {"partner_central": pc_emulator.url, "hubspot": hubspot_emulator.url, "aws": aws_endpoint}, tmp_path
    )
    settings = SoakSettings(records=60, faulted_runs=3, max_clean_runs=4, seed=10)
    expected = Expected()

    figures = run_soak(stack, settings, expected)

    assert figures.lost == 0, figures.lost_examples
    assert figures.duplicated == 0, figures.duplicate_examples
    assert set(figures.duplicates) == {
        "opportunities per PartnerOpportunityIdentifier",
        "opportunities nobody asked for",
        "deals per aws_opportunity_id",
        "companies per aws_created_for",
        "contacts per aws_created_for",
        "notes per deal per run",
    }
    assert figures.expected_records == 60 + 2 * settings.new_count
    assert set(figures.edits) == {
        "partner_central_edits",
        "hubspot_edits",
        "both_sides_same_field",
        "new_cosell_deals",
        "new_opportunities",
    }
    assert figures.edits["new_cosell_deals"] == figures.edits["new_opportunities"] == settings.new_count
    assert len(figures.faulted_runs) == 3
    assert figures.injected["hubspot_429"] > 0
    assert figures.injected["partner_central_throttled"] > 0
    assert 1 <= len(figures.clean_runs) <= 4
    assert figures.runs_to_converge is None or figures.runs_to_converge == len(figures.clean_runs) - 1
    assert set(figures.seconds) >= {"initial load", "changes", "faulted runs", "fault-free runs", "total"}

    results = soak_results(figures, settings)
    assert [r.name.startswith(SOAK_PREFIX) for r in results] == [True] * 4
    assert [(r.value, r.unit, r.goal, r.met) for r in results[:2]] == [
        (0, "records", "<= 0", True),
        (0, "records", "<= 0", True),
    ]
    assert (results[2].unit, results[2].goal) == ("runs", "<= 2")
    assert results[3].unit == "min"
    json.dumps(figures.to_dict())

    # The measurement sees a loss: a console edit the sync has not carried over is a lost value.
    oid = next(iter(expected.next_steps))
    requests.post(
        f"{stack.pc_url}/_emulator/simulate/aws-update",
        json={"catalog": CATALOG, "identifier": oid, "LifeCycle": {"NextSteps": "Not synced yet"}},
        timeout=30,
    ).raise_for_status()
    # ... and a second note of one run on one deal is a duplicate.
    note = next(
        n
        for n in hs_objects(stack, "notes", ["hs_note_body", "hs_timestamp"], associations="deals")
        if NOTE_REF in (n["properties"].get("hs_note_body") or "") and n.get("associations")
    )
    deal_id = note["associations"]["deals"]["results"][0]["id"]
    copy = {k: note["properties"][k] for k in ("hs_note_body", "hs_timestamp")}
    to_deal = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]
    requests.post(
        f"{stack.hs_url}/crm/v3/objects/notes/batch/create",
        headers={"Authorization": "Bearer test-token"},
        json={"inputs": [{"properties": copy, "associations": [{"to": {"id": deal_id}, "types": to_deal}]}]},
        timeout=30,
    ).raise_for_status()
    lost, duplicates, examples = measure(stack, expected)
    assert len(lost) == 1
    assert lost[0].startswith(f"{oid}: Partner Central NextSteps 'Not synced yet'")
    assert duplicates["notes per deal per run"] == 1
    assert sum(duplicates.values()) == 1
    assert examples[0].startswith(f"notes per deal per run deal {deal_id} run ")


def test_merge_results_replaces_only_the_soak_figures(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    other = figure("Zero-change run", 2, "calls", "<=", 3)
    old = figure(f"{SOAK_PREFIX}records lost", 3, "records", "<=", 0)
    path.write_text(json.dumps([other.to_dict(), old.to_dict()]))
    merge_results([figure(f"{SOAK_PREFIX}records lost", 0, "records", "<=", 0)], path)
    data = json.loads(path.read_text())
    assert [(r["name"], r["value"]) for r in data] == [
        ("Zero-change run", 2),
        (f"{SOAK_PREFIX}records lost", 0),
    ]
    merge_results([figure(f"{SOAK_PREFIX}wall time", 1.0, "min")], tmp_path / "new.json")
    assert len(json.loads((tmp_path / "new.json").read_text())) == 1
