"""``python -m bench.initial_load``: only the initial-load phase of ``make bench``, on a fresh stack.

Starts the local stack and a fresh Airflow home, runs ``cosell_hubspot_setup``, then
:func:`bench.run.phase_initial_load` (seed ``--records`` opportunities, one ``cosell_reconcile`` load at
time_scale :data:`bench.run.LOAD_SCALE`) and prints the wall-time/floor figure with each task's time.
About 3 minutes at 10,000 records: the quick loop for work on the load's speed.

``--profile FILE`` writes a cProfile of the load's ``dag.test()`` (tasks run in this process) to FILE
(read it with ``python -m pstats FILE``).

``--real-airflow`` runs the same load on a real Airflow instead (api-server, scheduler, dag-processor and
triggerer as subprocesses, LocalExecutor, parallelism 4, on SQLite, as the event-latency bench does): the
production executor, where independent tasks run side by side and each task pays its process start and
hand-off. ``make bench`` keeps ``dag.test()``; this is the measurement any overlap of the load's steps
(issue 11's chunked overlap) has to be judged by, since ``dag.test()`` runs one task at a time.
"""

from __future__ import annotations

import argparse
import cProfile
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import Result
from bench.run import LOAD_SCALE, _configure_airflow, _run_setup, _say, phase_initial_load
from bench.stack import BenchStack, start_stack_process, stop_stack_process


