"""Bulk creates and AWS insights at scale: ``python -m bench.bulk [--records 10000]``.

``make bench`` runs it as a phase on a stack of its own (skip key ``bulk``). Steps:

1. ``cosell_hubspot_setup``; ``records`` HubSpot deals seeded through the emulator's seed control (no API
   call), opted in to co-sell (``aws_sync_enabled``) and naming a partner solution (``aws_solution_ids``),
   spread over the four stages a new opportunity is created at in one write (Prospect to Business
   Validation). Deals at Committed or Launched need a solution association and a second write each, and
   deals at the submit stage a submission each: single-record calls the bulk job does not replace, so they
   are left out of this figure.
2. Quotas on at ``time_scale`` (as the 10,000-opportunity initial load), the emulator processing bulk
   records at ``rate`` a second, ``bulk.poll_seconds`` set to ``poll_seconds``. One ``cosell_reconcile``:
   the creates go as one ``StartOpportunityBulkJob`` whose wait defers to a trigger. Its Partner Central
   calls by operation are read from the emulator's counters (the trigger's ``ListOpportunityBulkJobs``
   polls included); its wall time is set beside the rate's floor and the single-create path.
3. Checked from the emulators: every deal has exactly one opportunity (counted by
   ``PartnerOpportunityIdentifier``) and links it (``aws_opportunity_id``); anything lost or duplicated
   fails the figures.
4. AWS approves and scores ``insight_share`` of the opportunities (``/_emulator/simulate/aws-update``,
   ``/_emulator/simulate/insights``: a partner-created opportunity has no insights before); one
   ``cosell_reconcile`` with ``{"mode": "full"}``: the ``SearchOpportunities`` calls of its
   ``sync_insights`` step, taken from that step's own result (``api_calls``), and checked against the
   emulator's counter (no other step of a run without creates searches).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from bench.report import Result, figure, format_table
from bench.soak import hs_objects
from bench.stack import CATALOG, HS_TOKEN, ROOT, BenchStack, output_to, scaled_config

RESULTS_PATH = ROOT / "bench" / "results.json"
#: Figure names of this module contain one of these (the soak's are told apart by a prefix instead).
BULK_MARKERS = ("with a bulk job:", "AWS insights for ")
#: HubSpot stages whose opportunity is created in one write (Prospect .. Business Validation): no
#: solution association, no held-back stage, no submission.
ONE_WRITE_STAGES = (
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
)
#: An active solution of the Partner Central emulator's catalog, named on every seeded deal.
SOLUTION_ID = "S-1000001"
#: The single-create path: Partner Central's write quota (CreateOpportunity, one record per call).
WRITES_PER_SECOND = 1.0
#: Insights: ``SearchOpportunities`` returns 100 opportunities per call.
SEARCH_PAGE = 100
#: Engagement scores AWS gives the re-scored opportunities, in turn.
SCORES = ("High", "Medium", "Low")
#: Goal for the initial load's Partner Central calls, set for 10,000 records (results pages grow by one
#: per 1,000 records, the wait's polls with records / rate / poll_seconds).
LOAD_CALLS_GOAL = 30
_HEADERS = {"Authorization": f"Bearer {HS_TOKEN}"}


@dataclass
class BulkSettings:
    """What the phase does; the defaults are the ``make bench`` phase.

    Attributes:
        records: co-sell deals created in HubSpot (and so opportunities created by the bulk job).
        rate: bulk records the Partner Central emulator processes per second (``bulk_records_per_second``).
        poll_seconds: ``bulk.poll_seconds``: the deferred wait's interval between two status reads.
        time_scale: quotas (emulators and client pacing) sped up this much for the load (as the
            10,000-opportunity initial load of ``make bench``).
        insights_time_scale: the same for the full run that measures insights (it reads every
            opportunity once; its speed is not a figure).
        insight_share: share of the opportunities AWS re-scores before the insights run.
        seed: the HubSpot seed.
    """

    records: int = 10_000
    rate: float = 100.0
    poll_seconds: float = 10.0
    time_scale: float = 10.0
    insights_time_scale: float = 50.0
    insight_share: float = 1.0
    seed: int = 12

    @property
    def min_records(self) -> int:
        """``bulk.min_records`` for the run: the shipped 200, lower for a small book (always a bulk job)."""
        return max(0, min(200, self.records - 1))

    @property
    def insight_count(self) -> int:
        """Opportunities AWS re-scores (at least one)."""
        return max(1, int(self.records * self.insight_share))


@dataclass
class BulkFigures:
    """What the phase measured.

    Attributes:
        records: co-sell deals seeded.
        load_seconds: wall seconds of the load run (``dag.test()``).
        task_seconds: wall seconds per task of the load run.
        load_pc_calls: Partner Central calls of the load run by operation (emulator counters).
        load_hs_calls: HubSpot calls of the load run by endpoint (emulator counters).
        load_insights: the load run's ``sync_insights`` result (its scan is part of the run's calls).
        load_report: the load run's Partner Central counts (``hubspot_to_partner_central`` of report.json).
        bulk_jobs: the opportunity bulk jobs in the catalog after the load (status and counts).
        opportunities: opportunities in the catalog after the load.
        lost: deals without their one opportunity, or not linked to it.
        lost_examples: up to 20 of them, with what is wrong.
        duplicated: extra opportunities per deal plus extra deals per opportunity.
        duplicate_examples: up to 20 of them.
        insights_expected: opportunities AWS re-scored.
        insights: the full run's ``sync_insights`` result (``read``, ``changed``, ``written``, ``api_calls``).
        insights_counter: ``SearchOpportunities`` the emulator counted during the full run, less the
            ``sync_tags`` step's own (its full-refresh scan, from its result ``tags``).
        tags: the full run's ``sync_tags`` result (``api_calls``).
        insights_deals_checked: re-scored opportunities whose deal holds the new engagement score.
        full_pc_calls: Partner Central calls of the whole full run by operation.
        full_seconds: wall seconds of the full run.
        seconds: wall seconds per step.
    """

    records: int
    load_seconds: float = 0.0
    task_seconds: dict[str, float] = field(default_factory=dict)
    load_pc_calls: dict[str, int] = field(default_factory=dict)
    load_hs_calls: dict[str, int] = field(default_factory=dict)
    load_insights: dict[str, Any] = field(default_factory=dict)
    load_report: dict[str, Any] = field(default_factory=dict)
    bulk_jobs: list[dict[str, Any]] = field(default_factory=list)
    opportunities: int = 0
    lost: int = 0
    lost_examples: list[str] = field(default_factory=list)
    duplicated: int = 0
    duplicate_examples: list[str] = field(default_factory=list)
    insights_expected: int = 0
    insights: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    insights_counter: int = 0
    insights_deals_checked: int = 0
    full_pc_calls: dict[str, int] = field(default_factory=dict)
    full_seconds: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def load_calls(self) -> int:
        """Partner Central calls of the load run, every operation."""
        return sum(self.load_pc_calls.values())

    @property
    def insights_calls(self) -> int | None:
        """``SearchOpportunities`` calls of the full run's ``sync_insights`` step (None: not measured)."""
        calls = self.insights.get("api_calls")
        return None if calls is None else int(calls.get("SearchOpportunities", 0))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {**asdict(self), "load_calls": self.load_calls, "insights_calls": self.insights_calls}


