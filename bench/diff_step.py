"""The mapping and diff of a large book, each task in its own process so each peak RSS is the task's.

:func:`measure_diff_step` builds N Partner Central opportunities (the emulator's seed generator) and their
N HubSpot deals with a company and a contact each (mapped from the same records), changes 10% on each side
(1% on both, differently), and stores them as the tasks receive them (``prepare``). Then, as Airflow runs
them, one process per task: ``extract_partner_central`` (answers converted to frame rows with their
``_raw`` JSON, 1,000 at a time), ``extract_hubspot`` (``hubspot_to_frame``) and ``plan`` (``three_way_diff``
+ ``resolve`` + ``build_plan`` against a baseline of the unchanged values, on the frames read back from
Parquet). ``python -m bench.diff_step <step> <dir>`` runs one and prints JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import Result, figure
from bench.stack import ROOT


def _inputs(n: int) -> dict[str, Any]:
    from cosell_sync.config import load_config
    from cosell_sync.mapping import new_deal_properties, opportunities_to_frame
    from emulators.partner_central.models import PartnerCentralBackend
    from emulators.partner_central.seed import seed_opportunities

    cfg = load_config()
    backend = PartnerCentralBackend()
    ids = seed_opportunities(backend, n, seed=11, catalog="AWS")
    store = backend.store("AWS")["opportunities"]
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    opps = []
    for oid in ids:
        opp = store.pop(oid)
        # GetOpportunity through boto3 returns datetimes, not the store's epoch milliseconds.
        for key in ("CreatedDate", "LastModifiedDate"):
            opp[key] = epoch + dt.timedelta(milliseconds=opp[key])
        opps.append(opp)
    del backend, store
    base = opportunities_to_frame(opps, cfg)
    base = base[[c for c in cfg.field_names() if c in base.columns]].copy()
    base["review_status"] = [o["LifeCycle"]["ReviewStatus"] for o in opps]
    deals, companies, contacts, deal_company, deal_contact = [], {}, {}, {}, {}
    stamp = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    for i, (oid, row) in enumerate(base.iterrows()):
        props = new_deal_properties(row.to_dict(), str(oid), cfg)
        deal_id, company_id, contact_id = str(10_000 + i), str(2_000_000 + i), str(4_000_000 + i)
        deals.append({"id": deal_id, "properties": {**props["deal"], "hs_lastmodifieddate": stamp}})
        companies[company_id] = {
            "id": company_id,
            "properties": {**props["company"], "hs_lastmodifieddate": stamp},
        }
        contacts[contact_id] = {
            "id": contact_id,
            "properties": {**props["contact"], "lastmodifieddate": stamp},
        }
        deal_company[deal_id], deal_contact[deal_id] = company_id, contact_id
    # Changes: 10% of opportunities (next steps), 10% of deals (name), 1% both (amount, differently).
    now = dt.datetime.now(dt.UTC)
    fresh = now.isoformat().replace("+00:00", "Z")
    for i, opp in enumerate(opps):
        if i % 10 == 0:
            opp["LifeCycle"]["NextSteps"] = f"changed in Partner Central {i}"
            opp["LastModifiedDate"] = now
        if i % 100 == 5:
            spend = opp.get("Project", {}).get("ExpectedCustomerSpend") or []
            if spend:
                spend[0]["Amount"] = "777"
                opp["LastModifiedDate"] = now
    for i, deal in enumerate(deals):
        if i % 10 == 3:
            deal["properties"]["dealname"] = f"changed in HubSpot {i}"
            deal["properties"]["hs_lastmodifieddate"] = fresh
        if i % 100 == 5:
            deal["properties"]["amount"] = "888"
            deal["properties"]["hs_lastmodifieddate"] = fresh
    return {
        "cfg": cfg,
        "opps": opps,
        "deals": deals,
        "companies": companies,
        "contacts": contacts,
        "deal_company": deal_company,
        "deal_contact": deal_contact,
        "base": base,
    }


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_mib() -> float:
    """This process's own peak RSS (MiB): ``VmHWM`` of ``/proc/self/status``.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries the parent's high-water mark across ``fork``/``exec``
    into it, so a step started from the bench (about 0.7-0.9 GiB by then) reported the bench's size, not
    its own (every step showed the same figure). ``VmHWM`` belongs to the process's own address space.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux; no /proc elsewhere


def prepare(n: int, workdir: Path) -> dict[str, Any]:
    """Build the inputs once and store them as each task receives them; not measured."""
    data = _inputs(n)
    # The Partner Central answers as a stream of 1,000-record pickles: the extract gets them one by one
    # from the API and converts them a chunk at a time (cosell_sync.extract.FRAME_CHUNK).
    from cosell_sync.extract import FRAME_CHUNK

    with open(workdir / "opportunities.pickle", "wb") as out:
        opps = data.pop("opps")
        for i in range(0, len(opps), FRAME_CHUNK):
            pickle.dump(opps[i : i + FRAME_CHUNK], out, protocol=pickle.HIGHEST_PROTOCOL)
        del opps
    with open(workdir / "hubspot.pickle", "wb") as out:
        pickle.dump(
            {k: data[k] for k in ("deals", "companies", "contacts", "deal_company", "deal_contact")},
            out,
            protocol=pickle.HIGHEST_PROTOCOL,
        )
    data["base"].to_parquet(workdir / "baseline.parquet")
    return {"records": n}


