"""Event-to-update latency on a real Airflow, both directions (goal: p95 at most 15 s).

A local stack of its own (``bench.stack_server``: both emulators and moto, quotas at time_scale 1) and a
real Airflow (``cosell_local.real_airflow``: api-server, scheduler, dag-processor, triggerer; SQLite and
the LocalExecutor, as ``make airflow``). After the HubSpot setup and the initial ``cosell_reconcile`` load:

- **Partner Central -> HubSpot**: an AWS-side edit (``LifeCycle.NextSteps``) in the emulator; its
  ``Opportunity Updated`` event is posted by :class:`~cosell_local.real_airflow.EventBridgeRelay` as the
  deployed API destination posts it; the latency ends when the deal's ``aws_next_steps`` reads the value.
- **HubSpot -> Partner Central**: a deal edit (``aws_next_steps``) in the emulator, delivered as a signed
  webhook to the receiver on the API server; the latency ends when ``GetOpportunity`` reads the value.

Samples are taken one at a time (the system idle before each), the other direction's delivery switched
off meanwhile, so the echo run a write causes on the other side does not queue in front of the next
sample. p50 and p95 are nearest-rank over the samples (with 10 samples, p95 is the slowest).

Each figure's note says where the time went, from the run's own timestamps: delivery to the run's
creation, the scheduler picking the run up, the task chain (time in tasks vs. hand-offs between them).

``python -m bench.event_latency`` runs this alone and prints the figures; ``make bench`` runs it as the
``events`` phase (``BENCH_SKIP=events`` skips it; ``BENCH_EVENT_SAMPLES``, default 10, per direction).
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from bench.report import Result, figure, format_table
from bench.stack import HS_TOKEN, connections, start_stack_process, stop_stack_process

GOAL_P95_S = 15.0
TIMEOUT_S = 180
EVENTS = "cosell_events"
HS_HEADERS = {"Authorization": f"Bearer {HS_TOKEN}"}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def breakdown(run: dict[str, Any], tasks: list[dict[str, Any]], changed_at: float) -> dict[str, float]:
    """Where one event run's time went (seconds).

    Args:
        run: the DAG run (REST API shape).
        tasks: its task instances (REST API shape).
        changed_at: epoch seconds of the edit.

    Returns:
        ``delivery`` (edit to run created), ``pickup`` (run created to its first task started),
        ``in_tasks`` (sum of task run times), ``handoffs`` (sum of the gaps from one task's end to the
        next task's start, in start order), ``tasks`` (how many ran).
    """
    ran = sorted(
        (t for t in tasks if t.get("start_date") and t.get("end_date")), key=lambda t: t["start_date"]
    )
    queued = _ts(run.get("queued_at")) or _ts(run.get("start_date")) or changed_at
    first = _ts(ran[0]["start_date"]) if ran else queued
    in_tasks = sum((_ts(t["end_date"]) or 0) - (_ts(t["start_date"]) or 0) for t in ran)
    handoffs = 0.0
    for before, after in itertools.pairwise(ran):
        gap = (_ts(after["start_date"]) or 0) - (_ts(before["end_date"]) or 0)
        handoffs += max(0.0, gap)  # parallel tasks overlap: no gap
    return {
        "delivery": queued - changed_at,
        "pickup": (first or queued) - queued,
        "in_tasks": in_tasks,
        "handoffs": handoffs,
        "tasks": float(len(ran)),
    }


def _median_parts(parts: list[dict[str, float]]) -> str:
    if not parts:
        return "no run timings"
    keys = ("delivery", "pickup", "in_tasks", "handoffs", "tasks")
    med = {k: statistics.median(p[k] for p in parts) for k in keys}
    return (
        f"median per run: delivery to run created {med['delivery']:.1f} s, run created to first task "
        f"{med['pickup']:.1f} s, {med['tasks']:.0f} tasks: {med['in_tasks']:.1f} s inside tasks, "
        f"{med['handoffs']:.1f} s in hand-offs between them"
    )


class _Sampler:
    """The running rig: Airflow, relay, emulator URLs, and the two kinds of edit."""

    def __init__(self, airflow: Any, relay: Any, urls: dict[str, str], secret: str) -> None:
        self.airflow = airflow
        self.relay = relay
        self.urls = urls
        self.secret = secret

    def settle(self) -> None:
        """Wait until webhooks are delivered and no event run is left."""
        from cosell_local.real_airflow import wait_for

        wait_for(
            lambda: (
                requests.get(f"{self.urls['hubspot']}/_emulator/webhooks/deliveries", timeout=10).json()[
                    "pending"
                ]
                == 0
            ),
            120,
            "webhook deliveries",
        )
        time.sleep(0.5)
        self.airflow.wait_idle(EVENTS, timeout=TIMEOUT_S)

    def direction(self, pc_events: bool, webhooks: bool) -> None:
        """Switch each delivery path on or off."""
        from cosell_local.real_airflow import WEBHOOK_PATH, route_deliveries

        route_deliveries(
            self.urls["partner_central"],
            self.urls["hubspot"],
            self.relay.url if pc_events else None,
            f"{self.airflow.url}{WEBHOOK_PATH}" if webhooks else None,
            self.secret,
            batch_window_s=0.05,
        )

    def deal(self, oid: str) -> dict[str, Any]:
        r = requests.post(
            f"{self.urls['hubspot']}/crm/v3/objects/deals/batch/read",
            headers=HS_HEADERS,
            timeout=30,
            json={
                "idProperty": "aws_opportunity_id",
                "inputs": [{"id": oid}],
                "properties": ["aws_next_steps"],
            },
        )
        r.raise_for_status()
        return dict(r.json()["results"][0])

    def pc_next_steps(self, oid: str) -> str | None:
        import boto3

        pc = boto3.client(
            "partnercentral-selling", endpoint_url=self.urls["partner_central"], region_name="us-east-1"
        )
        return pc.get_opportunity(Catalog="AWS", Identifier=oid)["LifeCycle"].get("NextSteps")

    def _newest_run(self, since: float) -> dict[str, Any] | None:
        runs = [r for r in self.airflow.runs(EVENTS) if (_ts(r.get("queued_at")) or 0) >= since - 1]
        return runs[-1] if runs else None

    def sample_pc_to_hs(self, oid: str, n: int) -> tuple[float, dict[str, float] | None]:
        """One AWS-side edit until the deal shows it; (latency, breakdown)."""
        from cosell_local.real_airflow import wait_for

        value = f"bench latency aws {n} {time.time():.0f}"
        changed = time.time()
        requests.post(
            f"{self.urls['partner_central']}/_emulator/simulate/aws-update",
            json={"catalog": "AWS", "identifier": oid, "LifeCycle": {"NextSteps": value}},
            timeout=30,
        ).raise_for_status()
        wait_for(
            lambda: self.deal(oid)["properties"].get("aws_next_steps") == value,
            TIMEOUT_S,
            "the deal",
            every=0.1,
        )
        latency = time.time() - changed
        return latency, self._parts(changed)

    def sample_hs_to_pc(self, oid: str, n: int) -> tuple[float, dict[str, float] | None]:
        """One HubSpot deal edit until Partner Central shows it; (latency, breakdown)."""
        from cosell_local.real_airflow import wait_for

        deal_id = self.deal(oid)["id"]
        value = f"bench latency partner {n} {time.time():.0f}"
        changed = time.time()
        requests.patch(
            f"{self.urls['hubspot']}/crm/v3/objects/deals/{deal_id}",
            headers=HS_HEADERS,
            json={"properties": {"aws_next_steps": value}},
            timeout=30,
        ).raise_for_status()
        wait_for(lambda: self.pc_next_steps(oid) == value, TIMEOUT_S, "the opportunity", every=0.1)
        latency = time.time() - changed
        return latency, self._parts(changed)

    def _parts(self, changed: float) -> dict[str, float] | None:
        self.settle()
        run = self._newest_run(changed)
        if run is None:
            return None
        return breakdown(run, self.airflow.task_timings(EVENTS, run["dag_run_id"]), changed)


def _editable(pc_url: str, ids: list[str]) -> str:
    import boto3

    pc = boto3.client("partnercentral-selling", endpoint_url=pc_url, region_name="us-east-1")
    for oid in ids:
        if pc.get_opportunity(Catalog="AWS", Identifier=oid)["LifeCycle"].get("ReviewStatus") == (
            "Pending Submission"
        ):
            return oid
    raise RuntimeError("no opportunity in Pending Submission in the seeded book")


def _figures(name: str, latencies: list[float], parts: list[dict[str, float]], extra: str) -> list[Result]:
    p50 = percentile(latencies, 50)
    p95 = percentile(latencies, 95)
    note = (
        f"{len(latencies)} samples, one at a time: p50 {p50:.1f} s, p95 {p95:.1f} s, "
        f"min {min(latencies):.1f} s, max {max(latencies):.1f} s. {_median_parts(parts)}. {extra}"
    )
    return [
        figure(f"{name}: event-to-update p95 (real Airflow)", round(p95, 1), "s", "<=", GOAL_P95_S, note),
        figure(f"{name}: event-to-update p50 (real Airflow)", round(p50, 1), "s", note=note),
    ]


def measure_event_latency(workdir: Path, samples: int | None = None) -> list[Result]:
    """Both directions' latency on a real Airflow; a failure is a figure with its reason, not a lost bench."""
    from cosell_local.real_airflow import EventBridgeRelay, RealAirflow, wait_for
    from cosell_local.stack import LOCAL_WEBHOOK_SECRET

    samples = samples or int(os.environ.get("BENCH_EVENT_SAMPLES", "10"))
    # This process reads the emulator with boto3 too: stand-in credentials (nothing here reaches AWS).
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(key, value)
    started = time.monotonic()
    stack_proc, urls = start_stack_process()
    airflow = RealAirflow(workdir / "event_latency", connections(urls, 1.0))
    relay = None
    try:
        airflow.workdir.mkdir(parents=True, exist_ok=True)
        airflow.prepare()
        airflow.start()
        seeded = requests.post(
            f"{urls['partner_central']}/_emulator/seed",
            json={"opportunities": 6, "seed": 11, "catalog": "AWS"},
            timeout=60,
        ).json()["opportunity_ids"]
        airflow.wait_ready(("cosell_events", "cosell_hubspot_setup", "cosell_reconcile"))
        airflow.unpause("cosell_hubspot_setup")
        setup = airflow.trigger("cosell_hubspot_setup")
        if airflow.wait_run("cosell_hubspot_setup", setup, timeout=TIMEOUT_S)["state"] != "success":
            raise RuntimeError("cosell_hubspot_setup failed")
        airflow.unpause("cosell_reconcile")
        wait_for(lambda: airflow.runs("cosell_reconcile"), 60, "the scheduled cosell_reconcile run")
        if any(r["state"] != "success" for r in airflow.wait_idle("cosell_reconcile", timeout=600)):
            raise RuntimeError("the initial cosell_reconcile load failed")
        # No scheduled run at the next half-hour boundary: its lease would delay the sampled event runs.
        airflow.pause("cosell_reconcile")
        oid = _editable(urls["partner_central"], seeded)
        relay = EventBridgeRelay(airflow)
        sampler = _Sampler(airflow, relay, urls, LOCAL_WEBHOOK_SECRET)
        results: list[Result] = []
        for name, events_on, hooks_on, take in (
            ("PC->HubSpot (EventBridge API destination)", True, False, sampler.sample_pc_to_hs),
            ("HubSpot->PC (signed webhook)", False, True, sampler.sample_hs_to_pc),
        ):
            sampler.direction(events_on, hooks_on)
            sampler.settle()
            latencies: list[float] = []
            parts: list[dict[str, float]] = []
            lost = 0
            for n in range(samples):
                try:
                    latency, part = take(oid, n)
                except TimeoutError:
                    # A run that failed (its task logs are in the workdir): counted, not a lost phase.
                    lost += 1
                    print(f"[event latency] {name} sample {n + 1}/{samples}: no update", flush=True)
                    sampler.settle()
                    continue
                latencies.append(latency)
                if part:
                    parts.append(part)
                print(f"[event latency] {name} sample {n + 1}/{samples}: {latency:.1f} s", flush=True)
            if not latencies:
                raise RuntimeError(f"{name}: no sample reached the other side")
            results += _figures(
                name,
                latencies,
                parts,
                f"{lost} sample(s) never updated (run failed). "
                f"LocalExecutor on SQLite, 2 cores shared with the emulators; scheduler settings "
                f"cosell_local.real_airflow.LATENCY_OPTIONS; phase took {time.monotonic() - started:.0f} s.",
            )
        return results
    except Exception as err:  # reported as unmeasured figures with the reason
        reason = f"NOT MEASURED: {type(err).__name__}: {err}; logs in {airflow.workdir}"
        return [
            figure(f"{d}: event-to-update p95 (real Airflow)", None, "s", "<=", GOAL_P95_S, reason)
            for d in ("PC->HubSpot (EventBridge API destination)", "HubSpot->PC (signed webhook)")
        ]
    finally:
        if relay is not None:
            relay.close()
        airflow.stop()
        stop_stack_process(stack_proc)


def main() -> int:
    """``python -m bench.event_latency``: measure and print (does not touch ``bench/results.json``)."""
    workdir = Path(tempfile.mkdtemp(prefix="cosell-latency-"))
    results = measure_event_latency(workdir)
    print()
    print(format_table(results))
    for r in results:
        print(f"\n{r.name}: {r.note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
