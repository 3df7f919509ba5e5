"""The soak: a book with changes on both sides, reconciled under faults, then run until clean.

``python -m bench.soak [--records 10000]`` (and ``make bench``, skip key ``soak``). Steps:

1. ``cosell_hubspot_setup``; seed ``records`` opportunities; the initial ``cosell_reconcile`` load.
2. Changes on both sides (``change_fraction`` of the book each way): Partner Central console edits of
   ``LifeCycle.NextSteps``; HubSpot edits of the deal ``description`` on records in Pending Submission
   (the ones Partner Central lets the partner update); a few records edited on the same field on both
   sides, one side a second after the other (the later edit must win); new co-sell deals in HubSpot
   (each must get one opportunity); new opportunities in Partner Central (each must get one deal).
3. Faults on: 20 % of API requests throttled on both sides (HubSpot 429s with ``Retry-After``, Partner
   Central ``ThrottlingException``), 5 % answered 5xx, read timeouts (short windows in which requests are
   slower than the hooks' read timeout, and HubSpot writes that time out after HubSpot applied them) and
   random task failures (a reconcile step raising before it starts or after it finished its writes).
   ``faulted_runs`` reconcile runs, every task with ``retries=0``: the next run is the recovery.
4. Faults off; runs until one finds nothing to do (at most ``max_clean_runs``).
5. Measured from the emulators directly: records lost (an expected value not on both sides, a record
   without its counterpart), duplicates on either side, and the runs needed to converge.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.report import Result, figure, format_table
from bench.stack import CATALOG, HS_TOKEN, ROOT, BenchStack, connections, output_to

RESULTS_PATH = ROOT / "bench" / "results.json"
#: Names of the soak's figures in results.json start with this (the file is one list of figures).
SOAK_PREFIX = "Soak: "
#: The reconcile steps a random task failure may hit (the functions ``cosell_runtime.tasks`` exports).
STEPS = (
    "reconcile_prepare",
    "reconcile_extract_partner_central",
    "reconcile_extract_hubspot",
    "reconcile_plan",
    "reconcile_apply_partner_central",
    "reconcile_apply_hubspot",
    "reconcile_commit",
    "reconcile_report",
)
#: HubSpot writes that may time out after HubSpot applied them (``endpoint_faults`` keys).
HS_WRITE_ENDPOINTS = (
    "POST /crm/v3/objects/deals/batch/create",
    "POST /crm/v3/objects/deals/batch/update",
    "POST /crm/v3/objects/companies/batch/upsert",
    "POST /crm/v3/objects/contacts/batch/upsert",
    "POST /crm/v3/objects/notes/batch/create",
)
_HEADERS = {"Authorization": f"Bearer {HS_TOKEN}"}
#: How a note the sync wrote names its run (``cosell_sync.writers.hubspot.NOTE_REF_PREFIX``).
NOTE_REF = "co-sell sync run "
#: An active solution of the Partner Central emulator's catalog, named on the new co-sell deals.
SOLUTION_ID = "S-1000001"


@dataclass
class SoakSettings:
    """What the soak does; the defaults are the ``make bench`` soak.

    Attributes:
        records: opportunities in the seeded book.
        change_fraction: share of the book edited on each side.
        new_each: new co-sell deals and new opportunities (each); default 0.5 % of the book, at least 3.
        both_sides: records edited on the same field on both sides; default 0.2 % of the book, at least 2.
        faulted_runs: reconcile runs under faults.
        max_clean_runs: fault-free runs at most, looking for one that finds nothing to do.
        throttle_rate: share of API requests throttled (both sides).
        error_rate: share of API requests answered 5xx (both sides).
        task_failure_rate: chance that a step raises before it starts, and again after it ends.
        read_timeout_s: the hooks' read timeout while faults are on (connection extra ``read_timeout``).
        timeout_windows: whether slow windows (requests over the read timeout) come and go under faults.
        timeout_every_s: seconds between two slow windows (uniform between the two bounds); each lasts
            0.25 s. Rarer windows let a faulted run reach its writes more often.
        time_scale: quotas (emulators and client pacing) sped up this much.
        seed: seeds every random choice (records, faults, failures).
    """

    records: int = 10_000
    change_fraction: float = 0.10
    new_each: int | None = None
    both_sides: int | None = None
    faulted_runs: int = 3
    max_clean_runs: int = 5
    throttle_rate: float = 0.20
    error_rate: float = 0.05
    task_failure_rate: float = 0.06
    read_timeout_s: float = 2.0
    timeout_windows: bool = True
    timeout_every_s: tuple[float, float] = (10.0, 25.0)
    time_scale: float = 50.0
    seed: int = 10

    @property
    def new_count(self) -> int:
        """New co-sell deals (and as many new opportunities)."""
        return self.new_each if self.new_each is not None else max(3, self.records // 200)

    @property
    def both_count(self) -> int:
        """Records edited on the same field on both sides."""
        return self.both_sides if self.both_sides is not None else max(2, self.records // 500)


@dataclass
class SoakFigures:
    """What the soak measured.

    Attributes:
        records: the seeded book.
        expected_records: records the soak checks (book, new deals, new opportunities).
        edits: edits made, by kind.
        lost: records with an expected value missing on a side, or without their counterpart.
        lost_examples: up to 20 of them, with what is wrong.
        duplicates: duplicates by kind (extra records beyond one per key).
        duplicate_examples: up to 20 duplicated keys.
        faulted_runs: the state of each run under faults.
        injected: faults seen: task failures by step and position, throttled and timed-out calls.
        clean_runs: what each fault-free run did (its report counts).
        runs_to_converge: fault-free runs that had work before one found nothing to do (None: none did).
        seconds: wall seconds per phase.
    """

    records: int
    expected_records: int = 0
    edits: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    lost_examples: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    duplicate_examples: list[str] = field(default_factory=list)
    faulted_runs: list[str] = field(default_factory=list)
    injected: dict[str, Any] = field(default_factory=dict)
    clean_runs: list[dict[str, Any]] = field(default_factory=list)
    runs_to_converge: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def duplicated(self) -> int:
        """All duplicates, every kind."""
        return sum(self.duplicates.values())

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {**asdict(self), "duplicated": self.duplicated}


def _say(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------------------
def _run_dag(stack: BenchStack, dag_id: str = "cosell_reconcile") -> Any:
    """One ``dag.test()`` run with ``retries=0`` on every task (the next run is the recovery)."""
    dag = stack.dag(dag_id)
    for task in dag.tasks:
        task.retries = 0
    with output_to(stack.workdir / "soak_runs.log"):
        return dag.test(run_conf={})


def _state(run: Any) -> str:
    return str(getattr(run.state, "value", run.state))


def _report(stack: BenchStack, run: Any) -> dict[str, Any] | None:
    try:
        return stack.report(run)
    except Exception:  # a failed run may have no report
        return None


def _work(report: dict[str, Any] | None) -> dict[str, int]:
    """The non-zero "something to do" counts of a run report (empty: the run found nothing to do)."""
    if report is None:
        return {"no report": 1}
    counts: dict[str, int] = {}
    for direction in ("partner_central_to_hubspot", "hubspot_to_partner_central"):
        for key, value in (report.get(direction) or {}).items():
            if isinstance(value, int) and value:
                counts[f"{direction}.{key}"] = value
    for key in ("read_failures", "conflicts", "queued_for_retry"):
        if report.get(key):
            counts[key] = int(report[key])
    return counts


class TaskFailures:
    """Random task failures: a reconcile step raises before it starts or after it returns (its writes done).

    Patched into ``cosell_runtime.tasks`` (what each DAG task imports when it runs) for the block of
    :meth:`installed`; deterministic for a seed.
    """

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.rng = random.Random(seed)
        self.enabled = False
        self.injected: Counter[str] = Counter()

    def _wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            if self.enabled and self.rng.random() < self.rate:
                self.injected[f"{name} before"] += 1
                raise RuntimeError(f"soak: injected failure before {name}")
            out = real(*args, **kwargs)
            if self.enabled and self.rng.random() < self.rate:
                self.injected[f"{name} after"] += 1
                raise RuntimeError(f"soak: injected failure after {name}")
            return out

        step.__name__ = name
        return step

    @contextlib.contextmanager
    def installed(self) -> Iterator[TaskFailures]:
        """Patch the steps for the block (failures fire only while :attr:`enabled`)."""
        from cosell_runtime import tasks

        saved = {name: getattr(tasks, name) for name in STEPS}
        for name, real in saved.items():
            setattr(tasks, name, self._wrap(name.removeprefix("reconcile_"), real))
        try:
            yield self
        finally:
            for name, real in saved.items():
                setattr(tasks, name, real)


class TimeoutWindows:
    """Now and then, for a moment, every request to either emulator is slower than the read timeout.

    A request that arrives in a window sleeps ``latency_ms`` before the emulator handles it: the client
    gives up after its read timeout, and the server still applies the request afterwards.
    """

    def __init__(self, stack: BenchStack, settings: SoakSettings, seed: int) -> None:
        self.stack = stack
        self.settings = settings
        self.rng = random.Random(seed)
        self.windows = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seed = seed

    def _faults(self, latency_ms: int) -> None:
        s = self.settings
        self._seed += 1
        self.stack.control(
            "pc",
            "faults",
            {
                "throttle_rate": s.throttle_rate,
                "error_rate": s.error_rate,
                "latency_ms": latency_ms,
                "seed": self._seed,
            },
        )
        self.stack.control("hs", "faults", {"latency_ms": latency_ms})

    def _loop(self) -> None:
        slow = int(self.settings.read_timeout_s * 1000) + 500
        while not self._stop.wait(self.rng.uniform(*self.settings.timeout_every_s)):
            self._faults(slow)
            self.windows += 1
            self._stop.wait(0.25)
            self._faults(0)

    def start(self) -> None:
        """Start opening windows."""
        if self.settings.timeout_windows:
            self._thread = threading.Thread(target=self._loop, name="soak-timeout-windows", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop and leave no latency behind."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        self._stop.clear()


def _connections(stack: BenchStack, read_timeout_s: float | None) -> None:
    """The connections for the stack; with ``read_timeout_s``, both hooks' read timeout set to it."""
    conns = connections(stack.urls, stack.time_scale)
    if read_timeout_s is not None:
        for name in ("AIRFLOW_CONN_PARTNER_CENTRAL_DEFAULT", "AIRFLOW_CONN_HUBSPOT_DEFAULT"):
            conn = json.loads(conns[name])
            conn["extra"] = {**(conn.get("extra") or {}), "read_timeout": read_timeout_s}
            conns[name] = json.dumps(conn)
    os.environ.update(conns)


