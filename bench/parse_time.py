"""DAG file parse time: import each DAG file in a fresh interpreter after ``airflow.sdk`` is imported.

That is what the dag-processor pays per file (it has Airflow loaded already). Median of 5 subprocesses.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.report import Result, figure
from bench.stack import ROOT

RUNS = 5
_CHILD = """
import importlib.util, json, sys, time
import airflow.sdk  # noqa: F401  (already loaded in a dag-processor)
path = sys.argv[1]
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("bench_parsed_dag", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def parse_seconds(dag_file: Path, runs: int = RUNS) -> list[float]:
    """Import times of ``dag_file`` in ``runs`` fresh interpreters."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT, ROOT / "include", ROOT / "plugins")),
    }
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(dag_file)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=True,
        )
        times.append(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
    return times


def measure_parse_times(workdir: Path) -> list[Result]:
    """One figure per DAG file (goal <= 0.3 s)."""
    del workdir  # the child processes inherit AIRFLOW_HOME from the bench
    results = []
    for dag_file in sorted((ROOT / "dags").glob("*.py")):
        times = parse_seconds(dag_file)
        median = statistics.median(times)
        results.append(
            figure(
                f"Parse time dags/{dag_file.name}",
                round(median, 4),
                "s",
                "<=",
                0.3,
                f"median of {RUNS} fresh interpreters, timing the file's import after airflow.sdk is "
                "imported "
                f"(min {min(times):.3f} s, max {max(times):.3f} s).",
            )
        )
    return results
