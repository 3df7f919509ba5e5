"""``make bench``: run every benchmark phase once and write ``bench/results.json``.

Phases, in order (one local stack for the API-economy phases, a second one for quota discipline):

1. ``cosell_hubspot_setup``; seed 10,000 opportunities; the initial ``cosell_reconcile`` load with quotas on
   (time_scale ``LOAD_SCALE``): wall time over the floor the quotas impose.
2. A settling run (it re-lists the load's own writes once), then, while the 5-minute watermark overlap
   passes and this stack is idle: bulk creates and insights (``bench/bulk.py``, a stack of its own):
   ``BENCH_BULK_RECORDS`` (10,000) new co-sell deals in HubSpot, the initial load to Partner Central as
   one bulk job (its Partner Central calls, its wall time at the emulator's processing rate, every deal
   checked to have exactly one opportunity), then a ``full`` run: the ``SearchOpportunities`` calls of its
   AWS insights step; the HubSpot emulator's seed speed, DAG parse time and the diff and mapping step on
   100,000 records.
3. A zero-change incremental run: its API calls; then the same with webhooks, EventBridge events and cached
   settings on (``cosell_sync.polling``).
4. 500 HubSpot company edits, then 500 contact edits, reconcile each: HubSpot calls per changed company and
   per changed contact (issue 13), measured on the settled book (the contact run re-lists the company
   run's writes). Then, while the overlap passes again, Partner Central write spacing under a real
   scheduler (time_scale 1) and event-to-update latency on a real Airflow in both directions
   (``bench/event_latency.py``), each on a stack of its own.
5. 1,000 AWS-side edits, reconcile: calls per changed record, Partner Central -> HubSpot; then 1,000
   HubSpot-side edits, reconcile: calls per changed record, HubSpot -> Partner Central (this run also
   re-lists the 1,000 deals the previous run wrote: that is the steady state).
6. The same 2,000 changed records the per-record way (the seeds' Lambda handlers), same emulators.
7. Only with ``BENCH_SOAK=1`` (else ``make soak``, which keeps the other figures): the soak
   (``bench/soak.py``, a stack of its own): a ``BENCH_SOAK_RECORDS`` (10,000) book with changes on
   both sides under 20% throttling, 5% 5xx, read timeouts and random task failures, then runs until clean:
   records lost, duplicated, and runs needed to converge.

Environment knobs (for development only; ``make bench`` uses the defaults): ``BENCH_BOOK`` (10000),
``BENCH_CHANGES`` (1000), ``BENCH_DIFF_RECORDS`` (100000), ``BENCH_SOAK_RECORDS`` (10000),
``BENCH_BULK_RECORDS`` (10000), ``BENCH_EVENT_SAMPLES`` (10), ``BENCH_SKIP`` (comma list of
``scheduler,events,diff,parse,seed,related,per_record,bulk,soak``; a skipped ``bulk`` or ``soak`` keeps its
last figures).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.quota_math import floor_seconds
from bench.report import Result, figure, format_table, write_results
from bench.stack import (
    CATALOG,
    ROOT,
    BenchStack,
    hs_search,
    output_to,
    pc_reads,
    pc_writes,
    required_list_pages,
    start_stack_process,
    stop_stack_process,
)

#: Quotas on, 10x: the 10,000-record load's floor is ~100 s.
LOAD_SCALE = 10.0
#: Quotas on, 50x, for the change phases and the per-record baseline (1,000 PC writes = 20 s floor).
CHANGE_SCALE = 50.0
#: cosell_reconcile re-reads this much before the watermark (sync_config overlap_minutes).
OVERLAP_S = 5 * 60
RESULTS_PATH = ROOT / "bench" / "results.json"

log = logging.getLogger("bench")


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _configure_airflow(workdir: Path) -> subprocess.Popen[bytes]:
    """Point Airflow at a fresh SQLite home in ``workdir``; start ``airflow db migrate`` (returned)."""
    home = workdir / "airflow"
    home.mkdir(parents=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "ERROR"),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    for path in (ROOT, ROOT / "include", ROOT / "plugins"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    return subprocess.Popen(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )


def _settle(last_write: float, skip: set[str]) -> None:
    """Wait until the 5-minute watermark overlap has passed since ``last_write`` (``zero_wait`` skips)."""
    wait = OVERLAP_S + 5 - (time.monotonic() - last_write)
    if wait > 0 and "zero_wait" not in skip:
        _say(f"waiting {wait:.0f} s for the 5-minute watermark overlap to pass ...")
        time.sleep(wait)


def _quiet_run(stack: BenchStack, conf: dict[str, Any] | None = None) -> tuple[Any, float]:
    """``dag.test()`` with the task logs sent to a file (they print to stdout otherwise)."""
    with output_to(stack.workdir / "dag_runs.log"):
        return stack.run("cosell_reconcile", conf)


def _run_setup(stack: BenchStack) -> None:
    log_path = stack.workdir / "dag_runs.log"
    with open(log_path, "a", encoding="utf-8") as sink:
        saved = os.dup(1), os.dup(2)
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            stack.run("cosell_hubspot_setup")
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _calls_summary(pc: dict[str, Any], hs: dict[str, Any]) -> str:
    ops = ", ".join(f"{k}={v}" for k, v in sorted((pc.get("by_operation") or {}).items()))
    eps = ", ".join(
        f"{k.split(' ', 1)[0]} {k.split('/crm/', 1)[-1]}={v}"
        for k, v in sorted((hs.get("by_endpoint") or {}).items())
    )
    return (
        f"PC [{ops or 'none'}]; HubSpot [{eps or 'none'}]; throttled PC {pc.get('throttled', 0)}, "
        f"HubSpot {hs.get('throttled', 0)}"
    )


# ---------------------------------------------------------------------------------------------------
# phases
# ---------------------------------------------------------------------------------------------------
def load_calls(book: int, pc: dict[str, Any], hs: dict[str, Any]) -> dict[str, float]:
    """The initial load's calls per quota, for its floor: the reads it must make, the rest as counted.

    Args:
        book: opportunities loaded (each read once, plus the ``ListOpportunities`` pages).
        pc: the Partner Central emulator's counters.
        hs: the HubSpot emulator's counters.
    """
    return {
        "partner_central_reads": required_list_pages(book) + book,
        "partner_central_writes": pc_writes(pc),
        "hubspot_requests": hs["total"],
        "hubspot_search": hs_search(hs),
    }


def phase_initial_load(stack: BenchStack, book: int, results: list[Result]) -> dict[str, Any]:
    """Seed ``book`` opportunities and time the initial load against the quota floor."""
    stack.set_scale(LOAD_SCALE)
    stack.control("pc", "seed", {"opportunities": book, "seed": 6, "catalog": CATALOG})
    stack.reset_calls()
    _say(f"initial load of {book:,} opportunities at time_scale {LOAD_SCALE:g} ...")
    run, seconds = _quiet_run(stack)
    pc, hs = stack.calls()
    report = stack.report(run)
    created = report["partner_central_to_hubspot"]["created"]
    task_times = stack.task_seconds(run)
    tasks = ", ".join(f"{k} {v:.0f} s" for k, v in task_times.items())
    calls = load_calls(book, pc, hs)
    required_reads = calls["partner_central_reads"]
    floor, binding = floor_seconds(calls, LOAD_SCALE)
    measured_floor, _ = floor_seconds({**calls, "partner_central_reads": pc_reads(pc)}, LOAD_SCALE)
    ratio = seconds / floor if floor else None
    _say(f"initial load: {seconds:.1f} s, floor {floor:.1f} s ({binding}), {created} deals created")
    results.append(
        figure(
            f"Initial load {book:,} opps: wall time / quota floor",
            round(ratio, 3) if ratio else None,
            "ratio",
            "<=",
            1.15,
            f"time_scale {LOAD_SCALE:g}: wall {seconds:.1f} s (whole dag.test() run, 8 tasks) vs floor "
            f"{floor:.1f} s. floor = max over quotas q of max(0, calls_q - burst_q) / rate_q, with PC reads "
            f"= the {required_reads:,} the load must make ({required_list_pages(book)} ListOpportunities "
            "pages "
            f"+ {book:,} GetOpportunity) at {10 * LOAD_SCALE:g}/s, HubSpot {hs['total']} calls at "
            f"{10 * LOAD_SCALE:g}/s (burst {100 * LOAD_SCALE:g}), search {hs_search(hs)} at "
            f"{5 * LOAD_SCALE:g}/s; "
            f"binding: {binding}. With the calls actually made the floor is {measured_floor:.1f} s. "
            f"Deals created: {created}. Task times: {tasks}. Calls: {_calls_summary(pc, hs)}.",
        )
    )
    # Only the quota-bound part stretches at time_scale 1; the rest (CPU, HubSpot, S3, DynamoDB) does not.
    at_scale_1 = floor * LOAD_SCALE + max(0.0, seconds - floor)
    results.append(
        figure(
            "Initial load: wall time at time_scale 1 (extrapolated)",
            round(at_scale_1 / 60, 1),
            "min",
            note=f"the floor x {LOAD_SCALE:g} ({floor * LOAD_SCALE / 60:.1f} min, bound by Partner Central's "
            f"10 reads/s) plus the {max(0.0, seconds - floor):.1f} s the run took beyond its floor, which "
            "does not scale with the quotas: wall time / floor would be "
            f"{at_scale_1 / max(floor * LOAD_SCALE, 1e-9):.2f} against the real quotas.",
        )
    )
    return {"seconds": seconds, "floor": floor, "tasks": task_times, "calls": _calls_summary(pc, hs)}


def phase_changes(stack: BenchStack, changes: int, results: list[Result]) -> dict[str, Any]:
    """1,000 AWS-side edits then 1,000 HubSpot-side edits, a reconcile after each; calls per record."""
    stack.set_scale(CHANGE_SCALE)
    base = stack.baseline()
    ids = sorted(base.index)
    pc_ids = ids[:: max(1, len(ids) // changes)][:changes]
    chosen = set(pc_ids)
    pending = [o for o in ids if o not in chosen and str(base.at[o, "review_status"]) == "Pending Submission"]
    hs_ids = pending[:changes]
    out: dict[str, Any] = {
        "pc_ids": pc_ids,
        "hs_ids": hs_ids,
        "deal_of": base["deal_id"].astype(str).to_dict(),
    }

    # -- Partner Central -> HubSpot ---------------------------------------------------------------------
    stack.edit_partner_central(pc_ids, "bench-a")
    stack.reset_calls()
    _say(f"{len(pc_ids)} AWS-side edits: reconcile at time_scale {CHANGE_SCALE:g} ...")
    run, seconds_a = _quiet_run(stack)
    pc, hs = stack.calls()
    rep = stack.report(run)
    n = len(pc_ids)
    updated = rep["partner_central_to_hubspot"]["updated"]
    _say(f"  {seconds_a:.1f} s, HubSpot updated {updated}; {_calls_summary(pc, hs)}")
    results.append(
        figure(
            f"PC->HS: HubSpot calls per changed deal ({n:,} of {len(ids):,})",
            round(hs["total"] / n, 4),
            "calls",
            "<=",
            0.03,
            f"{hs['total']} HubSpot calls for {n} opportunities edited on the AWS side ({updated} deals "
            "updated, "
            f"one note each). Calls: {_calls_summary(pc, hs)}.",
        )
    )
    results.append(
        figure(
            "PC->HS: Partner Central reads per changed opportunity",
            round(pc_reads(pc) / n, 4),
            "calls",
            "<=",
            1.1,
            f"{pc_reads(pc)} reads ({pc_writes(pc)} writes) for {n} changed opportunities in a "
            f"{len(ids):,} book.",
        )
    )
    out["ours_a"] = {"seconds": seconds_a, "pc": pc, "hs": hs}

    # -- HubSpot -> Partner Central ---------------------------------------------------------------------
    stack.edit_hubspot([out["deal_of"][o] for o in hs_ids], "bench-b")
    _say(f"{len(hs_ids)} HubSpot-side edits (Pending Submission records): reconcile ...")
    run, seconds_b = _quiet_run(stack)
    pc, hs = stack.calls()
    rep = stack.report(run)
    n = len(hs_ids)
    to_pc = rep["hubspot_to_partner_central"]
    _say(f"  {seconds_b:.1f} s, PC updated {to_pc['updated']}; {_calls_summary(pc, hs)}")
    results.append(
        figure(
            f"HS->PC: HubSpot calls per changed deal ({n:,} of {len(ids):,})",
            round(hs["total"] / n, 4),
            "calls",
            "<=",
            0.03,
            f"{hs['total']} HubSpot calls for {n} deals edited in HubSpot ({to_pc['updated']} opportunities "
            f"updated, {to_pc['deferred']} deferred, {to_pc['failed']} failed). The search window re-lists "
            "the "
            f"previous run's writes (overlap). Calls: {_calls_summary(pc, hs)}.",
        )
    )
    results.append(
        figure(
            "HS->PC: Partner Central reads per changed opportunity",
            round(pc_reads(pc) / n, 4),
            "calls",
            "<=",
            1.1,
            f"{pc_reads(pc)} reads: GetOpportunity before each full-record update (UpdateOpportunity needs "
            "the "
            f"current record and LastModifiedDate) plus ListOpportunities pages of the window.",
        )
    )
    results.append(
        figure(
            "HS->PC: Partner Central writes per changed opportunity",
            round(pc_writes(pc) / n, 4),
            "calls",
            "<=",
            1.0,
            f"{pc_writes(pc)} UpdateOpportunity for {n} changed deals; 1.0 is the floor (no batch write "
            f"exists). At 1 write/s the direction is quota-bound: {n} writes = {n / 60:.1f} min at "
            "time_scale 1.",
        )
    )
    out["ours_b"] = {"seconds": seconds_b, "pc": pc, "hs": hs}
    return out


def phase_related(stack: BenchStack, changes: int, results: list[Result]) -> None:
    """Companies and contacts edited in HubSpot (issue 13): calls per changed company and per contact.

    The edited objects belong to Pending Submission records (the others are gated), so each reaches its
    linked opportunity: one GetOpportunity and one full-record UpdateOpportunity per opportunity, which
    the figure's note reports apart from the HubSpot calls the goal is about.
    """
    stack.set_scale(CHANGE_SCALE)
    base = stack.baseline()
    pending = base[base["review_status"].astype(str) == "Pending Submission"]
    for spec_plural, column, prop, label in (
        ("companies", "company_id", "city", "company"),
        ("contacts", "contact_id", "jobtitle", "contact"),
    ):
        if column not in pending.columns:
            _say(f"  no {column} in the baseline: the {label} phase is skipped")
            continue
        owners = pending[column].dropna().astype(str)
        chosen = sorted(set(owners))[:changes]
        linked = int(owners.isin(chosen).sum())
        stack.edit_hubspot_objects(spec_plural, chosen, prop, f"bench-{label}")
        _say(f"{len(chosen)} HubSpot {label} edits ({linked} linked opportunities): reconcile ...")
        run, seconds = _quiet_run(stack)
        pc, hs = stack.calls()
        to_pc = stack.report(run)["hubspot_to_partner_central"]
        n = max(len(chosen), 1)
        _say(f"  {seconds:.1f} s, PC updated {to_pc['updated']}; {_calls_summary(pc, hs)}")
        results.append(
            figure(
                f"HS->PC: HubSpot calls per changed {label} ({len(chosen):,} of {len(base):,} records)",
                round(hs["total"] / n, 4),
                "calls",
                "<=",
                0.05,
                f"{hs['total']} HubSpot calls for {len(chosen)} {label} edits ({prop}) reaching {linked} "
                f"linked opportunities; Partner Central: {pc_reads(pc)} reads, {pc_writes(pc)} writes "
                f"({pc_writes(pc) / n:.2f} per {label}: one full-record UpdateOpportunity per linked "
                f"opportunity); {to_pc['updated']} updated, {to_pc['deferred']} deferred, {to_pc['failed']} "
                f"failed; {seconds:.1f} s at time_scale {CHANGE_SCALE:g}. Calls: {_calls_summary(pc, hs)}.",
            )
        )


def phase_per_record(stack: BenchStack, changed: dict[str, Any], results: list[Result]) -> None:
    """The same changed records, the per-record (Lambda) way; ratios to ours."""
    from bench.per_record import run_per_record

    stack.set_scale(CHANGE_SCALE)
    stack.reset_calls()
    records = [(o, changed["deal_of"][o]) for o in changed["pc_ids"] + changed["hs_ids"]]
    _say(f"per-record baseline over {len(records)} changed records at time_scale {CHANGE_SCALE:g} ...")
    seconds, refused = run_per_record(stack, records)
    pc, hs = stack.calls()
    theirs = pc["total"] + hs["total"]
    a, b = changed["ours_a"], changed["ours_b"]
    ours = a["pc"]["total"] + a["hs"]["total"] + b["pc"]["total"] + b["hs"]["total"]
    ours_s = a["seconds"] + b["seconds"]
    _say(f"  per-record: {theirs} calls in {seconds:.1f} s; ours {ours} calls in {ours_s:.1f} s")
    results.append(
        figure(
            "Per-record way: API calls, ratio to ours",
            round(theirs / ours, 2) if ours else None,
            "x",
            note=f"Per-record: {theirs} calls ({pc['total']} PC, {hs['total']} HubSpot: one HubSpot GET + "
            "PATCH and "
            f"one GetOpportunity + UpdateOpportunity per record, paced to the same quotas, {len(records)} "
            "records) vs "
            f"ours {ours} (the two reconcile runs above). {refused} updates were refused (review in "
            "progress).",
        )
    )
    floor_theirs, _ = floor_seconds(
        {
            "partner_central_writes": pc_writes(pc),
            "partner_central_reads": pc_reads(pc),
            "hubspot_requests": hs["total"],
        },
        1.0,
    )
    floor_ours, _ = floor_seconds(
        {
            "partner_central_writes": pc_writes(a["pc"]) + pc_writes(b["pc"]),
            "partner_central_reads": pc_reads(a["pc"]) + pc_reads(b["pc"]),
            "hubspot_requests": a["hs"]["total"] + b["hs"]["total"],
            "hubspot_search": hs_search(a["hs"]) + hs_search(b["hs"]),
        },
        1.0,
    )
    results.append(
        figure(
            "Per-record way: quota-floor time at time_scale 1, ratio to ours",
            round(floor_theirs / floor_ours, 2) if floor_ours else None,
            "x",
            note=f"The least time the real quotas allow for each approach's calls: per-record "
            f"{floor_theirs / 60:.1f} min vs ours {floor_ours / 60:.1f} min (both bound by Partner Central "
            f"writes at 1/s; ours writes only the records changed in HubSpot).",
        )
    )
    results.append(
        figure(
            "Per-record way: wall time, ratio to ours",
            round(seconds / ours_s, 2) if ours_s else None,
            "x",
            note=f"Per-record {seconds:.1f} s vs ours {ours_s:.1f} s (two whole dag.test() runs incl. "
            "Airflow "
            f"overhead) at time_scale {CHANGE_SCALE:g}. Per-record is bound by its {pc_writes(pc)} PC "
            "writes at "
            f"1/s (x{CHANGE_SCALE:g}); ours by {pc_writes(b['pc'])} (only records changed in HubSpot are "
            "written).",
        )
    )


#: The polling switches of cosell_sync.polling, all on (sync_config.yaml ships them off).
EVENTS_ON: dict[str, dict[str, Any]] = {
    "webhooks": {"enabled": True},
    "events": {"enabled": True},
    "settings": {"refresh_minutes": 60},
}


def phase_zero_change(stack: BenchStack, results: list[Result]) -> None:
    """A settling run, then a run with nothing changed: its API calls, shipped config and events on.

    "Events on": webhooks, EventBridge and cached settings (``EVENTS_ON``), within their backstops.
    """
    stack.set_scale(CHANGE_SCALE)
    _say("settling run (picks up the per-record writes) ...")
    _quiet_run(stack)
    stack.reset_calls()
    _say("zero-change incremental run ...")
    _, seconds = _quiet_run(stack)
    pc, hs = stack.calls()
    total = pc["total"] + hs["total"]
    _say(f"  zero-change run: {total} calls in {seconds:.1f} s; {_calls_summary(pc, hs)}")
    results.append(
        figure(
            f"Zero-change incremental run, {len(stack.baseline()):,}-record book: API calls",
            total,
            "calls",
            "<=",
            3,
            "Nothing changed on either side since a quiet run that started more than the 5-minute overlap "
            "after "
            f"the last write. Calls: {_calls_summary(pc, hs)}. Run wall time {seconds:.1f} s.",
        )
    )
    # The same run once the event paths deliver what three of those calls poll for (cosell_sync.polling):
    # webhooks (companies, contacts), EventBridge (invitations), settings read at most hourly.
    _use_events_on_config()
    _say("zero-change incremental run with webhooks, events and cached settings on ...")
    _quiet_run(stack)  # the first run with the switches reads the settings once and keeps them
    stack.reset_calls()
    _, seconds = _quiet_run(stack)
    pc, hs = stack.calls()
    total = pc["total"] + hs["total"]
    _say(f"  zero-change run, events on: {total} calls in {seconds:.1f} s; {_calls_summary(pc, hs)}")
    results.append(
        figure(
            f"Zero-change incremental run, {len(stack.baseline()):,}-record book, webhooks and events on: "
            "API calls",
            total,
            "calls",
            "<=",
            2,
            "webhooks.enabled, events.enabled, settings.refresh_minutes 60, within their backstops. "
            f"Calls: {_calls_summary(pc, hs)}. Run wall time {seconds:.1f} s.",
        )
    )
    stack.set_scale(CHANGE_SCALE)  # back to the shipped switches for the phases after this one


def _use_events_on_config() -> None:
    """Point ``COSELL_SYNC_CONFIG`` at the current config with every polling switch on."""
    import yaml

    path = Path(os.environ["COSELL_SYNC_CONFIG"])
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for section, values in EVENTS_ON.items():
        data.setdefault(section, {}).update(values)
    switched = path.with_name(f"{path.stem}_events_on.yaml")
    switched.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    os.environ["COSELL_SYNC_CONFIG"] = str(switched)


def _soak(workdir: Path, records: int) -> list[Result]:
    """The soak on a stack of its own; a soak that breaks down is a figure, not a lost bench."""
    from bench.soak import SOAK_PREFIX, SoakSettings, soak_phase

    _say(f"soak: {records:,}-record book, changes on both sides, under faults, then until clean ...")
    try:
        results, _ = soak_phase(workdir, SoakSettings(records=records))
    except Exception as err:  # reported as a failed figure with its reason
        log.exception("soak failed")
        return [figure(f"{SOAK_PREFIX}completed", None, "", "<=", 0, f"The soak failed: {err!r}")]
    return results


def _bulk(workdir: Path, records: int) -> list[Result]:
    """Bulk creates and insights on a stack of its own; a phase that breaks down is a failed figure."""
    from bench.bulk import BulkSettings, bulk_phase

    _say(f"bulk: {records:,} new co-sell deals -> Partner Central as one bulk job, then AWS insights ...")
    started = time.monotonic()
    try:
        results, _ = bulk_phase(workdir, BulkSettings(records=records))
    except Exception as err:  # reported as a failed figure with its reason
        log.exception("bulk phase failed")
        return [
            figure(
                f"Initial load {records:,} co-sell deals -> Partner Central with a bulk job: completed",
                None,
                "",
                "<=",
                0,
                f"The bulk phase failed: {err!r}",
            )
        ]
    _say(f"  bulk phase: {time.monotonic() - started:.0f} s")
    return results


# ---------------------------------------------------------------------------------------------------
def main() -> int:
    """Run every phase; write and print the results. Returns the exit code (0 even if goals are missed)."""
    started = time.monotonic()
    book = int(os.environ.get("BENCH_BOOK", "10000"))
    changes = int(os.environ.get("BENCH_CHANGES", "1000"))
    diff_records = int(os.environ.get("BENCH_DIFF_RECORDS", "100000"))
    skip = {s.strip() for s in os.environ.get("BENCH_SKIP", "").split(",") if s.strip()}
    workdir = Path(tempfile.mkdtemp(prefix="cosell-bench-"))
    results: list[Result] = []
    migrate = _configure_airflow(workdir)
    proc, urls = start_stack_process()
    try:
        if migrate.wait() != 0:
            raise SystemExit("airflow db migrate failed")
        stack = BenchStack(urls, workdir)
        stack.set_scale(LOAD_SCALE)
        _run_setup(stack)
        phase_initial_load(stack, book, results)
        # The next run always re-lists what the previous run wrote (its writes are newer than its
        # watermark), and the 5-minute overlap re-lists anything written within 5 minutes before it.
        # Steady state is a run after a quiet run that started > 5 minutes after the last write: settle
        # the load's own writes once, do the independent measurements while the overlap passes, then
        # measure zero-change and the change runs from there.
        stack.set_scale(CHANGE_SCALE)
        _say("settling run after the load (re-lists the load's own 10,000 writes once) ...")
        _quiet_run(stack)
        last_write = time.monotonic()

        # Each reconcile figure is measured on a settled book: no write of an earlier phase inside the
        # 5-minute overlap, which the next run would list again and count against the phase. The
        # independent measurements fill those waits: first the bulk phase, on a stack of its own while
        # this one is idle (the two never work at once on the 2 cores).
        if "bulk" not in skip:
            results.extend(_bulk(workdir, int(os.environ.get("BENCH_BULK_RECORDS", "10000"))))
        if "seed" not in skip:
            from bench.emulator_seed import measure_seed_speed

            _say("HubSpot emulator seed speed ...")
            results.extend(measure_seed_speed())
        if "parse" not in skip:
            from bench.parse_time import measure_parse_times

            _say("DAG parse times ...")
            results.extend(measure_parse_times(workdir))
        if "diff" not in skip:
            from bench.diff_step import measure_diff_step

            _say(f"diff and mapping step on {diff_records:,} records (subprocess) ...")
            results.extend(measure_diff_step(diff_records))
        _settle(last_write, skip)
        phase_zero_change(stack, results)
        if "related" not in skip:
            phase_related(stack, int(os.environ.get("BENCH_RELATED_CHANGES", "500")), results)
            last_write = time.monotonic()
        if "scheduler" not in skip:
            from bench.scheduler import measure_write_spacing

            _say("Partner Central write spacing under a real scheduler (time_scale 1) ...")
            results.extend(measure_write_spacing(workdir))
        if "events" not in skip:
            from bench.event_latency import measure_event_latency

            _say("event-to-update latency on a real Airflow, both directions ...")
            results.extend(measure_event_latency(workdir))
        _settle(last_write, skip)
        # A run's window starts 5 minutes before the previous run's: one quiet run now, so the change
        # runs do not list the related phase's edits again.
        _say("settling run (picks up the company and contact phase's writes) ...")
        _quiet_run(stack)
        changed = phase_changes(stack, changes, results)
        if "per_record" not in skip:
            phase_per_record(stack, changed, results)
    finally:
        stop_stack_process(proc)
    elapsed = time.monotonic() - started
    results.append(
        figure(
            "make bench wall time",
            round(elapsed / 60, 1),
            "min",
            "<=",
            20,
            "Every phase `make bench` runs, 2 cores (the soak is `make soak`, its wall time its own figure).",
        )
    )
    from bench.bulk import is_bulk_figure
    from bench.soak import SOAK_PREFIX

    kept: list[dict[str, Any]] = []
    if "bulk" in skip:
        kept += _previous_figures(is_bulk_figure)
    if os.environ.get("BENCH_SOAK") == "1" and "soak" not in skip:
        # The soak is a fault test of its own (``make soak``, 15-25 minutes): only on request here.
        results.extend(_soak(workdir, int(os.environ.get("BENCH_SOAK_RECORDS", "10000"))))
    else:
        kept += _previous_figures(lambda name: name.startswith(SOAK_PREFIX))
    write_results(results, RESULTS_PATH)
    if kept:
        # A skipped phase keeps its last measured figures (the soak takes 15-25 minutes to measure again).
        RESULTS_PATH.write_text(
            json.dumps(json.loads(RESULTS_PATH.read_text(encoding="utf-8")) + kept, indent=2) + "\n",
            encoding="utf-8",
        )
    print()
    print(format_table(results))
    print(f"\nresults: {RESULTS_PATH.relative_to(ROOT)}   logs of the DAG runs: {workdir / 'dag_runs.log'}")
    if os.environ.get("BENCH_KEEP") != "1":
        shutil.rmtree(workdir / "airflow", ignore_errors=True)
    return 0


def _previous_figures(is_phase: Callable[[str], bool], path: Path = RESULTS_PATH) -> list[dict[str, Any]]:
    """The figures of one phase ``path`` holds now (kept when ``BENCH_SKIP`` names the phase).

    Args:
        is_phase: whether a figure name belongs to the phase (``bench.soak.SOAK_PREFIX``,
            ``bench.bulk.is_bulk_figure``).
        path: the results file.
    """
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [r for r in data if is_phase(str(r.get("name", "")))]