def measure_initial_load(records: int, profile: Path | None = None, keep: bool = False) -> dict[str, Any]:
    """Run the initial load of ``records`` opportunities on a fresh stack; return its figures.

    Args:
        records: opportunities seeded in Partner Central before the load.
        profile: when given, a cProfile of the load run is written there.
        keep: keep the temporary work directory (Airflow home, DAG run logs).

    Returns:
        ``seconds``, ``floor``, ``ratio``, ``tasks`` (task id -> seconds), ``calls`` and ``results``.
    """
    workdir = Path(tempfile.mkdtemp(prefix="cosell-bench-load-"))
    results: list[Result] = []
    migrate = _configure_airflow(workdir)
    proc, urls = start_stack_process()
    try:
        if migrate.wait() != 0:
            raise SystemExit("airflow db migrate failed")
        stack = BenchStack(urls, workdir)
        stack.set_scale(LOAD_SCALE)
        _run_setup(stack)
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        try:
            out = phase_initial_load(stack, records, results)
        finally:
            if profiler:
                profiler.disable()
                profiler.dump_stats(str(profile))
    finally:
        stop_stack_process(proc)
        if keep:
            _say(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    out["ratio"] = out["seconds"] / out["floor"] if out["floor"] else None
    out["results"] = results
    return out


def measure_initial_load_real_airflow(records: int, keep: bool = False) -> dict[str, Any]:
    """The initial load of ``records`` opportunities as one scheduled run on a real Airflow.

    Same stack, seed, time scale and floor as :func:`measure_initial_load`. The wall time is the run's
    own (its ``start_date`` to ``end_date`` in the metadata DB), so the components' start-up is not in
    it; each task's time is its ``start_date`` to ``end_date``, and ``hand-offs`` is the run's time no
    task was running.

    Returns:
        ``seconds``, ``floor``, ``ratio``, ``tasks`` (task id -> seconds), ``calls`` and ``handoffs``.
    """
    from bench.event_latency import _ts
    from bench.quota_math import floor_seconds
    from bench.run import _calls_summary, load_calls
    from bench.stack import CATALOG, connections, scaled_config

    workdir = Path(tempfile.mkdtemp(prefix="cosell-bench-load-real-"))
    # This process's import path and stand-in AWS credentials (the components get their own environment).
    _configure_airflow(workdir).wait()
    from cosell_local.real_airflow import RealAirflow, wait_for

    proc, urls = start_stack_process()
    airflow = RealAirflow(
        workdir / "airflow",
        connections(urls, LOAD_SCALE),
        extra_env={"COSELL_SYNC_CONFIG": str(scaled_config(LOAD_SCALE, workdir))},
    )
    try:
        stack = BenchStack(urls, workdir)
        stack.set_scale(LOAD_SCALE)
        airflow.workdir.mkdir(parents=True, exist_ok=True)
        airflow.prepare()
        airflow.start()
        airflow.wait_ready(("cosell_hubspot_setup", "cosell_reconcile"))
        airflow.unpause("cosell_hubspot_setup")
        setup = airflow.trigger("cosell_hubspot_setup")
        if airflow.wait_run("cosell_hubspot_setup", setup, timeout=300)["state"] != "success":
            raise RuntimeError(f"cosell_hubspot_setup failed; logs in {airflow.workdir}")
        stack.control("pc", "seed", {"opportunities": records, "seed": 6, "catalog": CATALOG})
        stack.reset_calls()
        _say(f"initial load of {records:,} opportunities at time_scale {LOAD_SCALE:g} on a real Airflow ...")
        # Unpaused, the DAG gets its latest scheduled run at once: that run is the load.
        airflow.unpause("cosell_reconcile")
        run = wait_for(lambda: (airflow.runs("cosell_reconcile") or [None])[0], 120, "the scheduled load")
        # Paused only once it is done: the scheduler schedules no task of a paused DAG's runs.
        done = airflow.wait_run("cosell_reconcile", run["dag_run_id"], timeout=1800)
        airflow.pause("cosell_reconcile")
        if done["state"] != "success":
            raise RuntimeError(f"the load ended {done['state']}; logs in {airflow.workdir}")
        pc, hs = stack.calls()
        started, ended = _ts(done["start_date"]), _ts(done["end_date"])
        if started is None or ended is None:
            raise RuntimeError(f"the load's run has no start or end date: {done}")
        tasks: dict[str, float] = {}
        spans: list[tuple[float, float]] = []
        for ti in sorted(
            airflow.task_timings("cosell_reconcile", run["dag_run_id"]), key=lambda t: t["start_date"] or ""
        ):
            a, b = _ts(ti.get("start_date")), _ts(ti.get("end_date"))
            if a is not None and b is not None:
                tasks[ti["task_id"]] = tasks.get(ti["task_id"], 0.0) + b - a
                spans.append((a, b))
        busy, reach = 0.0, started
        for a, b in sorted(spans):  # the union of the tasks' spans: time some task was running
            if b > reach:
                busy += b - max(a, reach)
                reach = b
        floor, _ = floor_seconds(load_calls(records, pc, hs), LOAD_SCALE)
        seconds = ended - started
        return {
            "seconds": seconds,
            "floor": floor,
            "ratio": seconds / floor if floor else None,
            "tasks": tasks,
            "calls": _calls_summary(pc, hs),
            "handoffs": seconds - busy,
        }
    finally:
        airflow.stop()
        stop_stack_process(proc)
        if keep:
            _say(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, measure, print the figure and the task times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000, help="opportunities to load (10000)")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the load here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--real-airflow",
        action="store_true",
        help="run the load on a real Airflow (LocalExecutor), not dag.test()",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.real_airflow:
        out = measure_initial_load_real_airflow(args.records, args.keep)
    else:
        out = measure_initial_load(args.records, args.profile, args.keep)
    ratio = out["ratio"]
    how = "real Airflow, LocalExecutor" if args.real_airflow else "dag.test()"
    print(
        f"\nInitial load {args.records:,} opps ({how}): wall time / quota floor = {ratio:.3f} (goal <= 1.15)"
    )
    print(f"  wall {out['seconds']:.1f} s, floor {out['floor']:.1f} s")
    if "handoffs" in out:
        print(f"  no task running (scheduling, hand-offs): {out['handoffs']:.1f} s")
    for task_id, seconds in out["tasks"].items():
        print(f"  {task_id:<26} {seconds:6.1f} s")
    print(f"  sum of tasks {sum(out['tasks'].values()):.1f} s")
    print(f"  calls: {out['calls']}")
    print(f"  (whole measurement {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
