"""``make demo``: run co-sell sync end to end against the local emulators, with no credentials.

1. starts the Partner Central and HubSpot emulators and a moto server (S3, DynamoDB) in threads;
2. runs ``cosell_hubspot_setup`` (property group, custom properties, state bucket and tables);
3. seeds a realistic book and brings it in sync with an initial ``cosell_reconcile`` run;
4. makes edits on both sides (including a conflict and an opportunity under AWS review);
5. runs ``cosell_reconcile`` twice more and prints each run's summary: the first applies the edits,
   the second shows the incremental path doing almost nothing (checked from the emulators' call
   counts: no write), then an AWS referral from arrival to acceptance.

The terminal gets only the demo's own lines: each step, each run's summary, the pending conflict and how to
resolve it, where the audit went. Everything Airflow, moto and the emulators log (request lines included)
goes to ``.demo/demo.log``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import requests

ROOT = Path(__file__).resolve().parents[2]
DEMO_HOME = ROOT / ".demo"
#: Quotas stay on, sped up so the demo takes about a minute (1 write/s becomes 25 writes/s).
TIME_SCALE = 25
#: A partner solution the Partner Central emulator seeds (``ListSolutions``); the co-sell deals name it.
DEMO_SOLUTION_ID = "S-1000001"
#: Where everything but the demo's own lines goes.
LOG_FILE = DEMO_HOME / "demo.log"
#: The terminal; set by :func:`_to_log_file`.
_OUT: TextIO = sys.stdout


def say(text: str = "") -> None:
    """Print a line of the demo to the terminal (stdout and stderr themselves go to the log file)."""
    print(text, file=_OUT, flush=True)


def _to_log_file() -> None:
    """Send this process's stdout, stderr and logging to ``.demo/demo.log``; keep the terminal for ``say``.

    Done at the file-descriptor level, so Airflow's structlog output, Python warnings and the request lines
    of moto and the emulators (all printed by libraries to fd 1 or 2) land in the file too.
    """
    global _OUT
    _OUT = os.fdopen(os.dup(1), "w", buffering=1)
    log = open(LOG_FILE, "a", buffering=1)  # noqa: SIM115 - open for the life of the process
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True)
    logging.captureWarnings(True)


def _configure_airflow() -> None:
    """Point Airflow at a fresh SQLite home inside the repo before anything imports it."""
    shutil.rmtree(DEMO_HOME, ignore_errors=True)
    (DEMO_HOME / "airflow").mkdir(parents=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(DEMO_HOME / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # All of it goes to .demo/demo.log (the terminal shows only the demo's lines).
            "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("DEMO_LOG_LEVEL", "INFO"),
        }
    )
    for path in (ROOT, ROOT / "include", ROOT / "plugins"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )


def _post(url: str, body: dict[str, Any] | None = None) -> Any:
    response = requests.post(url, json=body or {}, timeout=60)
    response.raise_for_status()
    return response.json() if response.content else None


def _load_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    return bag.dags[dag_id]


def _run(dag: Any, conf: dict[str, Any] | None = None) -> Any:
    run = dag.test(run_conf=conf or {})
    if str(getattr(run.state, "value", run.state)) != "success":
        raise SystemExit(f"{dag.dag_id} run {run.run_id} ended {run.state}; see {LOG_FILE}")
    return run


def _counters(pc_url: str, hs_url: str) -> tuple[dict[str, int], dict[str, int]]:
    """The emulators' calls so far: Partner Central by operation, HubSpot by endpoint."""
    pc = requests.get(f"{pc_url}/_emulator/calls", timeout=10).json()["by_operation"]
    hs = requests.get(f"{hs_url}/_emulator/calls", timeout=10).json()["by_endpoint"]
    return pc, hs


def writes_between(
    before: tuple[dict[str, int], dict[str, int]], after: tuple[dict[str, int], dict[str, int]]
) -> int:
    """Write calls made between two :func:`_counters` readings, from the emulators' own counts.

    Partner Central writes are the operations that are not ``Get``/``List``/``Search``; HubSpot writes
    are the non-GET endpoints other than searches and batch reads.
    """
    pc = sum(
        n - before[0].get(op, 0) for op, n in after[0].items() if not op.startswith(("Get", "List", "Search"))
    )
    hs = sum(
        n - before[1].get(ep, 0)
        for ep, n in after[1].items()
        if not ep.startswith("GET ") and not ep.endswith(("/search", "/batch/read"))
    )
    return pc + hs


