"""DAG file parse time: import each DAG file in a process of its own after ``airflow.sdk`` is imported.

That is what the dag-processor pays per file: it has Airflow loaded already and parses each file in a
process of its own. One interpreter imports ``airflow.sdk`` once, then forks a child per measurement, so
every import starts from that state (nothing of the project cached) without paying Airflow's own import
again (3 s a child: 55 fresh interpreters took 3 minutes of ``make bench``). Median of 5 children per file.
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
import importlib.util, json, os, sys, time
import airflow.sdk  # noqa: F401  (already loaded in a dag-processor)
runs = int(sys.argv[1])
out = {}
for path in sys.argv[2:]:
    out[path] = []
    for _ in range(runs):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: import the file once, report, leave without cleanup
            os.close(read)
            started = time.perf_counter()
            spec = importlib.util.spec_from_file_location("bench_parsed_dag", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            os.write(write, json.dumps(time.perf_counter() - started).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            seconds = pipe.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not seconds:
            raise SystemExit(f"parsing {path} failed in its child (status {status})")
        out[path].append(json.loads(seconds))
print(json.dumps(out))
"""


def parse_seconds_all(dag_files: list[Path], runs: int = RUNS) -> dict[Path, list[float]]:
    """Import times of each of ``dag_files``: ``runs`` forked children each, one Airflow-loaded parent."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT, ROOT / "include", ROOT / "plugins")),
    }
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(runs), *(str(f) for f in dag_files)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    times = json.loads(out.stdout.strip().splitlines()[-1])
    return {f: times[str(f)] for f in dag_files}


def parse_seconds(dag_file: Path, runs: int = RUNS) -> list[float]:
    """Import times of ``dag_file`` in ``runs`` forked children of an Airflow-loaded interpreter."""
    return parse_seconds_all([dag_file], runs)[dag_file]


def measure_parse_times(workdir: Path) -> list[Result]:
    """One figure per DAG file (goal <= 0.3 s)."""
    del workdir  # the child processes inherit AIRFLOW_HOME from the bench
    results = []
    for dag_file, times in parse_seconds_all(sorted((ROOT / "dags").glob("*.py"))).items():
        median = statistics.median(times)
        results.append(
            figure(
                f"Parse time dags/{dag_file.name}",
                round(median, 4),
                "s",
                "<=",
                0.3,
                f"median of {RUNS} children forked from an interpreter with airflow.sdk imported (as "
                "the dag-processor parses), timing the file's import "
                f"(min {min(times):.3f} s, max {max(times):.3f} s).",
            )
        )
    return results
