"""``python -m bench.initial_load``: only the initial-load phase of ``make bench``, on a fresh stack.

Starts the local stack and a fresh Airflow home, runs ``cosell_hubspot_setup``, then
:func:`bench.run.phase_initial_load` (seed ``--records`` opportunities, one ``cosell_reconcile`` load at
time_scale :data:`bench.run.LOAD_SCALE`) and prints the wall-time/floor figure with each task's time.
About 3 minutes at 10,000 records: the quick loop for work on the load's speed.

``--profile FILE`` writes a cProfile of the load's ``dag.test()`` (tasks run in this process) to FILE
(read it with ``python -m pstats FILE``).
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


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, measure, print the figure and the task times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000, help="opportunities to load (10000)")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the load here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    out = measure_initial_load(args.records, args.profile, args.keep)
    ratio = out["ratio"]
    print(f"\nInitial load {args.records:,} opps: wall time / quota floor = {ratio:.3f} (goal <= 1.15)")
    print(f"  wall {out['seconds']:.1f} s, floor {out['floor']:.1f} s")
    for task_id, seconds in out["tasks"].items():
        print(f"  {task_id:<26} {seconds:6.1f} s")
    print(f"  sum of tasks {sum(out['tasks'].values()):.1f} s")
    print(f"  calls: {out['calls']}")
    print(f"  (whole measurement {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