def _report(stack: Any, run: Any) -> dict[str, Any]:
    import boto3

    from cosell_sync.audit import RunReport
    from cosell_sync.config import load_config
    from cosell_sync.storage import SnapshotStore

    cfg = load_config()
    s3 = boto3.client("s3", endpoint_url=stack.aws_url, region_name="us-east-1")
    store = SnapshotStore(s3, cfg.storage.bucket, cfg.storage.prefix)
    return RunReport(store, cfg.catalog, run.run_id).read_report()


def _print_run(title: str, report: dict[str, Any], pc_calls: int, hs_calls: int) -> None:
    from cosell_sync.report import format_report

    say(f"\n=== {title} ===")
    # The per-operation call list is for the task log (and report.json); the totals are enough here.
    say(format_report({**report, "api_calls": {}}, pc_calls, hs_calls))


def _print_conflicts(stack: Any, catalog: str) -> None:
    """The pending conflicts, with where and how to resolve each (ids and field names; no values)."""
    import boto3

    from cosell_sync.config import load_config
    from cosell_sync.conflict_store import ConflictStore

    cfg = load_config()
    ddb = boto3.client("dynamodb", endpoint_url=stack.aws_url, region_name="us-east-1")
    for item in ConflictStore(ddb, cfg.storage.state_table, catalog).pending():
        say(
            f"  conflict {item['conflict_id']}: {item['field']} of opportunity {item['opportunity_id']} "
            f"(deal {item.get('deal_id')}) changed differently on both sides; a HubSpot task on the deal "
            "shows both values."
        )
        say(
            "    resolve it: Airflow UI > cosell_resolve_conflict > Trigger, or\n"
            "    airflow dags trigger cosell_resolve_conflict --conf "
            f'\'{{"conflict_id": "{item["conflict_id"]}", "resolution": "USE_HUBSPOT_VALUE", '
            '"resolved_by": "<your user id>"}\''
        )


def _print_audit(stack: Any, catalog: str, runs: list[Any]) -> None:
    """Where the audit went, counted from the stores themselves."""
    import boto3

    from cosell_sync.config import load_config
    from cosell_sync.storage import SnapshotStore, run_key

    cfg = load_config()
    ddb = boto3.client("dynamodb", endpoint_url=stack.aws_url, region_name="us-east-1")
    entries = 0
    for page in ddb.get_paginator("scan").paginate(TableName=cfg.storage.audit_table, Select="COUNT"):
        entries += page["Count"]
    s3 = boto3.client("s3", endpoint_url=stack.aws_url, region_name="us-east-1")
    store = SnapshotStore(s3, cfg.storage.bucket, cfg.storage.prefix)
    say(
        f"\nAudit trail: {entries} entries in DynamoDB table {cfg.storage.audit_table} "
        f"(moto at {stack.aws_url})"
    )
    say(f"Run artefacts (report.json, changes.parquet, plan.json) under s3://{cfg.storage.bucket}/:")
    for run in runs:
        say(f"  {store.full_key(run_key(catalog, run.run_id, 'report.json')).rsplit('/', 1)[0]}/")


