"""AWS referrals under faults: nothing lost, nothing duplicated (``dag.test()`` against the emulators).

- HubSpot answers a write of a referral's take-in (deal upsert, company upsert, association, owner task)
  with a 504 after applying it (or refuses the task): the next run completes the take-in; one deal, one
  owner task, one company per invitation.
- Partner Central throttles or fails ``ListEngagementInvitations``, the accept or the reject: botocore's
  retries get through, or the decision waits on the deal for the next run; accepted once, linked once.
- The accept (or reject) times out after Partner Central applied it: it is read back and finished without
  a second accept, and the accepted opportunity never becomes a second deal.
- ``cosell_invitation`` while a ``cosell_reconcile`` holds the catalog's lease fails naming that run,
  having sent nothing; the decision is carried out once in the end.

Partner Central faults are injected at the HTTP layer of the sync's own boto3 client (botocore's
``before-send``): the emulator's fault controls are random rates over every operation, and cannot apply a
request and then fail it. botocore's retry handler sees them as it would see the service's answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.dags.test_referrals import HEADERS, _deal, _deals_for, _invitation, _referral
from tests.faults.test_duplicates import _no_hubspot_retries
from tests.faults.test_overlap_and_replay import _lease, _no_wait

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]
LATER = ["retried-by-botocore", "left-for-the-next-run"]  # botocore makes 5 attempts


@dataclass
class PCFault:
    """The next ``times`` HTTP attempts of one Partner Central operation fail.

    ``after=False``: answered ``error`` (HTTP ``status``) without reaching the emulator. ``after=True``:
    sent to the emulator (applied), then a read timeout, as when the answer is lost on its way back.
    """

    operation: str
    times: int
    error: str = ""
    status: int = 400
    after: bool = False

    def stream(self, **_: Any) -> Any:
        """The injected answer's body, as botocore reads a response (``raw.stream()``)."""
        yield json.dumps({"__type": self.error, "message": "injected"}).encode()

    def __call__(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse
        from botocore.exceptions import ReadTimeoutError

        if self.times <= 0:
            return None  # botocore sends the request
        self.times -= 1
        if self.after:
            requests.post(request.url, data=request.body, headers=dict(request.headers.items()), timeout=30)
            raise ReadTimeoutError(endpoint_url=request.url)
        return AWSResponse(request.url, self.status, {"x-amzn-ErrorType": self.error}, self)

    def install(self, monkeypatch: Any) -> PCFault:
        from cosell_hooks.partner_central import PartnerCentralHook

        real = PartnerCentralHook.get_client_type

        def client(hook: Any, *args: Any, **kwargs: Any) -> Any:
            c = real(hook, *args, **kwargs)
            service = c.meta.service_model.service_id.hyphenize()
            c.meta.events.register(f"before-send.{service}.{self.operation}", self)
            return c

        monkeypatch.setattr(PartnerCentralHook, "get_client_type", client)
        return self


def _hs(stack: Any, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{stack.hs_url}{path}"
    if body is None:
        r = requests.get(url, headers=HEADERS, timeout=30)
    else:
        r = requests.post(url, headers=HEADERS, json=body, timeout=30)
    r.raise_for_status()
    return r.json()


def _associated(stack: Any, deal_id: str, plural: str) -> list[str]:
    got = _hs(stack, f"/crm/v4/objects/deals/{deal_id}/associations/{plural}")
    return [str(x["toObjectId"]) for x in got["results"]]


def _records(stack: Any, inv: str) -> dict[str, int]:
    """What exists for one invitation on both sides."""
    deals = _deals_for(stack, inv)
    tasks = [{"id": t} for d in deals for t in _associated(stack, d["id"], "tasks")]
    read = {"inputs": tasks, "properties": ["hs_task_subject"]}
    subjects = [
        t["properties"].get("hs_task_subject") or ""
        for t in _hs(stack, "/crm/v3/objects/tasks/batch/read", read)["results"]
    ]
    made = {"propertyName": "aws_created_for", "operator": "EQ", "value": f"invitation:{inv}"}
    companies = _hs(stack, "/crm/v3/objects/companies/search", {"filterGroups": [{"filters": [made]}]})
    accepts = stack.pc.list_engagement_by_accepting_invitation_tasks(
        Catalog="AWS", EngagementInvitationIdentifier=[inv]
    )["TaskSummaries"]
    return {
        "deals": len(deals),
        "owner_tasks": sum(s.startswith("New AWS referral") for s in subjects),
        "companies": int(companies["total"]),
        "deal_companies": sum(len(_associated(stack, d["id"], "companies")) for d in deals),
        "deal_contacts": sum(len(_associated(stack, d["id"], "contacts")) for d in deals),
        "accept_tasks": len(accepts),
    }


def _taken_in_once(stack: Any, inv: str, accept_tasks: int = 0) -> None:
    once = {"deals": 1, "owner_tasks": 1, "companies": 1, "deal_companies": 1, "deal_contacts": 1}
    assert _records(stack, inv) == {**once, "accept_tasks": accept_tasks}


def _decided(stack: Any, action: str) -> tuple[str, str]:
    """A referral taken in by a run, the seller's decision set on its deal: (invitation, deal)."""
    inv = _referral(stack)
    stack.run()
    deal_id = _deal(stack, inv)["id"]
    reason = {"aws_rejection_reason": "Outside our region"} if action == "Reject" else {}
    stack.update_deal(deal_id, {"aws_invitation_action": action, **reason})
    return inv, deal_id


def _linked(stack: Any, inv: str, deal_id: str) -> None:
    """Accepted once; the opportunity linked to the referral's deal and to no other; no error left."""
    deal = _deal(stack, inv)["properties"]
    assert stack.deal_by_opportunity(deal["aws_opportunity_id"])["id"] == deal_id  # one deal for it
    assert deal["aws_invitation_status"] == "ACCEPTED"
    assert not deal.get("aws_sync_error")
    assert _invitation(stack, inv)["Status"] == "ACCEPTED"
    _taken_in_once(stack, inv, accept_tasks=1)


def _rejected_once(stack: Any, inv: str) -> None:
    got = _invitation(stack, inv)
    assert (got["Status"], got.get("RejectionReason")) == ("REJECTED", "Outside our region")
    deal = _deal(stack, inv)["properties"]
    assert (deal["dealstage"], deal["aws_invitation_status"]) == ("closedlost", "REJECTED")
    assert not deal.get("aws_sync_error")
    _taken_in_once(stack, inv)


# 1 -- HubSpot applies a take-in write, then answers 504 -------------------------------------------------
@pytest.mark.parametrize(
    ("endpoint", "when"),
    [
        ("POST /crm/v3/objects/deals/batch/upsert", "after"),
        ("POST /crm/v3/objects/companies/batch/upsert", "after"),
        ("POST /crm/v4/associations/deals/contacts/batch/associate/default", "after"),
        ("POST /crm/v3/objects/tasks/batch/create", "after"),
        ("POST /crm/v3/objects/tasks/batch/create", "before"),
    ],
)
def test_a_take_in_write_answered_5xx_is_completed_once_by_the_next_run(
    sync_stack: Any, monkeypatch: Any, endpoint: str, when: str
) -> None:
    _no_hubspot_retries(monkeypatch)  # the worst case: the hook does not resend even an upsert
    inv = _referral(sync_stack)
    sync_stack.hs_control(
        "faults", {"endpoint_faults": {endpoint: {"times": 1, "when": when, "status": 504}}}
    )
    for _ in range(3):
        sync_stack.run()
    assert _hs(sync_stack, "/_emulator/faults")["endpoint_faults"][endpoint]["times"] == 0  # it was met
    _taken_in_once(sync_stack, inv)
    assert _deal(sync_stack, inv)["properties"]["aws_invitation_status"] == "PENDING"


# 2 -- Partner Central throttles or fails before applying ------------------------------------------------
@pytest.mark.parametrize("times", [2, 5], ids=LATER)
@pytest.mark.parametrize(
    ("operation", "error", "status"),
    [
        ("ListEngagementInvitations", "ThrottlingException", 400),
        ("StartEngagementByAcceptingInvitationTask", "ThrottlingException", 400),
        ("StartEngagementByAcceptingInvitationTask", "InternalServerException", 500),
    ],
)
def test_a_throttled_or_failed_accept_is_accepted_once_and_linked(
    sync_stack: Any, monkeypatch: Any, operation: str, error: str, status: int, times: int
) -> None:
    inv, deal_id = _decided(sync_stack, "Accept")
    fault = PCFault(operation, times, error, status).install(monkeypatch)
    # All 5 attempts refused: the list fails the run; the accept's error shows on the deal, which keeps
    # the decision for the next run.
    sync_stack.run(expect="failed" if times == 5 and operation.startswith("List") else "success")
    assert fault.times == 0
    if times == 5 and operation.startswith("Start"):
        assert "Accepting the AWS invitation failed" in _deal(sync_stack, inv)["properties"]["aws_sync_error"]
        assert _records(sync_stack, inv)["accept_tasks"] == 0
    sync_stack.run()
    sync_stack.run()
    _linked(sync_stack, inv, deal_id)


@pytest.mark.parametrize("times", [2, 5], ids=LATER)
def test_a_reject_answered_5xx_is_sent_once_and_closes_the_deal(
    sync_stack: Any, monkeypatch: Any, times: int
) -> None:
    inv, _ = _decided(sync_stack, "Reject")
    PCFault("RejectEngagementInvitation", times, "InternalServerException", 500).install(monkeypatch)
    sync_stack.run()
    sync_stack.run()
    _rejected_once(sync_stack, inv)


# 3 -- Partner Central applies, then the answer is lost -------------------------------------------------
@pytest.mark.parametrize("times", [1, 5], ids=LATER)
def test_an_accept_that_timed_out_after_applying_is_linked_without_a_second_accept(
    sync_stack: Any, monkeypatch: Any, times: int
) -> None:
    inv, deal_id = _decided(sync_stack, "Accept")
    PCFault("StartEngagementByAcceptingInvitationTask", times, after=True).install(monkeypatch)
    sync_stack.run()
    # Read back and linked by the same run, before its extract could make a deal of the new opportunity.
    _linked(sync_stack, inv, deal_id)
    sync_stack.run()
    _linked(sync_stack, inv, deal_id)


def test_a_reject_that_timed_out_after_applying_still_closes_the_deal(
    sync_stack: Any, monkeypatch: Any
) -> None:
    inv, _ = _decided(sync_stack, "Reject")
    # Applied, the answer lost: botocore resends it to an invitation that is REJECTED by now (a conflict).
    PCFault("RejectEngagementInvitation", 1, after=True).install(monkeypatch)
    sync_stack.run()
    _rejected_once(sync_stack, inv)
    sync_stack.run()
    _rejected_once(sync_stack, inv)


# 4 -- cosell_invitation while cosell_reconcile holds the catalog --------------------------------------
ACCEPT = {"action": "Accept"}


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}


def test_cosell_invitation_during_a_reconcile_fails_clearly_and_sends_nothing(
    sync_stack: Any, monkeypatch: Any, tmp_path: Any, capfd: Any
) -> None:
    _no_wait(tmp_path, monkeypatch)  # the shipped config first waits lease.wait_seconds (120 s)
    inv = _referral(sync_stack)
    sync_stack.run()
    deal_id = _deal(sync_stack, inv)["id"]
    lease = _lease(sync_stack)
    assert lease.try_acquire("scheduled__reconcile")
    sync_stack.reset_calls()
    capfd.readouterr()

    run = sync_stack.run("cosell_invitation", conf={"invitation_id": inv, **ACCEPT}, expect="failed")
    assert _states(run)["decide"] == "failed"
    assert "is being synced by run scheduled__reconcile" in capfd.readouterr().out  # the task's log
    pc_calls, hs_calls = sync_stack.calls()
    assert not [op for op in pc_calls["by_operation"] if not op.startswith(("List", "Get"))]
    assert not [e for e in hs_calls["by_endpoint"] if "/batch/" in e and not e.endswith(("read", "search"))]
    assert lease.holder()["owner"] == "scheduled__reconcile"  # not given up on the holder's behalf

    lease.release("scheduled__reconcile")
    sync_stack.run()  # the reconcile's next run: the deal carries no decision, nothing is accepted
    _taken_in_once(sync_stack, inv)
    sync_stack.run("cosell_invitation", conf={"invitation_id": inv, **ACCEPT})
    sync_stack.run()
    _linked(sync_stack, inv, deal_id)


def test_a_reconcile_taking_the_lease_before_cosell_invitation_links_leaves_the_link_to_it(
    sync_stack: Any, monkeypatch: Any, tmp_path: Any
) -> None:
    from cosell_runtime import tasks

    _no_wait(tmp_path, monkeypatch)
    inv = _referral(sync_stack)
    sync_stack.run()
    deal_id = _deal(sync_stack, inv)["id"]
    lease = _lease(sync_stack)
    real_link = tasks.invitation_link

    def reconcile_starts_first(decided: dict[str, Any]) -> dict[str, Any]:
        assert lease.try_acquire("scheduled__reconcile")  # a scheduled run starts during the wait
        return real_link(decided)

    monkeypatch.setattr(tasks, "invitation_link", reconcile_starts_first)
    run = sync_stack.run("cosell_invitation", conf={"invitation_id": inv, **ACCEPT}, expect="failed")
    assert (_states(run)["decide"], _states(run)["link"]) == ("success", "failed")
    assert _records(sync_stack, inv)["accept_tasks"] == 1
    assert not _deal(sync_stack, inv)["properties"].get("aws_opportunity_id")

    lease.release("scheduled__reconcile")  # that run ends; the next one finds the accept and links it
    sync_stack.run()
    sync_stack.run()
    _linked(sync_stack, inv, deal_id)