def _say(message: str) -> None:
    print(f"[bulk {time.strftime('%H:%M:%S')}] {message}", flush=True)


def is_bulk_figure(name: str) -> bool:
    """Whether a figure of ``bench/results.json`` is one of this module's."""
    return any(marker in name for marker in BULK_MARKERS)


# ---------------------------------------------------------------------------------------------------
# the stack
# ---------------------------------------------------------------------------------------------------
def _use_scale(stack: BenchStack, time_scale: float, settings: BulkSettings) -> None:
    """Quotas at ``time_scale`` (both emulators and the clients' pacing) and the phase's bulk settings.

    ``BenchStack.set_scale`` points ``COSELL_SYNC_CONFIG`` at the shipped config with scaled quotas; the
    phase's copy of it adds the bulk poll interval and threshold.
    """
    stack.set_scale(time_scale)
    data = yaml.safe_load(scaled_config(time_scale, stack.workdir).read_text(encoding="utf-8"))
    data["bulk"] = {
        **(data.get("bulk") or {}),
        "enabled": True,
        "min_records": settings.min_records,
        "poll_seconds": settings.poll_seconds,
    }
    path = stack.workdir / f"sync_config_bulk_x{time_scale:g}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    # Every task's load_config() and the deferred wait's poll interval read this file.
    os.environ["COSELL_SYNC_CONFIG"] = str(path)


