"""Fast tests of the benchmark's pure helpers: quota floors, write windows, results formatting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.quota_math import budgets, floor_seconds, max_in_window, min_gap
from bench.report import Result, figure, format_table, judge, write_results
from bench.stack import required_list_pages, scaled_config


def test_floor_is_bound_by_partner_central_reads_for_an_initial_load() -> None:
    # 10,000 opportunities: 100 list pages + 10,000 gets at 10/s, first 10 from the full bucket.
    seconds, binding = floor_seconds(
        {
            "partner_central_reads": 10_100,
            "partner_central_writes": 0,
            "hubspot_requests": 400,
            "hubspot_search": 2,
        },
        time_scale=1,
    )
    assert binding == "partner_central_reads"
    assert seconds == pytest.approx((10_100 - 10) / 10)


def test_floor_scales_with_time_scale_and_counts_the_burst() -> None:
    one, _ = floor_seconds({"hubspot_requests": 1_100}, time_scale=1)
    ten, _ = floor_seconds({"hubspot_requests": 11_000}, time_scale=10)
    assert one == pytest.approx(100.0)  # (1,100 - 100) / 10 per s
    assert ten == pytest.approx(100.0)
    assert floor_seconds({"partner_central_writes": 1}, 1)[0] == 0.0
    assert budgets(50)["partner_central_writes"].rate == 50


def test_write_windows() -> None:
    assert max_in_window([]) == 0
    assert max_in_window([0.0, 1.0, 2.0, 3.0]) == 1  # exactly 1 s apart: one per half-open window
    assert max_in_window([0.0, 0.5, 1.2, 1.4, 1.45]) == 4  # [0.5, 1.5)
    assert min_gap([3.0, 1.0, 2.5]) == pytest.approx(0.5)
    assert min_gap([1.0]) is None


def test_judge_and_figure() -> None:
    assert judge(0.02, "<=", 0.03)
    assert not judge(0.04, "<=", 0.03)
    assert judge(1.0, ">=", 0.99)
    assert not judge(None, "<=", 1)
    assert judge(12.0, "info", None)
    with pytest.raises(ValueError, match="unknown comparator"):
        judge(1, "<", 2)
    r = figure("x", 3, "calls", "<=", 3, "n")
    assert (r.goal, r.met) == ("<= 3", True)
    assert figure("y", 5.0, "x").goal == ""


def test_table_and_json(tmp_path: Path) -> None:
    results = [
        figure("HubSpot calls per changed deal", 0.0213, "calls", "<=", 0.03),
        figure("Zero-change run", 4, "calls", "<=", 3),
        figure("ratio", 41.5, "x"),
        Result("a very long figure name " * 5, None, "s", "<= 5", False),
    ]
    table = format_table(results)
    lines = table.splitlines()
    assert lines[2].rstrip().endswith("yes")
    assert lines[3].rstrip().endswith("NO")
    assert lines[4].rstrip().endswith("-")
    assert "n/a" in lines[5]
    assert "…" in lines[5]
    assert lines[-1] == "goals met: 1 of 3"
    assert len({line.rindex(" calls ") for line in lines[2:4]}) == 1  # fixed width
    path = tmp_path / "results.json"
    write_results(results, path)
    data = json.loads(path.read_text())
    assert set(data[0]) == {"name", "value", "unit", "goal", "met", "note"}
    assert data[1]["met"] is False


def test_scaled_config_and_pages(tmp_path: Path) -> None:
    import yaml

    quotas = yaml.safe_load(scaled_config(10, tmp_path).read_text())["quotas"]
    assert quotas["partner_central_reads_per_second"] == 100
    assert quotas["partner_central_writes_per_second"] == 10
    assert quotas["hubspot_requests_per_10s"] == 1000
    assert required_list_pages(10_000) == 100
    assert required_list_pages(0) == 1


def test_emulator_seed_speed_is_a_bench_figure() -> None:
    # The speed the emulator tests used to assert (issue 10, case 14) is measured here, not asserted.
    from bench.emulator_seed import GOAL_S, measure_seed_speed

    (result,) = measure_seed_speed({"deals": 50, "companies": 10, "contacts": 20}, runs=1)
    assert result.unit == "s"
    assert result.goal == f"<= {GOAL_S:g}"
    assert result.value is not None
    assert result.value >= 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc only")
def test_a_step_started_from_a_large_bench_reports_its_own_peak_rss() -> None:
    """The diff step's peak RSS is the step's own, not the bench process's that started it."""
    import subprocess
    import sys

    held = bytearray(400 * 2**20)
    held[::4096] = b"\x01" * len(held[::4096])  # touched: resident in this (the parent) process
    code = "from bench.diff_step import _peak_mib; print(_peak_mib())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    del held
    assert float(out.stdout.strip()) < 200  # a bare interpreter with pandas' import cost, not the 400 MiB