def _faults_on(stack: BenchStack, settings: SoakSettings, run_no: int, rng: random.Random) -> None:
    """Throttling and 5xx on both sides, and one HubSpot write that times out after being applied."""
    seed = settings.seed * 1000 + run_no
    stack.control(
        "pc",
        "faults",
        {"throttle_rate": settings.throttle_rate, "error_rate": settings.error_rate, "seed": seed},
    )
    late = int(settings.read_timeout_s * 1000) + 500
    stack.control(
        "hs",
        "faults",
        {
            "throttle_rate": settings.throttle_rate,
            "error_rate": settings.error_rate,
            "retry_after_s": 1,
            "seed": seed,
            "latency_ms": 0,
            "endpoint_faults": {
                key: {"times": 1, "when": "after", "status": 504, "latency_ms": late}
                for key in rng.sample(HS_WRITE_ENDPOINTS, 1)
            },
        },
    )


def _faults_off(stack: BenchStack) -> None:
    stack.control("pc", "faults", {})
    stack.control(
        "hs",
        "faults",
        {"throttle_rate": 0, "error_rate": 0, "latency_ms": 0, "endpoint_faults": {}, "fail_ids": []},
    )


# ---------------------------------------------------------------------------------------------------
# reading both sides (quotas off while reading: the soak's own reads are not the sync's)
# ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quotas_off(stack: BenchStack) -> Iterator[None]:
    for service in ("pc", "hs"):
        stack.control(service, "quotas", {"enabled": False})
    try:
        yield
    finally:
        for service in ("pc", "hs"):
            stack.control(service, "quotas", {"enabled": True, "time_scale": stack.time_scale})


