"""``make demo``: run co-sell sync end to end against the local emulators, with no credentials.

1. starts the Partner Central and HubSpot emulators and a moto server (S3, DynamoDB) in threads;
2. runs ``cosell_hubspot_setup`` (property group, custom properties, state bucket and tables);
3. seeds a realistic book and brings it in sync with an initial ``cosell_reconcile`` run;
4. makes edits on both sides (including a conflict and an opportunity under AWS review);
5. runs ``cosell_reconcile`` twice more and prints each run's summary: the first applies the edits,
   the second shows the incremental path doing almost nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
DEMO_HOME = ROOT / ".demo"
#: Quotas stay on, sped up so the demo takes about a minute (1 write/s becomes 25 writes/s).
TIME_SCALE = 25
#: A partner solution the Partner Central emulator seeds (``ListSolutions``); the co-sell deals name it.
DEMO_SOLUTION_ID = "S-1000001"


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
            "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("DEMO_LOG_LEVEL", "WARNING"),
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


def _calls(url: str) -> int:
    return int(requests.get(f"{url}/_emulator/calls", timeout=10).json()["total"])


def _load_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    return bag.dags[dag_id]


def _run(dag: Any, conf: dict[str, Any] | None = None) -> Any:
    run = dag.test(run_conf=conf or {})
    if str(getattr(run.state, "value", run.state)) != "success":
        raise SystemExit(f"{dag.dag_id} run {run.run_id} ended {run.state}; see the log above")
    return run


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

    print(f"\n=== {title} ===")
    print(format_report(report, pc_calls, hs_calls))


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
    print(f"\n=== Run 3: an AWS referral arrives (invitation {invitation}) ===")
    _run(reconcile)
    deal = _referral_deal(hs_client, invitation)
    props = deal.properties
    print(
        f"  deal {deal.id} '{props['dealname']}': invitation {props['aws_invitation_status']}, "
        f"expires {props['aws_invitation_expires_at']}; a task asks the owner to accept or reject it"
    )
    hs_client.crm.deals.basic_api.update(
        deal.id, simple_public_object_input={"properties": {"aws_invitation_action": "Accept"}}
    )
    print("  the seller sets AWS Invitation Action = Accept on the deal")
    print("\n=== Run 4: the acceptance goes to AWS ===")
    _run(reconcile)
    deal = _referral_deal(hs_client, invitation)
    print(
        f"  StartEngagementByAcceptingInvitationTask completed: deal {deal.id} is now linked to opportunity "
        f"{deal.properties['aws_opportunity_id']} (invitation {deal.properties['aws_invitation_status']}), "
        "and syncs like any other"
    )


def main() -> int:
    """Run the demo; returns the process exit code."""
    _configure_airflow()
    # The local S3/DynamoDB server logs every request at INFO: keep the demo's output to its summaries.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    import boto3
    import hubspot

    from cosell_local.stack import LOCAL_HUBSPOT_TOKEN, local_stack

    started = time.monotonic()
    with local_stack() as stack:
        stack.export()
        pc_url, hs_url = stack.partner_central_url, stack.hubspot_url
        for url in (pc_url, hs_url):
            _post(f"{url}/_emulator/quotas", {"enabled": True, "time_scale": TIME_SCALE})
        print(
            f"Partner Central emulator: {pc_url}\nHubSpot emulator:         {hs_url}\n"
            f"S3/DynamoDB (moto):       {stack.aws_url}\nQuotas on, time_scale={TIME_SCALE}"
        )

        setup = _load_dag("cosell_hubspot_setup")
        _run(setup)
        second = _run(setup)
        print(f"\ncosell_hubspot_setup: properties created; second run: {second.state} (no changes)")

        catalog = "AWS"
        seeded = _post(f"{pc_url}/_emulator/seed", {"opportunities": 200, "seed": 7, "catalog": catalog})
        _post(f"{hs_url}/_emulator/seed", {"deals": 120, "contacts": 150, "companies": 100, "seed": 7})
        hs_client = hubspot.Client.create(access_token=LOCAL_HUBSPOT_TOKEN, host=hs_url, base_url=hs_url)
        pc_client = boto3.client("partnercentral-selling", region_name="us-east-1", endpoint_url=pc_url)
        # Mark some HubSpot deals for co-sell: each becomes a new opportunity. Each names the partner
        # solution it sells (Partner Central needs one before a submission or stage Committed).
        page = hs_client.crm.deals.basic_api.get_page(limit=15)
        cosell = {"aws_sync_enabled": "true", "aws_solution_ids": DEMO_SOLUTION_ID}
        hs_client.crm.deals.batch_api.update(
            batch_input_simple_public_object_batch_input={
                "inputs": [{"id": d.id, "properties": cosell} for d in page.results]
            }
        )
        print(
            f"Seeded {len(seeded['opportunity_ids'])} opportunities and 120 deals; "
            f"15 deals marked for co-sell"
        )

        reconcile = _load_dag("cosell_reconcile")
        for title, prepare in (
            ("Run 0: initial load", None),
            ("Run 1: after edits on both sides", "edits"),
            ("Run 2: nothing changed since", None),
        ):
            if prepare == "edits":
                for line in _edits(stack, hs_client, pc_client, catalog):
                    print(f"  edit: {line}")
            before = (_calls(pc_url), _calls(hs_url))
            run = _run(reconcile)
            _print_run(title, _report(stack, run), _calls(pc_url) - before[0], _calls(hs_url) - before[1])
        _referral(reconcile, pc_url, hs_url, hs_client)
        print(
            f"\nAudit trail: DynamoDB table cosell-sync-audit; run reports and change sets: "
            f"s3://cosell-sync/cosell-sync/runs/{catalog}/  (moto at {stack.aws_url})"
        )
        print(f"Demo finished in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