def _edits(stack: Any, hs_client: Any, pc_client: Any, catalog: str) -> list[str]:
    """Edits on both sides since the initial sync; returns a description of each."""
    from cosell_sync.config import load_config

    cfg = load_config()
    link = cfg.link_property
    deals = hs_client.crm.deals.search_api.do_search(
        public_object_search_request={
            "filterGroups": [{"filters": [{"propertyName": link, "operator": "HAS_PROPERTY"}]}],
            "properties": [link, "dealname", "amount", "dealstage"],
            "limit": 20,
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        }
    ).results
    notes: list[str] = []
    by_opp = {d.properties[link]: d for d in deals}
    status = {
        oid: pc_client.get_opportunity(Catalog=catalog, Identifier=oid)["LifeCycle"].get("ReviewStatus")
        for oid in sorted(by_opp)
    }
    editable = [oid for oid, st in status.items() if st == "Pending Submission"]
    under_review = [oid for oid, st in status.items() if st in ("Submitted", "In review")]
    # HubSpot side: renames.
    for oid in editable[0:3]:
        hs_client.crm.deals.basic_api.update(
            by_opp[oid].id,
            simple_public_object_input={
                "properties": {"dealname": f"{by_opp[oid].properties['dealname']} (expansion)"}
            },
        )
    notes.append("HubSpot: renamed 3 deals")
    # Partner Central side: AWS-side next steps on other opportunities.
    for oid in editable[3:6]:
        _post(
            f"{stack.partner_central_url}/_emulator/simulate/aws-update",
            {
                "catalog": catalog,
                "identifier": oid,
                "LifeCycle": {"NextSteps": "AWS account team scheduled a joint call"},
            },
        )
    notes.append("Partner Central: next steps changed on 3 opportunities")
    # A conflict: the amount (manual resolution in the shipped config) changes on both sides.
    conflict = editable[6]
    hs_client.crm.deals.basic_api.update(
        by_opp[conflict].id, simple_public_object_input={"properties": {"amount": "123456"}}
    )
    current = pc_client.get_opportunity(Catalog=catalog, Identifier=conflict)
    spend = current.get("Project", {}).get("ExpectedCustomerSpend") or []
    if spend:
        spend[0]["Amount"] = "98765"
        _post(
            f"{stack.partner_central_url}/_emulator/simulate/aws-update",
            {"catalog": catalog, "identifier": conflict, "Project": {"ExpectedCustomerSpend": spend}},
        )
    notes.append(f"Both sides: amount of {conflict} changed differently (a manual conflict)")
    # An opportunity under AWS review: its HubSpot edit must wait, not be dropped.
    if under_review:
        review = under_review[0]
        if status[review] == "Submitted":
            _post(
                f"{stack.partner_central_url}/_emulator/simulate/review",
                {"catalog": catalog, "identifier": review, "review_status": "In review"},
            )
        hs_client.crm.deals.basic_api.update(
            by_opp[review].id, simple_public_object_input={"properties": {"closedate": "2027-12-31"}}
        )
        notes.append(f"HubSpot: close date of the deal of {review}, which AWS has 'In review' (deferred)")
    return notes


def _referral_deal(hs_client: Any, invitation_id: str) -> Any:
    """The one deal made for an invitation (found by its unique ``aws_invitation_id``)."""
    found = hs_client.crm.deals.search_api.do_search(
        public_object_search_request={
            "filterGroups": [
                {"filters": [{"propertyName": "aws_invitation_id", "operator": "EQ", "value": invitation_id}]}
            ],
            "properties": [
                "dealname",
                "aws_invitation_status",
                "aws_opportunity_id",
                "aws_invitation_expires_at",
            ],
        }
    )
    assert found.total == 1, f"expected one deal for invitation {invitation_id}, found {found.total}"
    return found.results[0]


def _referral(reconcile: Any, pc_url: str, hs_url: str, hs_client: Any) -> None:
    """An AWS referral arrives, becomes a deal; the seller accepts it on the deal; the opportunity links."""
    invitation = _post(f"{pc_url}/_emulator/simulate/aws-referral", {"catalog": "AWS"})["invitation_id"]
    say(f"\n=== Run 3: an AWS referral arrives (invitation {invitation}) ===")
    _run(reconcile)
    deal = _referral_deal(hs_client, invitation)
    props = deal.properties
    say(
        f"  deal {deal.id} '{props['dealname']}': invitation {props['aws_invitation_status']}, "
        f"expires {props['aws_invitation_expires_at']}; a task asks the owner to accept or reject it"
    )
    hs_client.crm.deals.basic_api.update(
        deal.id, simple_public_object_input={"properties": {"aws_invitation_action": "Accept"}}
    )
    say("  the seller sets AWS Invitation Action = Accept on the deal")
    say("\n=== Run 4: the acceptance goes to AWS ===")
    _run(reconcile)
    deal = _referral_deal(hs_client, invitation)
    say(
        f"  StartEngagementByAcceptingInvitationTask completed: deal {deal.id} is now linked to opportunity "
        f"{deal.properties['aws_opportunity_id']} (invitation {deal.properties['aws_invitation_status']}), "
        "and syncs like any other"
    )