def _opportunities(stack: BenchStack) -> dict[str, dict[str, Any]]:
    """Every opportunity of the catalog, straight from the emulator's state."""
    state = stack.control("pc", "state", method="GET")
    return dict(state["stores"][CATALOG]["opportunities"])


def hs_objects(
    stack: BenchStack, plural: str, properties: list[str], associations: str = ""
) -> list[dict[str, Any]]:
    """Every (unarchived) object of a type, through the list endpoint."""
    session = requests.Session()
    out: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params = {"limit": "100", "properties": ",".join(properties)}
        if associations:
            params["associations"] = associations
        if after:
            params["after"] = after
        r = session.get(
            f"{stack.hs_url}/crm/v3/objects/{plural}", params=params, headers=_HEADERS, timeout=60
        )
        r.raise_for_status()
        body = r.json()
        out.extend(body["results"])
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return out


def _deals_by_opportunity(deals: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by: dict[str, list[dict[str, Any]]] = {}
    for deal in deals:
        oid = (deal["properties"].get("aws_opportunity_id") or "").strip()
        if oid:
            by.setdefault(oid, []).append(deal)
    return by


# ---------------------------------------------------------------------------------------------------
# the changes
# ---------------------------------------------------------------------------------------------------
@dataclass
class Expected:
    """What both sides must hold once the sync converged.

    Attributes:
        book: every opportunity that must have exactly one deal.
        next_steps: opportunity id -> the last edit's ``NextSteps`` / ``aws_next_steps``.
        problem: opportunity id -> the last edit's ``CustomerBusinessProblem`` / ``description``.
        new_deals: HubSpot deal id -> its ``dealname`` (each must get exactly one opportunity).
        new_opportunities: opportunity id -> its title (each must get exactly one deal).
    """

    book: set[str] = field(default_factory=set)
    next_steps: dict[str, str] = field(default_factory=dict)
    problem: dict[str, str] = field(default_factory=dict)
    new_deals: dict[str, str] = field(default_factory=dict)
    new_opportunities: dict[str, str] = field(default_factory=dict)


def _pc_edit(stack: BenchStack, session: requests.Session, oid: str, next_steps: str) -> None:
    r = session.post(
        f"{stack.pc_url}/_emulator/simulate/aws-update",
        json={"catalog": CATALOG, "identifier": oid, "LifeCycle": {"NextSteps": next_steps}},
        timeout=30,
    )
    r.raise_for_status()


def _hs_update(stack: BenchStack, plural: str, updates: dict[str, dict[str, str]]) -> None:
    session = requests.Session()
    items = list(updates.items())
    for start in range(0, len(items), 100):
        r = session.post(
            f"{stack.hs_url}/crm/v3/objects/{plural}/batch/update",
            headers=_HEADERS,
            json={"inputs": [{"id": i, "properties": p} for i, p in items[start : start + 100]]},
            timeout=60,
        )
        r.raise_for_status()


def make_changes(stack: BenchStack, settings: SoakSettings, expected: Expected) -> dict[str, int]:
    """Edit both sides, add co-sell deals and opportunities; record what must come out. Returns counts."""
    rng = random.Random(settings.seed)
    with _quotas_off(stack):
        opps = _opportunities(stack)
        deals = _deals_by_opportunity(hs_objects(stack, "deals", ["aws_opportunity_id"]))
        book = sorted(expected.book)
        missing = [o for o in book if o not in deals]
        if missing:
            raise RuntimeError(f"the initial load left {len(missing)} opportunities without a deal")
        deal_of = {o: deals[o][0]["id"] for o in book}
        pending = [o for o in book if opps[o]["LifeCycle"].get("ReviewStatus") == "Pending Submission"]
        n = max(1, int(len(book) * settings.change_fraction))
        pc_ids = rng.sample(book, min(n, len(book)))
        hs_ids = rng.sample(pending, min(n, len(pending)))
        both_ids = rng.sample(
            [o for o in pending if o not in set(hs_ids)], min(settings.both_count, len(pending))
        )
        session = requests.Session()

        # Partner Central console edits (NextSteps)
        for k, oid in enumerate(pc_ids):
            value = f"Soak console step {k} for {oid}"
            _pc_edit(stack, session, oid, value)
            expected.next_steps[oid] = value
        # HubSpot edits of the deal description (CustomerBusinessProblem), Pending Submission records
        updates: dict[str, dict[str, str]] = {}
        for k, oid in enumerate(hs_ids):
            value = f"Soak seller edit {k}: the customer needs a faster migration path for {oid}"
            updates[deal_of[oid]] = {"description": value}
            expected.problem[oid] = value
        _hs_update(stack, "deals", updates)

        # The same field on both sides: half Partner Central first, half HubSpot first; the later wins.
        half = len(both_ids) // 2
        first_pc, first_hs = both_ids[:half], both_ids[half:]
        for oid in first_pc:
            _pc_edit(stack, session, oid, f"Soak both-sides console step (earlier) {oid}")
        _hs_update(
            stack,
            "deals",
            {deal_of[o]: {"aws_next_steps": f"Soak both-sides seller step (earlier) {o}"} for o in first_hs},
        )
        time.sleep(1.5)
        later: dict[str, dict[str, str]] = {}
        for oid in first_pc:
            later[deal_of[oid]] = {"aws_next_steps": f"Soak both-sides seller step (later) {oid}"}
            expected.next_steps[oid] = later[deal_of[oid]]["aws_next_steps"]
        _hs_update(stack, "deals", later)
        for oid in first_hs:
            value = f"Soak both-sides console step (later) {oid}"
            _pc_edit(stack, session, oid, value)
            expected.next_steps[oid] = value

        # New co-sell deals in HubSpot, each with its company and contacts (seeded), opted in to co-sell.
        count = settings.new_count
        seeded = stack.control(
            "hs", "seed", {"deals": count, "companies": count, "contacts": count, "seed": settings.seed + 7}
        )
        # The seller names the partner solution too: Partner Central needs one before a Committed or
        # Launched stage or a submission, and without it the sync (rightly) holds the record back.
        _hs_update(
            stack,
            "deals",
            {d: {"aws_sync_enabled": "true", "aws_solution_ids": SOLUTION_ID} for d in seeded["deals"]},
        )
        names = hs_objects(stack, "deals", ["dealname"])
        wanted = set(seeded["deals"])
        expected.new_deals = {
            d["id"]: d["properties"].get("dealname") or "" for d in names if d["id"] in wanted
        }

        # New opportunities in Partner Central: seeded, then touched by the console (LastModifiedDate now).
        new_ids = stack.control(
            "pc", "seed", {"opportunities": count, "seed": settings.seed + 11, "catalog": CATALOG}
        )["opportunity_ids"]
        for oid in new_ids:
            value = f"Soak new opportunity step for {oid}"
            _pc_edit(stack, session, oid, value)
            expected.next_steps[oid] = value
        opps = _opportunities(stack)
        expected.new_opportunities = {o: opps[o]["Project"]["Title"] for o in new_ids}
        expected.book.update(new_ids)
    return {
        "partner_central_edits": len(pc_ids) + len(first_hs) + len(new_ids),
        "hubspot_edits": len(hs_ids) + len(first_pc),
        "both_sides_same_field": len(both_ids),
        "new_cosell_deals": len(expected.new_deals),
        "new_opportunities": len(new_ids),
    }


# ---------------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------------
def measure(stack: BenchStack, expected: Expected) -> tuple[list[str], dict[str, int], list[str]]:
    """Lost records and duplicates, read from the emulators.

    Returns:
        (lost: one line per record with what is wrong, duplicates by kind, duplicated keys).
    """
    with _quotas_off(stack):
        opps = _opportunities(stack)
        deals = hs_objects(
            stack, "deals", ["aws_opportunity_id", "aws_next_steps", "description", "dealname"]
        )
        companies = hs_objects(stack, "companies", ["aws_created_for"])
        contacts = hs_objects(stack, "contacts", ["aws_created_for"])
        notes = hs_objects(stack, "notes", ["hs_note_body"], associations="deals")
    by_opp = _deals_by_opportunity(deals)
    deal_by_id = {d["id"]: d for d in deals}
    # Opportunities the sync created carry their deal's id as PartnerOpportunityIdentifier (seeded ones
    # carry made-up "HS-..." ids, repeated across seed calls): group those by it, and count any other
    # opportunity the soak did not seed as one nobody asked for.
    by_partner_id: dict[str, list[str]] = {}
    unasked: dict[str, list[str]] = {}
    for oid, opp in opps.items():
        pid = (opp.get("PartnerOpportunityIdentifier") or "").strip()
        if pid in deal_by_id or pid in expected.new_deals:
            by_partner_id.setdefault(pid, []).append(oid)
        elif oid not in expected.book:
            unasked.setdefault(pid or oid, []).append(oid)

    problems: dict[str, list[str]] = {}

    def lost(key: str, why: str) -> None:
        problems.setdefault(key, []).append(why)

    for oid in sorted(expected.book):
        linked = by_opp.get(oid, [])
        if not linked:
            lost(oid, "no deal")
        if oid not in opps:
            lost(oid, "opportunity gone")
    for oid, value in expected.next_steps.items():
        pc_value = ((opps.get(oid) or {}).get("LifeCycle") or {}).get("NextSteps")
        if pc_value != value:
            lost(oid, f"Partner Central NextSteps {pc_value!r}, want {value!r}")
        for deal in by_opp.get(oid, []):
            if deal["properties"].get("aws_next_steps") != value:
                lost(oid, f"deal {deal['id']} aws_next_steps {deal['properties'].get('aws_next_steps')!r}")
    for oid, value in expected.problem.items():
        pc_value = ((opps.get(oid) or {}).get("Project") or {}).get("CustomerBusinessProblem")
        if pc_value != value:
            lost(oid, f"Partner Central CustomerBusinessProblem {pc_value!r}, want {value!r}")
        for deal in by_opp.get(oid, []):
            if deal["properties"].get("description") != value:
                lost(oid, f"deal {deal['id']} description {deal['properties'].get('description')!r}")
    for deal_id, name in expected.new_deals.items():
        made = by_partner_id.get(deal_id, [])
        if not made:
            lost(f"deal {deal_id}", "no opportunity for the co-sell deal")
            continue
        linked_to = (deal_by_id.get(deal_id) or {}).get("properties", {}).get("aws_opportunity_id")
        if linked_to not in made:
            lost(f"deal {deal_id}", f"deal links {linked_to!r}, opportunities {made}")
        title = ((opps.get(made[0]) or {}).get("Project") or {}).get("Title")
        if name and title != name[: len(title or "")]:
            lost(f"deal {deal_id}", f"opportunity title {title!r}, deal name {name!r}")
    for oid, title in expected.new_opportunities.items():
        for deal in by_opp.get(oid, []):
            if deal["properties"].get("dealname") != title:
                lost(
                    oid, f"deal {deal['id']} dealname {deal['properties'].get('dealname')!r}, want {title!r}"
                )

    duplicates: dict[str, int] = {}
    examples: list[str] = []

    def count(kind: str, groups: dict[str, list[Any]]) -> None:
        extra = {k: len(v) - 1 for k, v in groups.items() if len(v) > 1}
        duplicates[kind] = sum(extra.values())
        examples.extend(f"{kind} {k}: {n + 1}" for k, n in sorted(extra.items())[:5])

    count("opportunities per PartnerOpportunityIdentifier", by_partner_id)
    duplicates["opportunities nobody asked for"] = sum(len(v) for v in unasked.values())
    examples.extend(f"unasked opportunity {v}" for v in list(unasked.values())[:5])
    count("deals per aws_opportunity_id", {k: [d["id"] for d in v] for k, v in by_opp.items()})
    for plural, objects in (("companies", companies), ("contacts", contacts)):
        groups: dict[str, list[str]] = {}
        for obj in objects:
            key = (obj["properties"].get("aws_created_for") or "").strip()
            if key:
                groups.setdefault(key, []).append(obj["id"])
        count(f"{plural} per aws_created_for", groups)
    note_groups: dict[str, list[str]] = {}
    for note in notes:
        body = note["properties"].get("hs_note_body") or ""
        ref = body.rsplit(NOTE_REF, 1)[-1].removesuffix("</p>") if NOTE_REF in body else ""
        if not ref:
            continue
        for assoc in ((note.get("associations") or {}).get("deals") or {}).get("results", []):
            note_groups.setdefault(f"deal {assoc['id']} run {ref}", []).append(note["id"])
    count("notes per deal per run", note_groups)
    lines = [f"{key}: {'; '.join(why)}" for key, why in sorted(problems.items())]
    return lines, duplicates, examples


# ---------------------------------------------------------------------------------------------------
# the soak
# ---------------------------------------------------------------------------------------------------
def run_soak(stack: BenchStack, settings: SoakSettings, expected: Expected | None = None) -> SoakFigures:
    """The whole soak on a running stack whose Airflow DB is migrated; returns its figures.

    Changes ``os.environ`` (``COSELL_SYNC_CONFIG`` and the ``AIRFLOW_CONN_*`` connections).

    Args:
        stack: the stack (fresh emulators and moto).
        settings: what to do.
        expected: filled with what both sides must hold (for a caller that checks more); a new one if None.
    """
    figures = SoakFigures(records=settings.records)
    started = time.monotonic()
    rng = random.Random(settings.seed)
    stack.set_scale(settings.time_scale)
    _faults_off(stack)
    with output_to(stack.workdir / "soak_runs.log"):
        stack.run("cosell_hubspot_setup")

    expected = expected if expected is not None else Expected()
    seeded = stack.control(
        "pc", "seed", {"opportunities": settings.records, "seed": settings.seed, "catalog": CATALOG}
    )
    expected.book = set(seeded["opportunity_ids"])
    _say(f"initial load of {settings.records:,} opportunities at time_scale {settings.time_scale:g} ...")
    t0 = time.monotonic()
    load = _run_dag(stack)
    if _state(load) != "success":
        raise RuntimeError(f"the initial load ended {_state(load)}; see {stack.workdir / 'soak_runs.log'}")
    # A settling run: the load's own writes come back once through the watermark overlap.
    _run_dag(stack)
    figures.seconds["initial load"] = round(time.monotonic() - t0, 1)

    t0 = time.monotonic()
    figures.edits = make_changes(stack, settings, expected)
    figures.expected_records = len(expected.book) + len(expected.new_deals)
    figures.seconds["changes"] = round(time.monotonic() - t0, 1)
    _say(f"changes: {figures.edits}")

    # -- under faults ---------------------------------------------------------------------------------
    failures = TaskFailures(settings.task_failure_rate, settings.seed)
    windows = TimeoutWindows(stack, settings, settings.seed * 7)
    stack.reset_calls()
    t0 = time.monotonic()
    with failures.installed():
        _connections(stack, settings.read_timeout_s)
        for n in range(settings.faulted_runs):
            _faults_on(stack, settings, n, rng)
            failures.enabled = True
            windows.start()
            try:
                run = _run_dag(stack)
            finally:
                windows.stop()
                failures.enabled = False
                _faults_off(stack)
            figures.faulted_runs.append(_state(run))
            _say(f"faulted run {n + 1}/{settings.faulted_runs}: {_state(run)}")
    pc_calls, hs_calls = stack.calls()
    figures.seconds["faulted runs"] = round(time.monotonic() - t0, 1)
    figures.injected = {
        "task_failures": dict(sorted(failures.injected.items())),
        "timeout_windows": windows.windows,
        "hubspot_requests": hs_calls["total"],
        "hubspot_429": hs_calls["throttled"],
        "partner_central_requests": pc_calls["total"],
        "partner_central_throttled": pc_calls["throttled"],
    }

    # -- faults off: until a run finds nothing to do -----------------------------------------------------
    _connections(stack, None)
    t0 = time.monotonic()
    for n in range(settings.max_clean_runs):
        run = _run_dag(stack)
        work = _work(_report(stack, run)) if _state(run) == "success" else {"run": 1}
        figures.clean_runs.append({"state": _state(run), "work": work})
        _say(f"fault-free run {n + 1}: {_state(run)}, {work or 'nothing to do'}")
        if _state(run) == "success" and not work:
            figures.runs_to_converge = n
            break
    figures.seconds["fault-free runs"] = round(time.monotonic() - t0, 1)

    lost, duplicates, examples = measure(stack, expected)
    figures.lost = len(lost)
    figures.lost_examples = lost[:20]
    figures.duplicates = duplicates
    figures.duplicate_examples = examples[:20]
    figures.seconds["total"] = round(time.monotonic() - started, 1)
    return figures


def soak_results(figures: SoakFigures, settings: SoakSettings) -> list[Result]:
    """The soak's figures as benchmark results (names start with :data:`SOAK_PREFIX`)."""
    book = f"{figures.records:,}-record book"
    faults = (
        f"{settings.throttle_rate:.0%} throttled (HubSpot 429 with Retry-After, PC ThrottlingException), "
        f"{settings.error_rate:.0%} 5xx, read timeouts (hooks' read_timeout {settings.read_timeout_s:g} s: "
        f"{figures.injected.get('timeout_windows', 0)} slow windows, 1 HubSpot write per run timing out "
        f"after being applied), random task failures {figures.injected.get('task_failures')}"
    )
    runs = (
        f"{settings.faulted_runs} runs under faults ({', '.join(figures.faulted_runs)}), retries=0; "
        f"edits {figures.edits}; time_scale {settings.time_scale:g}"
    )
    lost_note = "; ".join(figures.lost_examples[:5]) or "none"
    dup_note = ", ".join(f"{k} {v}" for k, v in figures.duplicates.items())
    clean = "; ".join(
        f"run {i + 1}: {r['state']} {r['work'] or 'nothing to do'}" for i, r in enumerate(figures.clean_runs)
    )
    converge = figures.runs_to_converge
    return [
        figure(
            f"{SOAK_PREFIX}records lost ({book})",
            figures.lost,
            "records",
            "<=",
            0,
            f"Of {figures.expected_records:,} records checked: an expected value (the later edit) missing on "
            f"a side, or a record without its counterpart. {runs}. Faults: {faults}. Lost: {lost_note}.",
        ),
        figure(
            f"{SOAK_PREFIX}records duplicated on either side",
            figures.duplicated,
            "records",
            "<=",
            0,
            f"Extra records beyond one per key: {dup_note}. "
            f"Examples: {figures.duplicate_examples[:5] or 'none'}.",
        ),
        figure(
            f"{SOAK_PREFIX}runs to converge after the faults stop",
            converge,
            "runs",
            "<=",
            2,
            f"Fault-free runs with work before one found nothing to do (cap {settings.max_clean_runs}; "
            f"n/a: none did). {clean}.",
        ),
        figure(
            f"{SOAK_PREFIX}wall time",
            round(figures.seconds.get("total", 0) / 60, 1),
            "min",
            note=f"Phases (s): {figures.seconds}. Calls under faults: {figures.injected}.",
        ),
    ]


def merge_results(results: list[Result], path: Path = RESULTS_PATH) -> None:
    """Put the soak's figures into ``path`` (one JSON list of figures), replacing earlier soak figures."""
    kept: list[dict[str, Any]] = []
    if path.exists():
        with contextlib.suppress(ValueError):
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, list):
                kept = [r for r in data if not str(r.get("name", "")).startswith(SOAK_PREFIX)]
    path.write_text(json.dumps(kept + [r.to_dict() for r in results], indent=2) + "\n", encoding="utf-8")


