"""The diff and mapping step on a large book, in its own process so its peak RSS is the step's.

``python -m bench.diff_step N`` builds N Partner Central opportunities (the emulator's seed generator) and
their N HubSpot deals with a company and a contact each (mapped from the same records), changes 10% on
each side (1% on both, differently), then times ``opportunities_to_frame`` + ``hubspot_to_frame`` +
``three_way_diff`` + ``resolve`` + ``build_plan`` against a baseline of the unchanged values. Prints JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
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


def child(n: int) -> dict[str, Any]:
    """Build inputs, run the step once, and return time and memory figures."""
    from cosell_sync.conflicts import resolve
    from cosell_sync.diff import three_way_diff
    from cosell_sync.mapping import hubspot_to_frame, opportunities_to_frame
    from cosell_sync.plan import build_plan

    data = _inputs(n)
    cfg = data["cfg"]
    before = _rss_mib()
    started = time.perf_counter()
    pc = opportunities_to_frame(data["opps"], cfg)
    t_pc = time.perf_counter()
    hs = hubspot_to_frame(
        data["deals"], data["companies"], data["contacts"], data["deal_company"], data["deal_contact"], cfg
    )
    t_hs = time.perf_counter()
    diff = three_way_diff(data["base"], pc, hs, cfg)
    resolved = resolve(diff, cfg)
    plan = build_plan(resolved, pc, data["base"], cfg)
    done = time.perf_counter()
    return {
        "records": n,
        "seconds": done - started,
        "opportunities_to_frame": t_pc - started,
        "hubspot_to_frame": t_hs - t_pc,
        "diff_resolve_plan": done - t_hs,
        "diff_rows": len(diff),
        "hubspot_updates": len(plan.hubspot_updates),
        "partner_central_updates": len(plan.partner_central_updates),
        "conflicts": len(plan.conflicts),
        "rss_before_mib": before,
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure_diff_step(n: int) -> list[Result]:
    """Run :func:`child` in a subprocess; one figure for time, one for peak RSS."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT, ROOT / "include", ROOT / "plugins")),
    }
    out = subprocess.run(
        [sys.executable, "-m", "bench.diff_step", str(n)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    shape = (
        f"{r['diff_rows']:,} diff rows -> {r['hubspot_updates']:,} HubSpot updates, "
        f"{r['partner_central_updates']:,} PC updates, {r['conflicts']:,} manual conflicts"
    )
    return [
        figure(
            f"Diff + mapping step, {n:,} records: time",
            round(r["seconds"], 2),
            "s",
            "<=",
            5,
            f"opportunities_to_frame {r['opportunities_to_frame']:.2f} s + hubspot_to_frame "
            f"{r['hubspot_to_frame']:.2f} s + three_way_diff/resolve/build_plan "
            f"{r['diff_resolve_plan']:.2f} s; "
            f"10% changed per side, 1% on both; {shape}.",
        ),
        figure(
            f"Diff + mapping step, {n:,} records: peak RSS",
            round(r["peak_rss_mib"] / 1024, 3),
            "GiB",
            "<=",
            1,
            f"peak RSS of the whole subprocess ({r['peak_rss_mib']:.0f} MiB) including the in-memory inputs "
            f"({n:,} full GetOpportunity records, deals, companies, contacts, baseline: "
            f"{r['rss_before_mib']:.0f} MiB before the step); the step itself adds "
            f"{r['peak_rss_mib'] - r['rss_before_mib']:.0f} MiB at most.",
        ),
    ]


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)))