@contextlib.contextmanager
def _quotas_off(stack: BenchStack) -> Iterator[None]:
    """The bench's own reads (checking both sides) are not the sync's: no quota for the block.

    They are counted: callers read the counters before and reset them before the next measured run.
    """
    for service in ("pc", "hs"):
        stack.control(service, "quotas", {"enabled": False})
    try:
        yield
    finally:
        for service in ("pc", "hs"):
            stack.control(service, "quotas", {"enabled": True, "time_scale": stack.time_scale})


@contextlib.contextmanager
def _tags_result(out: dict[str, Any]) -> Iterator[None]:
    """Capture the ``sync_tags`` step's own result (with its ``api_calls``) into ``out``."""
    from cosell_runtime import tasks

    real = tasks.reconcile_sync_tags

    def step(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        out.clear()
        out.update(result or {})
        return result

    tasks.reconcile_sync_tags = step
    try:
        yield
    finally:
        tasks.reconcile_sync_tags = real


@contextlib.contextmanager
def _insights_result(out: dict[str, Any]) -> Iterator[None]:
    """Capture the ``sync_insights`` step's own result (with its ``api_calls``) into ``out``.

    ``report.json`` keeps the step's counts but merges its API calls with every other step's; the step's
    result has them alone. ``dag.test()`` runs the tasks in this process, so a wrapper sees it.
    """
    from cosell_runtime import tasks

    real = tasks.reconcile_sync_insights

    def step(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        out.clear()
        out.update(result or {})
        return result

    tasks.reconcile_sync_insights = step
    try:
        yield
    finally:
        tasks.reconcile_sync_insights = real


def _run(stack: BenchStack, conf: dict[str, Any] | None = None) -> tuple[Any, float]:
    """One ``cosell_reconcile`` with its task logs in ``bulk_runs.log``; raises unless it succeeded."""
    with output_to(stack.workdir / "bulk_runs.log"):
        return stack.run("cosell_reconcile", conf)


def _by_operation(calls: dict[str, Any]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted((calls.get("by_operation") or {}).items())}


# ---------------------------------------------------------------------------------------------------
# setting up the book
# ---------------------------------------------------------------------------------------------------
def seed_cosell_deals(stack: BenchStack, settings: BulkSettings) -> list[str]:
    """``records`` co-sell deals naming a solution, over the one-write stages; returns their ids.

    The seed control creates them with their companies and contacts without an API call; the stages are
    then spread by batch updates (100 deals a call).
    """
    n = settings.records
    seeded = stack.control(
        "hs",
        "seed",
        {
            "deals": n,
            "companies": max(1, n // 5),
            "contacts": max(1, 2 * n // 5),
            "seed": settings.seed,
            "deal_properties": {"aws_sync_enabled": "true", "aws_solution_ids": SOLUTION_ID},
        },
    )
    deal_ids = [str(d) for d in seeded["deals"]]
    session = requests.Session()
    for start in range(0, len(deal_ids), 100):
        chunk = deal_ids[start : start + 100]
        inputs = [
            {"id": d, "properties": {"dealstage": ONE_WRITE_STAGES[(start + i) % len(ONE_WRITE_STAGES)]}}
            for i, d in enumerate(chunk)
        ]
        r = session.post(
            f"{stack.hs_url}/crm/v3/objects/deals/batch/update",
            headers=_HEADERS,
            json={"inputs": inputs},
            timeout=60,
        )
        r.raise_for_status()
    return deal_ids


# ---------------------------------------------------------------------------------------------------
# checking both sides
# ---------------------------------------------------------------------------------------------------
def _store(stack: BenchStack) -> dict[str, Any]:
    """The catalog's state in the Partner Central emulator (opportunities, bulk jobs), without an API call."""
    state = stack.control("pc", "state", method="GET")
    return dict((state.get("stores") or {}).get(CATALOG) or {})


def check_links(
    stack: BenchStack, deal_ids: list[str], opps: dict[str, dict[str, Any]]
) -> tuple[list[str], list[str]]:
    """Each deal must have exactly one opportunity and link it; nothing else may have been created.

    Args:
        stack: the stack.
        deal_ids: the co-sell deals.
        opps: every opportunity of the catalog (:func:`_store`).

    Returns:
        (lost: one line per deal with what is wrong, duplicates: one line per extra record).
    """
    with _quotas_off(stack):
        deals = hs_objects(stack, "deals", ["aws_opportunity_id"])
    wanted = set(deal_ids)
    by_partner_id: dict[str, list[str]] = {}
    unasked: list[str] = []
    for oid, opp in opps.items():
        pid = str(opp.get("PartnerOpportunityIdentifier") or "").strip()
        if pid in wanted:
            by_partner_id.setdefault(pid, []).append(oid)
        else:
            unasked.append(oid)
    link = {
        str(d["id"]): (d["properties"].get("aws_opportunity_id") or "").strip()
        for d in deals
        if str(d["id"]) in wanted
    }
    deals_per_opp = Counter(v for v in link.values() if v)
    lost: list[str] = []
    for deal_id in deal_ids:
        made = by_partner_id.get(deal_id, [])
        if not made:
            lost.append(f"deal {deal_id}: no opportunity")
        elif link.get(deal_id) not in made:
            lost.append(f"deal {deal_id}: links {link.get(deal_id)!r}, its opportunities {made}")
    duplicates = [f"deal {p}: {len(v)} opportunities {v}" for p, v in by_partner_id.items() if len(v) > 1]
    duplicates += [f"opportunity {o}: linked by {n} deals" for o, n in deals_per_opp.items() if n > 1]
    duplicates += [f"opportunity {o}: no deal asked for it" for o in unasked]
    return lost, duplicates


def _deal_scores(stack: BenchStack, deal_ids: list[str]) -> dict[str, str]:
    """``aws_engagement_score`` of each deal (batch reads, quotas off)."""
    out: dict[str, str] = {}
    session = requests.Session()
    with _quotas_off(stack):
        for start in range(0, len(deal_ids), 100):
            r = session.post(
                f"{stack.hs_url}/crm/v3/objects/deals/batch/read",
                headers=_HEADERS,
                json={
                    "inputs": [{"id": d} for d in deal_ids[start : start + 100]],
                    "properties": ["aws_engagement_score"],
                },
                timeout=60,
            )
            r.raise_for_status()
            for deal in r.json()["results"]:
                out[str(deal["id"])] = deal["properties"].get("aws_engagement_score") or ""
    return out


# ---------------------------------------------------------------------------------------------------
# the phase
# ---------------------------------------------------------------------------------------------------
def run_bulk(stack: BenchStack, settings: BulkSettings) -> BulkFigures:
    """The whole phase on a fresh running stack whose Airflow DB is migrated; returns its figures.

    Changes ``os.environ`` (``COSELL_SYNC_CONFIG`` and the ``AIRFLOW_CONN_*`` connections).
    """
    figures = BulkFigures(records=settings.records)
    started = time.monotonic()
    _use_scale(stack, settings.time_scale, settings)
    # s3:// bulk files are read from moto (the local stack sets this too; a test's stack may not).
    stack.control(
        "pc",
        "config",
        {
            "s3_endpoint_url": stack.urls["aws"],
            "bulk_jobs_enabled": True,
            "search_enabled": True,
            "bulk_records_per_second": settings.rate,
        },
    )
    with output_to(stack.workdir / "bulk_runs.log"):
        stack.run("cosell_hubspot_setup")
    t0 = time.monotonic()
    deal_ids = seed_cosell_deals(stack, settings)
    figures.seconds["seed"] = round(time.monotonic() - t0, 1)

    # -- the initial load: one run, one bulk job ------------------------------------------------------
    _say(
        f"initial load of {settings.records:,} co-sell deals -> Partner Central (bulk job at "
        f"{settings.rate:g} records/s, poll every {settings.poll_seconds:g} s, time_scale "
        f"{settings.time_scale:g}) ..."
    )
    load_insights: dict[str, Any] = {}
    stack.reset_calls()
    with _insights_result(load_insights):
        run, seconds = _run(stack)
    pc, hs = stack.calls()
    figures.load_seconds = round(seconds, 1)
    figures.task_seconds = {k: round(v, 1) for k, v in stack.task_seconds(run).items()}
    figures.load_pc_calls = _by_operation(pc)
    figures.load_hs_calls = {k: int(v) for k, v in sorted((hs.get("by_endpoint") or {}).items())}
    figures.load_insights = load_insights
    figures.load_report = dict(stack.report(run).get("hubspot_to_partner_central") or {})
    _say(f"  {seconds:.1f} s; Partner Central calls {figures.load_pc_calls}")

    t0 = time.monotonic()
    store = _store(stack)
    opps = dict(store.get("opportunities") or {})
    figures.bulk_jobs = [
        {k: j.get(k) for k in ("JobId", "Status", "TotalRecords", "SuccessCount", "FailureCount")}
        for j in (store.get("opportunity_bulk_jobs") or {}).values()
    ]
    lost, duplicates = check_links(stack, deal_ids, opps)
    figures.opportunities = len(opps)
    figures.lost, figures.lost_examples = len(lost), lost[:20]
    figures.duplicated, figures.duplicate_examples = len(duplicates), duplicates[:20]
    figures.seconds["check"] = round(time.monotonic() - t0, 1)
    _say(f"  {figures.opportunities:,} opportunities; lost {figures.lost}, duplicated {figures.duplicated}")

    # -- insights: AWS re-scores some opportunities, then a full run ------------------------------------
    t0 = time.monotonic()
    by_deal = {str(o.get("PartnerOpportunityIdentifier")): oid for oid, o in opps.items()}
    rescored = {
        d: by_deal[d] for d in deal_ids[:: max(1, len(deal_ids) // settings.insight_count)] if d in by_deal
    }
    rescored = dict(list(rescored.items())[: settings.insight_count])
    session = requests.Session()
    for n, oid in enumerate(rescored.values()):
        # A partner-created opportunity has no AWS view until it reaches AWS: AWS approves it (its
        # summary appears, LastModifiedDate moves), then scores it (LastModifiedDate stays).
        for path, body in (
            (
                "simulate/aws-update",
                {
                    "identifier": oid,
                    "LifeCycle": {"ReviewStatus": "Approved"},
                    "AwsOpportunitySummary": {
                        "Origin": "Partner Referral",
                        "InvolvementType": "Co-Sell",
                        "Visibility": "Full",
                        "LifeCycle": {"Stage": "Prospect"},
                    },
                },
            ),
            (
                "simulate/insights",
                {
                    "opportunity_id": oid,
                    "engagement_score": SCORES[n % len(SCORES)],
                    "quality_score": 50 + n % 50,
                    "origin": "Partner Referral",
                    "cosell_motion": "AWS Field-engaged",
                },
            ),
        ):
            r = session.post(
                f"{stack.pc_url}/_emulator/{path}", json={"catalog": CATALOG, **body}, timeout=30
            )
            r.raise_for_status()
    figures.insights_expected = len(rescored)
    _use_scale(stack, settings.insights_time_scale, settings)
    stack.reset_calls()
    _say(f"AWS re-scored {len(rescored)} opportunities: a full run ({{'mode': 'full'}}) ...")
    with _insights_result(figures.insights), _tags_result(figures.tags):
        run, seconds = _run(stack, {"mode": "full"})
    pc, _hs = stack.calls()
    figures.full_pc_calls = _by_operation(pc)
    figures.full_seconds = round(seconds, 1)
    # The sync_tags step scans the catalog at a full refresh too: its searches are its own, not insights'.
    tag_searches = int((figures.tags.get("api_calls") or {}).get("SearchOpportunities", 0))
    figures.insights_counter = figures.full_pc_calls.get("SearchOpportunities", 0) - tag_searches
    scores = _deal_scores(stack, list(rescored))
    want = {d: SCORES[n % len(SCORES)] for n, d in enumerate(rescored)}
    figures.insights_deals_checked = sum(1 for d, v in want.items() if scores.get(d) == v)
    figures.seconds["insights"] = round(time.monotonic() - t0, 1)
    _say(f"  insights {figures.insights}; run calls {figures.full_pc_calls}")
    figures.seconds["total"] = round(time.monotonic() - started, 1)
    return figures


# ---------------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------------
def _failed(result: Result, why: str) -> Result:
    """``result`` marked as not met: a wrong measurement must never read as a success."""
    return dataclasses.replace(result, met=False, note=f"NOT VALID: {why}. {result.note}")


def bulk_results(figures: BulkFigures, settings: BulkSettings) -> list[Result]:
    """The phase's figures as benchmark results (names matched by :func:`is_bulk_figure`)."""
    n = figures.records
    load = f"Initial load {n:,} co-sell deals -> Partner Central with a bulk job:"
    calls = figures.load_pc_calls
    polls = calls.get("ListOpportunityBulkJobs", 0)
    ops = ", ".join(f"{k}={v}" for k, v in calls.items())
    insight_scan = int((figures.load_insights.get("api_calls") or {}).get("SearchOpportunities", 0))
    created = int(figures.load_report.get("created", 0) or 0)
    failed = int(figures.load_report.get("failed", 0) or 0)
    jobs = ", ".join(
        f"{j.get('Status')} {j.get('SuccessCount')}/{j.get('TotalRecords')} ok" for j in figures.bulk_jobs
    )
    wrong: list[str] = []
    if figures.lost or figures.duplicated:
        wrong.append(
            f"{figures.lost} deals lost ({'; '.join(figures.lost_examples[:3])}), {figures.duplicated} "
            f"duplicated ({'; '.join(figures.duplicate_examples[:3])})"
        )
    if calls.get("StartOpportunityBulkJob", 0) != 1 or calls.get("CreateOpportunity", 0):
        wrong.append(
            f"{calls.get('StartOpportunityBulkJob', 0)} bulk jobs and {calls.get('CreateOpportunity', 0)} "
            "single creates, not one bulk job"
        )
    if created != n or failed:
        wrong.append(f"the run reports {created} created and {failed} failed of {n}")
    checked = (
        f"Checked from the emulators: {figures.opportunities:,} opportunities, lost {figures.lost}, "
        f"duplicated {figures.duplicated} (one opportunity per deal by PartnerOpportunityIdentifier, each "
        f"deal's aws_opportunity_id pointing at it); run report: {created:,} created, {failed} failed; "
        f"bulk job: {jobs or 'none'}."
    )
    calls_result = figure(
        f"{load} Partner Central API calls",
        figures.load_calls,
        "calls",
        "<=",
        LOAD_CALLS_GOAL,
        f"Every Partner Central call of the one cosell_reconcile run (emulator counters): {ops}. All but "
        f"the insights scan: {figures.load_calls - insight_scan}, with the search before create, one "
        f"StartOpportunityBulkJob, ListOpportunityBulkJobs {polls} (the sensor's "
        f"check, the trigger's polls every {settings.poll_seconds:g} s = bulk.poll_seconds while the "
        f"emulator processed {settings.rate:g} records/s, the apply step's status read), "
        f"ListOpportunityBulkJobResults {calls.get('ListOpportunityBulkJobResults', 0)} (pages of "
        f"1,000). The other {insight_scan} are SearchOpportunities of the run's own sync_insights step: "
        f"its first scan is a full one (no insights state yet), 100 opportunities per call, over the "
        f"{n:,} opportunities just created, which AWS has not seen yet (Pending Submission, no AWS "
        f"summary) and so hold no insights. Deals seeded at the four stages created in one write "
        f"(Prospect .. Business Validation), aws_solution_ids {SOLUTION_ID}; quotas at time_scale "
        f"{settings.time_scale:g}. {checked}",
    )
    floor = n / settings.rate
    single = n / WRITES_PER_SECOND
    tasks = ", ".join(f"{k} {v:.0f} s" for k, v in figures.task_seconds.items())
    time_result = figure(
        f"{load} wall time at the emulator's processing rate",
        figures.load_seconds,
        "s",
        note=f"The whole dag.test() run with the emulator processing {settings.rate:g} bulk records/s "
        f"(floor {n:,} / {settings.rate:g} = {floor:.0f} s; AWS does not publish its rate) and quotas at "
        f"time_scale {settings.time_scale:g}. The single-create path (computed, not run): {n:,} "
        f"CreateOpportunity at {WRITES_PER_SECOND:g} write/s = {single / 3600:.1f} h, plus a read-back "
        f"each ({single / max(figures.load_seconds, 1):.0f}x this run). Task times: {tasks}.",
    )
    pages = math.ceil(n / SEARCH_PAGE)
    goal = pages + math.ceil(pages / 10)
    insights = figures.insights
    measured = figures.insights_calls
    others = {k: v for k, v in figures.full_pc_calls.items() if k != "SearchOpportunities"}
    insights_result = figure(
        f"AWS insights for {n:,} linked opportunities: Partner Central calls",
        measured,
        "calls",
        "<=",
        goal,
        f"SearchOpportunities calls of the sync_insights step of one cosell_reconcile {{'mode': 'full'}} "
        f"run, from the step's own result (api_calls); the emulator counted {figures.insights_counter} "
        f"SearchOpportunities in the whole run besides the sync_tags step's own full-refresh tag scan "
        f"({(figures.tags.get('api_calls') or {}).get('SearchOpportunities', 0)}, from its result). Floor "
        f"{pages} ({n:,} at 100 per call). AWS approved and scored {figures.insights_expected} "
        f"opportunities (/_emulator/simulate/aws-update, then simulate/insights): read "
        f"{insights.get('read')}, changed {insights.get('changed')}, "
        f"written {insights.get('written')}, failed {insights.get('failed')}; "
        f"{figures.insights_deals_checked} of their deals checked holding the new engagement score. The "
        f"run's other Partner Central calls: {', '.join(f'{k}={v}' for k, v in others.items()) or 'none'} "
        f"(a full run lists every opportunity and reads each once whose LastModifiedDate the baseline "
        f"does not hold: the bulk creates store none). Run wall time {figures.full_seconds:.0f} s at "
        f"time_scale {settings.insights_time_scale:g}.",
    )
    if wrong:
        why = "; ".join(wrong)
        calls_result, time_result = _failed(calls_result, why), _failed(time_result, why)
    insight_wrong: list[str] = []
    if measured is None:
        insight_wrong.append("the sync_insights step returned no api_calls")
    elif measured != figures.insights_counter:
        insight_wrong.append(f"the step counted {measured}, the emulator {figures.insights_counter}")
    if insights.get("read") != figures.opportunities or not insights.get("full"):
        insight_wrong.append(
            f"the scan read {insights.get('read')} of {figures.opportunities} (full: {insights.get('full')})"
        )
    if figures.insights_deals_checked != figures.insights_expected or insights.get("failed"):
        insight_wrong.append(
            f"{figures.insights_deals_checked} of {figures.insights_expected} re-scored deals hold the new "
            f"score ({insights.get('failed')} failed)"
        )
    if insight_wrong:
        insights_result = _failed(insights_result, "; ".join(insight_wrong))
    return [calls_result, time_result, insights_result]


def merge_results(results: list[Result], path: Path = RESULTS_PATH) -> None:
    """Put this module's figures into ``path`` (one JSON list of figures), replacing its earlier ones."""
    kept: list[dict[str, Any]] = []
    if path.exists():
        with contextlib.suppress(ValueError):
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, list):
                kept = [r for r in data if not is_bulk_figure(str(r.get("name", "")))]
    path.write_text(json.dumps(kept + [r.to_dict() for r in results], indent=2) + "\n", encoding="utf-8")


def bulk_phase(workdir: Path, settings: BulkSettings) -> tuple[list[Result], BulkFigures]:
    """The phase on a stack of its own (a fresh process), for ``make bench`` and ``python -m bench.bulk``.

    Airflow must already point at a migrated DB (``bench.run._configure_airflow``).
    """
    from bench.stack import start_stack_process, stop_stack_process

    proc, urls = start_stack_process()
    try:
        figures = run_bulk(BenchStack(urls, workdir), settings)
    finally:
        stop_stack_process(proc)
    return bulk_results(figures, settings), figures


def _parse(argv: list[str] | None) -> tuple[BulkSettings, Path]:
    p = argparse.ArgumentParser(prog="python -m bench.bulk", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=10_000, help="co-sell deals to create (10000)")
    p.add_argument(
        "--rate", type=float, default=100.0, help="bulk records the emulator processes per s (100)"
    )
    p.add_argument("--poll-seconds", type=float, default=10.0, help="bulk.poll_seconds (10)")
    p.add_argument(
        "--results", type=Path, default=RESULTS_PATH, help="results file to merge into (bench/results.json)"
    )
    a = p.parse_args(argv)
    if a.records < 1 or a.rate <= 0 or a.poll_seconds <= 0:
        p.error("--records, --rate and --poll-seconds must be positive")
    return BulkSettings(records=a.records, rate=a.rate, poll_seconds=a.poll_seconds), a.results


def main(argv: list[str] | None = None) -> int:
    """Run the phase alone; merge its figures into the results file and print them."""
    from bench.run import _configure_airflow

    settings, results_path = _parse(argv)
    workdir = Path(tempfile.mkdtemp(prefix="cosell-bulk-"))
    migrate = _configure_airflow(workdir)
    if migrate.wait() != 0:
        raise SystemExit("airflow db migrate failed")
    results, figures = bulk_phase(workdir, settings)
    merge_results(results, results_path)
    print()
    print(format_table(results))
    print(json.dumps(figures.to_dict(), indent=2, default=str))
    print(f"\nresults: {results_path}   logs of the DAG runs: {workdir / 'bulk_runs.log'}")
    if os.environ.get("BENCH_KEEP") != "1":
        shutil.rmtree(workdir / "airflow", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
