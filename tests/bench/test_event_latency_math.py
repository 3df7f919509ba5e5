"""The latency bench's arithmetic: nearest-rank percentiles and where one run's time went."""

from __future__ import annotations

from bench.event_latency import breakdown, percentile


def test_nearest_rank_percentiles() -> None:
    samples = [float(s) for s in range(1, 11)]  # 1..10 s
    assert percentile(samples, 50) == 5.0
    assert percentile(samples, 95) == 10.0  # with 10 samples p95 is the slowest
    assert percentile([3.0], 95) == 3.0


def test_breakdown_splits_a_run_into_delivery_pickup_tasks_and_handoffs() -> None:
    changed = 1_767_000_000.0  # epoch seconds of the edit

    def at(seconds: float) -> str:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(changed + seconds, UTC).isoformat().replace("+00:00", "Z")

    run = {"queued_at": at(1.0), "start_date": at(1.2)}
    tasks = [
        {"task_id": "prepare", "start_date": at(1.5), "end_date": at(3.5)},
        {"task_id": "plan", "start_date": at(4.0), "end_date": at(5.0)},
        # two parallel tasks: overlapping, no hand-off between them
        {"task_id": "a", "start_date": at(5.5), "end_date": at(7.0)},
        {"task_id": "b", "start_date": at(5.6), "end_date": at(6.0)},
        {"task_id": "skipped", "start_date": None, "end_date": None},
    ]
    parts = breakdown(run, tasks, changed)
    assert round(parts["delivery"], 3) == 1.0
    assert round(parts["pickup"], 3) == 0.5
    assert round(parts["in_tasks"], 3) == 2.0 + 1.0 + 1.5 + 0.4
    assert round(parts["handoffs"], 3) == 0.5 + 0.5
    assert parts["tasks"] == 4