def extract_partner_central_step(workdir: Path) -> dict[str, Any]:
    """The ``extract_partner_central`` task's shape: answers converted in chunks, then the frame stored."""
    import pandas as pd

    from cosell_sync.config import load_config
    from cosell_sync.extract import _opportunity_rows

    cfg = load_config()
    before = _rss_mib()
    seconds = 0.0
    chunks = []
    with open(workdir / "opportunities.pickle", "rb") as src:
        while True:
            try:
                answers = pickle.load(src)  # noqa: S301 - written by prepare() just before
            except EOFError:
                break
            started = time.perf_counter()
            chunks.append(_opportunity_rows(answers, cfg))
            del answers
            seconds += time.perf_counter() - started
    started = time.perf_counter()
    frame = pd.concat(chunks)
    del chunks
    seconds += time.perf_counter() - started
    frame.to_parquet(workdir / "partner_central.parquet")
    return {"seconds": seconds, "rss_before_mib": before, "peak_rss_mib": _peak_mib()}


def extract_hubspot_step(workdir: Path) -> dict[str, Any]:
    """The ``extract_hubspot`` task's shape: every changed deal, company and contact held, then mapped."""
    from cosell_sync.config import load_config
    from cosell_sync.mapping import hubspot_to_frame

    cfg = load_config()
    with open(workdir / "hubspot.pickle", "rb") as src:
        data = pickle.load(src)  # noqa: S301 - written by prepare() just before
    before = _rss_mib()
    started = time.perf_counter()
    frame = hubspot_to_frame(
        data["deals"], data["companies"], data["contacts"], data["deal_company"], data["deal_contact"], cfg
    )
    seconds = time.perf_counter() - started
    frame.to_parquet(workdir / "hubspot.parquet")
    return {"seconds": seconds, "rss_before_mib": before, "peak_rss_mib": _peak_mib()}


def plan_step(workdir: Path) -> dict[str, Any]:
    """The ``plan`` task's shape: the three frames read (Partner Central's without ``_raw``), then diffed."""
    import pandas as pd
    import pyarrow.parquet as pq

    from cosell_sync.config import load_config
    from cosell_sync.conflicts import resolve
    from cosell_sync.diff import three_way_diff
    from cosell_sync.plan import build_plan

    cfg = load_config()
    before = _rss_mib()
    base = pd.read_parquet(workdir / "baseline.parquet")
    names = pq.read_schema(workdir / "partner_central.parquet").names
    pc = pd.read_parquet(workdir / "partner_central.parquet", columns=[c for c in names if c != "_raw"])
    hs = pd.read_parquet(workdir / "hubspot.parquet")
    started = time.perf_counter()
    diff = three_way_diff(base, pc, hs, cfg)
    resolved = resolve(diff, cfg)
    plan = build_plan(resolved, pc, base, cfg)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rss_before_mib": before,
        "peak_rss_mib": _peak_mib(),
        "diff_rows": len(diff),
        "hubspot_updates": len(plan.hubspot_updates),
        "partner_central_updates": len(plan.partner_central_updates),
        "conflicts": len(plan.conflicts),
    }


STEPS = {
    "extract_partner_central": extract_partner_central_step,
    "extract_hubspot": extract_hubspot_step,
    "plan": plan_step,
}


def _child(args: list[str]) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT, ROOT / "include", ROOT / "plugins")),
    }
    out = subprocess.run(
        [sys.executable, "-m", "bench.diff_step", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_diff_step(n: int) -> list[Result]:
    """Each task of the mapping and diff in its own process, as Airflow runs them; time and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="cosell-diff-") as tmp:
        _child(["prepare", str(n), tmp])
        r = {step: _child([step, tmp]) for step in STEPS}
    pc, hs, plan = r["extract_partner_central"], r["extract_hubspot"], r["plan"]
    shape = (
        f"{plan['diff_rows']:,} diff rows -> {plan['hubspot_updates']:,} HubSpot updates, "
        f"{plan['partner_central_updates']:,} PC updates, {plan['conflicts']:,} manual conflicts"
    )
    peak_step = max(r, key=lambda k: r[k]["peak_rss_mib"])
    peaks = ", ".join(
        f"{k} {v['peak_rss_mib']:.0f} MiB ({v['rss_before_mib']:.0f} MiB before its work)"
        for k, v in r.items()
    )
    return [
        figure(
            f"Diff + mapping step, {n:,} records: time",
            round(pc["seconds"] + hs["seconds"] + plan["seconds"], 2),
            "s",
            "<=",
            5,
            f"opportunities to frame rows (with _raw, in chunks) {pc['seconds']:.2f} s + hubspot_to_frame "
            f"{hs['seconds']:.2f} s + three_way_diff/resolve/build_plan {plan['seconds']:.2f} s; "
            f"10% changed per side, 1% on both; {shape}.",
        ),
        figure(
            f"Diff + mapping step, {n:,} records: peak RSS",
            round(r[peak_step]["peak_rss_mib"] / 1024, 3),
            "GiB",
            "<=",
            1,
            f"the largest peak RSS of the three tasks, each in its own process as Airflow runs them "
            f"({peak_step}); peaks: {peaks}. extract_partner_central receives the {n:,} GetOpportunity "
            f"answers 1,000 at a time and keeps the frame with each record's _raw JSON; extract_hubspot "
            f"holds every deal, company and contact; plan reads the frames (Partner Central's without "
            f"_raw) and the baseline.",
        ),
    ]


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "prepare"
    if mode == "prepare":
        result = prepare(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        result = STEPS[mode](Path(sys.argv[2]))
    print(json.dumps(result))