def seed_book(pc_url: str, hs_url: str, catalog: str = "AWS") -> dict[str, int]:
    """Seed the demo book: 200 opportunities, 120 deals (150 contacts, 100 companies), 15 marked for co-sell.

    HubSpot's custom properties must exist first (``cosell_hubspot_setup``). Each co-sell deal names the
    partner solution it sells (Partner Central needs one before a submission or stage Committed).

    Returns:
        The counts seeded.
    """
    import hubspot

    from cosell_local.stack import LOCAL_HUBSPOT_TOKEN

    seeded = _post(f"{pc_url}/_emulator/seed", {"opportunities": 200, "seed": 7, "catalog": catalog})
    _post(f"{hs_url}/_emulator/seed", {"deals": 120, "contacts": 150, "companies": 100, "seed": 7})
    hs_client = hubspot.Client.create(access_token=LOCAL_HUBSPOT_TOKEN, host=hs_url, base_url=hs_url)
    # Mark some HubSpot deals for co-sell: each becomes a new opportunity at the next sync.
    page = hs_client.crm.deals.basic_api.get_page(limit=15)
    cosell = {"aws_sync_enabled": "true", "aws_solution_ids": DEMO_SOLUTION_ID}
    hs_client.crm.deals.batch_api.update(
        batch_input_simple_public_object_batch_input={
            "inputs": [{"id": d.id, "properties": cosell} for d in page.results]
        }
    )
    return {"opportunities": len(seeded["opportunity_ids"]), "deals": 120, "cosell_deals": len(page.results)}


def main() -> int:
    """Run the demo; returns the process exit code."""
    _configure_airflow()
    _to_log_file()
    import boto3
    import hubspot

    from cosell_local.stack import LOCAL_HUBSPOT_TOKEN, local_stack

    started = time.monotonic()
    say(f"co-sell sync demo: Airflow, moto and emulator logs go to {LOG_FILE.relative_to(ROOT)}")
    with local_stack() as stack:
        stack.export()
        pc_url, hs_url = stack.partner_central_url, stack.hubspot_url
        for url in (pc_url, hs_url):
            _post(f"{url}/_emulator/quotas", {"enabled": True, "time_scale": TIME_SCALE})
        say(
            f"Partner Central emulator: {pc_url}\nHubSpot emulator:         {hs_url}\n"
            f"S3/DynamoDB (moto):       {stack.aws_url}\n"
            f"Quotas on, {TIME_SCALE}x faster than AWS and HubSpot allow"
        )

        setup = _load_dag("cosell_hubspot_setup")
        _run(setup)
        before = _counters(pc_url, hs_url)
        _run(setup)
        rewritten = writes_between(before, _counters(pc_url, hs_url))
        say(
            "\ncosell_hubspot_setup: property group, custom properties, bucket and tables created; "
            "run again, "
            + ("it wrote nothing (already set up)" if rewritten == 0 else f"it made {rewritten} write(s)")
        )

        catalog = "AWS"
        seeded = seed_book(pc_url, hs_url, catalog)
        hs_client = hubspot.Client.create(access_token=LOCAL_HUBSPOT_TOKEN, host=hs_url, base_url=hs_url)
        pc_client = boto3.client("partnercentral-selling", region_name="us-east-1", endpoint_url=pc_url)
        say(
            f"Seeded {seeded['opportunities']} opportunities and {seeded['deals']} deals; "
            f"{seeded['cosell_deals']} deals marked for co-sell"
        )

        reconcile = _load_dag("cosell_reconcile")
        runs = []
        for title, prepare in (
            ("Run 0: initial load", None),
            ("Run 1: after edits on both sides", "edits"),
            ("Run 2: nothing changed since", None),
        ):
            if prepare == "edits":
                for line in _edits(stack, hs_client, pc_client, catalog):
                    say(f"  edit: {line}")
            before = _counters(pc_url, hs_url)
            run = _run(reconcile)
            after = _counters(pc_url, hs_url)
            runs.append(run)
            pc_calls = sum(after[0].values()) - sum(before[0].values())
            hs_calls = sum(after[1].values()) - sum(before[1].values())
            _print_run(title, _report(stack, run), pc_calls, hs_calls)
            if prepare == "edits":
                _print_conflicts(stack, catalog)
            if title.startswith("Run 2"):
                written = writes_between(before, after)
                say(
                    "  checked: no write reached either system"
                    if written == 0
                    else f"  {written} write(s) reached the systems (the deferred record is retried each run)"
                )
        _referral(reconcile, pc_url, hs_url, hs_client)
        _print_audit(stack, catalog, runs)
        say(f"\nDemo finished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