def soak_phase(workdir: Path, settings: SoakSettings) -> tuple[list[Result], SoakFigures]:
    """The soak on a stack of its own (a fresh process), for ``make bench`` and ``python -m bench.soak``.

    Airflow must already point at a migrated DB (``bench.run._configure_airflow``).
    """
    from bench.stack import start_stack_process, stop_stack_process

    proc, urls = start_stack_process()
    try:
        stack = BenchStack(urls, workdir)
        figures = run_soak(stack, settings)
    finally:
        stop_stack_process(proc)
    return soak_results(figures, settings), figures


def _parse(argv: list[str] | None) -> SoakSettings:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=10_000, help="opportunities in the book (10000)")
    p.add_argument("--faulted-runs", type=int, default=3, help="reconcile runs under faults (3)")
    p.add_argument("--change-fraction", type=float, default=0.10, help="share edited on each side (0.1)")
    p.add_argument("--seed", type=int, default=10)
    a = p.parse_args(argv)
    return SoakSettings(
        records=a.records, faulted_runs=a.faulted_runs, change_fraction=a.change_fraction, seed=a.seed
    )


def main(argv: list[str] | None = None) -> int:
    """Run the soak alone; merge its figures into ``bench/results.json`` and print them."""
    from bench.run import _configure_airflow

    settings = _parse(argv)
    workdir = Path(tempfile.mkdtemp(prefix="cosell-soak-"))
    migrate = _configure_airflow(workdir)
    if migrate.wait() != 0:
        raise SystemExit("airflow db migrate failed")
    results, figures = soak_phase(workdir, settings)
    merge_results(results)
    print()
    print(format_table(results))
    print(json.dumps(figures.to_dict(), indent=2, default=str))
    print(f"\nresults: {RESULTS_PATH.relative_to(ROOT)}   logs of the DAG runs: {workdir / 'soak_runs.log'}")
    if os.environ.get("BENCH_KEEP") != "1":
        shutil.rmtree(workdir / "airflow", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
