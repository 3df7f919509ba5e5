"""Tests for the two writers: :class:`PartnerCentralWriter` and :class:`HubSpotWriter`.

Both are driven through the real Airflow hooks (``PartnerCentralHook``, ``HubSpotHook``), configured by the
``AIRFLOW_CONN_*`` environment variables and pointed at the emulators. Every outcome is checked against what
the emulator holds afterwards and the calls it counted, not only against the writer's return value.

Where a test needs something to happen *between* two of the writer's calls (a console edit before the
UpdateOpportunity, an AWS submission mid-write), :class:`ScriptedApi` wraps the real hook and runs the
action on the emulator just before the chosen operation goes out.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import boto3
import pytest
import requests

from cosell_hooks import HubSpotHook, PartnerCentralHook
from cosell_sync.common import ts_key
from cosell_sync.config import SyncConfig, load_config
from cosell_sync.errors import ConflictError, ValidationError, WriteBlockedError
from cosell_sync.hubspot_api import HubSpotGateway
from cosell_sync.mapping import client_token
from cosell_sync.setup import ensure_properties
from cosell_sync.storage import SnapshotStore, run_key
from cosell_sync.writers import HubSpotWriter, PartnerCentralWriter
from cosell_sync.writers.hubspot import Checkpoints
from cosell_sync.writers.partner_central import (
    READ_ONLY_IN_PARTNER_CENTRAL,
    STAGE_BEFORE_SOLUTION,
    SolutionsRequiredError,
    parse_solution_ids,
    payload_matches,
)
from tests.emulators.partner_central.pc_helpers import SOLUTION_ID

PC_CONN = "AIRFLOW_CONN_PARTNER_CENTRAL_DEFAULT"
HS_CONN = "AIRFLOW_CONN_HUBSPOT_DEFAULT"
HS_TOKEN = "pat-na1-writer-tests"
CATALOG = "AWS"
#: Seeded active solutions besides SOLUTION_ID (S-1000005 is seeded Inactive).
OTHER_SOLUTION = "S-1000002"
INACTIVE_SOLUTION = "S-1000005"

#: A deal's canonical values: complete enough for CreateOpportunity and for submission.
DEAL_VALUES: dict[str, str | None] = {
    "project_title": "Data lake modernization",
    "stage": "Qualified",
    "target_close_date": "2030-01-15",
    "expected_spend_amount": "5000",
    "customer_business_problem": "Reporting takes days because data sits in silos.",
    "next_steps": "Kick-off call",
    "company_name": "Acme Analytics Inc.",
    "company_street": "1 Main Street",
    "company_city": "Seattle",
    "company_state": "WA",
    "company_postal_code": "98101",
    "company_country": "US",
    "company_website": "https://www.acme.example",
    "company_industry": "Software and Internet",
}


class NoLimit:
    """Stands in for the hooks' client-side rate limiters: the emulators' quotas are off here."""

    def acquire(self, n: int = 1) -> float:
        """Never wait."""
        return 0.0


# ---------------------------------------------------------------------------------------------------
# Partner Central fixtures and helpers
# ---------------------------------------------------------------------------------------------------
@dataclass
class PcEmulator:
    """Control-plane access to the Partner Central emulator (``/_emulator/...``) and a raw hook."""

    url: str
    hook: PartnerCentralHook

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST a test control and return its JSON answer."""
        response = requests.post(f"{self.url}/_emulator/{path}", json=body or {}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def calls(self) -> Counter[str]:
        """API calls the emulator answered, by operation."""
        body = requests.get(f"{self.url}/_emulator/calls", timeout=10).json()
        return Counter(body["by_operation"])

    def reset_calls(self) -> None:
        """Zero the call counters."""
        requests.delete(f"{self.url}/_emulator/calls", timeout=10).raise_for_status()

    def console_edit(self, opportunity_id: str, **fields: Any) -> None:
        """An edit made in the Partner Central console (or by AWS): moves ``LastModifiedDate``."""
        self.control("simulate/aws-update", {"catalog": CATALOG, "identifier": opportunity_id, **fields})

    def review(self, opportunity_id: str, status: str) -> None:
        """AWS's reviewer moves a submitted opportunity to ``status``."""
        self.control(
            "simulate/review", {"catalog": CATALOG, "identifier": opportunity_id, "review_status": status}
        )

    def read(self, opportunity_id: str) -> dict[str, Any]:
        """The opportunity as GetOpportunity returns it now (call counters are not reset)."""
        opp = self.hook.call("get_opportunity", Catalog=CATALOG, Identifier=opportunity_id)
        opp.pop("ResponseMetadata", None)
        return opp

    def submit_directly(self, opportunity_id: str) -> None:
        """Submit to AWS outside the writer (as another task or a person would)."""
        self.hook.call(
            "start_engagement_from_opportunity_task",
            Catalog=CATALOG,
            Identifier=opportunity_id,
            ClientToken=f"elsewhere-{opportunity_id}",
            AwsSubmission={"InvolvementType": "Co-Sell", "Visibility": "Full"},
        )


class ScriptedApi:
    """The real hook, with actions run on the emulator just before chosen operations are sent.

    Args:
        hook: the ``PartnerCentralHook`` every call goes to.
        before: operation -> actions; each call of that operation first runs (and drops) the next one.

    Attributes:
        sent: ``(operation, parameters)`` of every call and paginate, in order.
    """

    def __init__(
        self, hook: PartnerCentralHook, before: dict[str, list[Callable[[], None]]] | None = None
    ) -> None:
        self.hook = hook
        self.before = before or {}
        self.sent: list[tuple[str, dict[str, Any]]] = []

    @property
    def catalog(self) -> str:
        """The hook's catalog."""
        return self.hook.catalog

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Record, run the next scripted action for ``operation`` (if any), then call the hook."""
        self.sent.append((operation, copy.deepcopy(kwargs)))
        actions = self.before.get(operation)
        if actions:
            actions.pop(0)()
        return self.hook.call(operation, **kwargs)

    def paginate(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Record, then page through the hook."""
        self.sent.append((operation, copy.deepcopy(kwargs)))
        yield from self.hook.paginate(operation, **kwargs)

    def operations(self) -> list[str]:
        """The operations sent, in order."""
        return [op for op, _ in self.sent]

    def params(self, operation: str) -> list[dict[str, Any]]:
        """The parameters of every call of ``operation``."""
        return [p for op, p in self.sent if op == operation]


@pytest.fixture
def cfg() -> SyncConfig:
    """The shipped sync configuration."""
    return load_config()


@pytest.fixture
def pc(pc_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> PcEmulator:
    """The Partner Central emulator (quotas off, tasks finish at once) and the connection pointing at it."""
    extra = {"region_name": "us-east-1", "endpoint_url": pc_emulator.url, "max_attempts": 1}
    monkeypatch.setenv(
        PC_CONN, json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra})
    )
    requests.post(f"{pc_emulator.url}/_emulator/quotas", json={"enabled": False}, timeout=10)
    requests.post(f"{pc_emulator.url}/_emulator/config", json={"task_delay_ms": 0}, timeout=10)
    hook = PartnerCentralHook()
    hook.read_limiter = NoLimit()
    hook.write_limiter = NoLimit()
    return PcEmulator(pc_emulator.url, hook)


def pc_writer(
    cfg: SyncConfig, pc: PcEmulator, before: dict[str, list[Callable[[], None]]] | None = None
) -> tuple[PartnerCentralWriter, ScriptedApi]:
    """A writer on a fresh hook (wrapped in a :class:`ScriptedApi`), as apply/resolution build it."""
    hook = PartnerCentralHook()
    hook.read_limiter = NoLimit()
    hook.write_limiter = NoLimit()
    api = ScriptedApi(hook, before)
    return PartnerCentralWriter(cfg, api, CATALOG, Counter()), api


def new_opportunity(cfg: SyncConfig, pc: PcEmulator, deal_id: str = "9001", **values: str | None) -> str:
    """Create an opportunity for a deal (``DEAL_VALUES`` with ``values`` over them); returns its id."""
    writer, _ = pc_writer(cfg, pc)
    created = writer.create(deal_id, {**DEAL_VALUES, **values})
    assert "error" not in created, created
    return str(created["opportunity_id"])


def submitted_opportunity(cfg: SyncConfig, pc: PcEmulator, review: str | None = None) -> str:
    """An opportunity submitted to AWS (``Submitted``), optionally moved on by AWS's reviewer."""
    oid = new_opportunity(cfg, pc)
    writer, _ = pc_writer(cfg, pc)
    writer.submit(oid, [SOLUTION_ID])
    assert pc.read(oid)["LifeCycle"]["ReviewStatus"] == "Submitted"
    if review:
        pc.review(oid, review)
    return oid


def partner_part(opp: dict[str, Any]) -> dict[str, Any]:
    """The record without what every write moves (``LastModifiedDate``, next-steps history)."""
    out = copy.deepcopy(opp)
    out.pop("LastModifiedDate", None)
    (out.get("LifeCycle") or {}).pop("NextStepsHistory", None)
    return out


# ---------------------------------------------------------------------------------------------------
# PartnerCentralWriter: pure helpers
# ---------------------------------------------------------------------------------------------------
class TestPartnerCentralHelpers:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            pytest.param("S-1000001;S-1000002", ["S-1000001", "S-1000002"], id="semicolons"),
            pytest.param(
                " S-1000001 ; S-1000002, S-1000003 ", ["S-1000001", "S-1000002", "S-1000003"], id="mixed"
            ),
            pytest.param("S-1000001;S-1000001;", ["S-1000001"], id="deduplicated"),
            pytest.param("S-1000002 S-1000001", ["S-1000002", "S-1000001"], id="whitespace-keeps-order"),
            pytest.param("", [], id="empty"),
            pytest.param(None, [], id="none"),
        ],
    )
    def test_parse_solution_ids(self, value: str | None, expected: list[str]) -> None:
        assert parse_solution_ids(value) == expected

    def test_payload_matches(self) -> None:
        current = {
            "Id": "O1",
            "Catalog": "AWS",
            "LastModifiedDate": "old",
            "Project": {"Title": "T", "ExpectedCustomerSpend": [{"Amount": "5", "CurrencyCode": "USD"}]},
            "LifeCycle": {"Stage": "Qualified", "ReviewStatus": "Pending Submission"},
        }
        same = {
            "Identifier": "O1",
            "Catalog": "AWS",
            "LastModifiedDate": "new",
            "Project": {"Title": "T", "ExpectedCustomerSpend": [{"Amount": "5", "CurrencyCode": "USD"}]},
            "LifeCycle": {"Stage": "Qualified"},
        }
        assert payload_matches(same, current)
        assert not payload_matches({**same, "LifeCycle": {"Stage": "Committed"}}, current)
        other_spend = {"Title": "T", "ExpectedCustomerSpend": [{"Amount": "6", "CurrencyCode": "USD"}]}
        assert not payload_matches({**same, "Project": other_spend}, current)
        two_spends = {"ExpectedCustomerSpend": [{"Amount": "5"}, {"Amount": "5"}]}
        assert not payload_matches({**same, "Project": two_spends}, current)

    @pytest.mark.parametrize(
        ("review_status", "expected"),
        [
            pytest.param("Pending Submission", {}, id="pending-submission"),
            pytest.param(None, {}, id="unknown-yet"),
            pytest.param(
                "Submitted",
                {
                    "project_title": "REVIEW_IN_PROGRESS",
                    "target_close_date": "REVIEW_IN_PROGRESS",
                    "next_steps": "REVIEW_IN_PROGRESS",
                    "company_website": "REVIEW_IN_PROGRESS",
                },
                id="submitted",
            ),
            pytest.param(
                "In review",
                {
                    "project_title": "REVIEW_IN_PROGRESS",
                    "target_close_date": "REVIEW_IN_PROGRESS",
                    "next_steps": "REVIEW_IN_PROGRESS",
                    "company_website": "REVIEW_IN_PROGRESS",
                },
                id="in-review",
            ),
            pytest.param(
                "Action Required",
                {
                    "project_title": "NOT_EDITABLE_IN_ACTION_REQUIRED",
                    "next_steps": "NOT_EDITABLE_IN_ACTION_REQUIRED",
                },
                id="action-required-limits-fields",
            ),
            pytest.param(
                "Approved",
                {"project_title": "LOCKED_AFTER_APPROVAL", "company_website": "LOCKED_AFTER_APPROVAL"},
                id="approved-locks-fields",
            ),
            pytest.param(
                "Rejected",
                {
                    "project_title": "REJECTED_READ_ONLY",
                    "target_close_date": "REJECTED_READ_ONLY",
                    "next_steps": "REJECTED_READ_ONLY",
                    "company_website": "REJECTED_READ_ONLY",
                },
                id="rejected",
            ),
            pytest.param(
                "In Review",  # not the enum value ("In review"): never treated as editable
                {
                    "project_title": "UNKNOWN_REVIEW_STATUS",
                    "target_close_date": "UNKNOWN_REVIEW_STATUS",
                    "next_steps": "UNKNOWN_REVIEW_STATUS",
                    "company_website": "UNKNOWN_REVIEW_STATUS",
                },
                id="unknown-status",
            ),
        ],
    )
    def test_gate(self, cfg: SyncConfig, review_status: str | None, expected: dict[str, str]) -> None:
        writer = PartnerCentralWriter(cfg, ScriptedApi(PartnerCentralHook()), CATALOG)
        names = ["project_title", "target_close_date", "next_steps", "company_website"]
        assert writer.gate(review_status, names) == expected

    def test_gate_read_only_field(self, cfg: SyncConfig) -> None:
        """A field mapped Partner Central -> HubSpot is never written to Partner Central, in any state."""
        writer = PartnerCentralWriter(cfg, ScriptedApi(PartnerCentralHook()), CATALOG)
        gated = writer.gate("Pending Submission", ["review_status", "next_steps"])
        assert gated == {"review_status": READ_ONLY_IN_PARTNER_CENTRAL}


# ---------------------------------------------------------------------------------------------------
# PartnerCentralWriter.update
# ---------------------------------------------------------------------------------------------------
class TestPartnerCentralUpdate:
    def test_sends_whole_merged_record_with_last_modified(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid = new_opportunity(cfg, pc)
        before = pc.read(oid)
        writer, api = pc_writer(cfg, pc)
        pc.reset_calls()

        out = writer.update(oid, {"next_steps": "Send the proposal"})

        assert pc.calls()["UpdateOpportunity"] == 1
        assert (out.written, out.gated, out.superseded, out.attempts) == (
            {"next_steps": "Send the proposal"},
            {},
            {},
            1,
        )
        (payload,) = api.params("update_opportunity")
        assert payload["Identifier"] == oid
        assert payload["LastModifiedDate"] == before["LastModifiedDate"]
        # The whole record goes out: members the change does not touch are sent with their values.
        assert payload["Customer"] == before["Customer"]
        assert payload["Project"]["Title"] == before["Project"]["Title"]
        assert payload["PartnerOpportunityIdentifier"] == before["PartnerOpportunityIdentifier"]
        after = pc.read(oid)
        assert after["LifeCycle"]["NextSteps"] == "Send the proposal"
        # ...so UpdateOpportunity, which nulls every omitted member, changed nothing else.
        expected = partner_part(before)
        expected["LifeCycle"]["NextSteps"] = "Send the proposal"
        assert partner_part(after) == expected
        assert out.last_modified == ts_key(after["LastModifiedDate"]) != ts_key(before["LastModifiedDate"])
        assert writer.calls == Counter({"GetOpportunity": 1, "UpdateOpportunity": 1})

    def test_current_given_saves_the_read(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid = new_opportunity(cfg, pc)
        current = pc.read(oid)
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        out = writer.update(oid, {"target_close_date": "2030-03-31"}, current=current)

        assert pc.calls() == Counter({"UpdateOpportunity": 1})
        assert out.attempts == 1
        assert pc.read(oid)["LifeCycle"]["TargetCloseDate"] == "2030-03-31"

    def test_already_applied_sends_nothing(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid = new_opportunity(cfg, pc)
        before = pc.read(oid)
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        out = writer.update(oid, {"next_steps": DEAL_VALUES["next_steps"], "stage": "Qualified"})

        assert out.already_applied
        assert out.written == {"next_steps": DEAL_VALUES["next_steps"], "stage": "Qualified"}
        assert out.attempts == 0
        assert pc.calls()["UpdateOpportunity"] == 0
        assert pc.read(oid)["LastModifiedDate"] == before["LastModifiedDate"]

    def test_retried_update_is_written_once(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        """A retried task repeats the same write: the second pass finds it applied and sends nothing."""
        oid = new_opportunity(cfg, pc)
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        first = writer.update(oid, {"expected_spend_amount": "7500"})
        stamp = pc.read(oid)["LastModifiedDate"]
        second = writer.update(oid, {"expected_spend_amount": "7500"})

        assert (first.already_applied, second.already_applied) == (False, True)
        assert pc.calls()["UpdateOpportunity"] == 1
        after = pc.read(oid)
        assert after["LastModifiedDate"] == stamp
        assert after["Project"]["ExpectedCustomerSpend"][0]["Amount"] == "7500"

    def test_clearing_a_field_is_written(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid = new_opportunity(cfg, pc)
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        out = writer.update(oid, {"next_steps": None})

        assert not out.already_applied
        assert pc.calls()["UpdateOpportunity"] == 1
        assert pc.read(oid)["LifeCycle"].get("NextSteps") is None

    @pytest.mark.parametrize("status", ["Submitted", "In review"])
    def test_no_write_while_review_in_progress(self, cfg: SyncConfig, pc: PcEmulator, status: str) -> None:
        oid = submitted_opportunity(cfg, pc, review=None if status == "Submitted" else status)
        before = pc.read(oid)
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        out = writer.update(oid, {"next_steps": "Chase AWS", "target_close_date": "2030-06-30"})

        assert out.review_status == status
        assert out.gated == {"next_steps": "REVIEW_IN_PROGRESS", "target_close_date": "REVIEW_IN_PROGRESS"}
        assert (out.written, out.attempts, out.already_applied) == ({}, 0, False)
        assert pc.calls() == Counter({"GetOpportunity": 1})
        assert pc.read(oid) == before

    def test_action_required_writes_only_editable_fields(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid = submitted_opportunity(cfg, pc, review="Action Required")
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        out = writer.update(
            oid,
            {
                "target_close_date": "2030-06-30",
                "project_title": "Renamed project",
                "company_city": "Portland",
            },
        )

        assert out.gated == {"project_title": "NOT_EDITABLE_IN_ACTION_REQUIRED"}
        assert out.written == {"target_close_date": "2030-06-30", "company_city": "Portland"}
        assert pc.calls()["UpdateOpportunity"] == 1
        after = pc.read(oid)
        assert after["LifeCycle"]["TargetCloseDate"] == "2030-06-30"
        assert after["Customer"]["Account"]["Address"]["City"] == "Portland"
        assert after["Project"]["Title"] == DEAL_VALUES["project_title"]

    def test_approved_locks_fields(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid = submitted_opportunity(cfg, pc, review="Approved")
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        out = writer.update(
            oid,
            {
                "project_title": "Renamed project",
                "company_website": "https://new.example",
                "next_steps": "Go",
            },
        )

        assert out.gated == {
            "project_title": "LOCKED_AFTER_APPROVAL",
            "company_website": "LOCKED_AFTER_APPROVAL",
        }
        assert out.written == {"next_steps": "Go"}
        assert pc.calls()["UpdateOpportunity"] == 1
        after = pc.read(oid)
        assert after["LifeCycle"]["NextSteps"] == "Go"
        assert after["Project"]["Title"] == DEAL_VALUES["project_title"]
        assert after["Customer"]["Account"]["WebsiteUrl"] == DEAL_VALUES["company_website"]

    def test_read_only_field_is_never_sent(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid = new_opportunity(cfg, pc)
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        out = writer.update(oid, {"review_status": "Approved"})

        assert out.gated == {"review_status": READ_ONLY_IN_PARTNER_CENTRAL}
        assert out.written == {}
        assert pc.calls()["UpdateOpportunity"] == 0
        assert pc.read(oid)["LifeCycle"]["ReviewStatus"] == "Pending Submission"

    # -- ConflictException ---------------------------------------------------------------------------
    def test_conflict_rereads_and_keeps_the_other_edit(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        """A console edit of another field between Get and Update: re-read, merge again, both survive."""
        oid = new_opportunity(cfg, pc)
        city = {"Account": {"Address": {"City": "Tacoma"}}}
        edit = lambda: pc.console_edit(oid, Customer=city)  # noqa: E731
        writer, api = pc_writer(cfg, pc, {"update_opportunity": [edit]})
        pc.reset_calls()

        out = writer.update(oid, {"next_steps": "Send the proposal"})

        assert out.attempts == 2
        assert out.written == {"next_steps": "Send the proposal"}
        calls = pc.calls()
        assert (calls["GetOpportunity"], calls["UpdateOpportunity"]) == (2, 2)
        first, second = api.params("update_opportunity")
        assert first["LastModifiedDate"] != second["LastModifiedDate"]
        assert second["Customer"]["Account"]["Address"]["City"] == "Tacoma"
        after = pc.read(oid)
        assert after["LifeCycle"]["NextSteps"] == "Send the proposal"
        assert after["Customer"]["Account"]["Address"]["City"] == "Tacoma"
        assert out.last_modified == ts_key(after["LastModifiedDate"])

    def test_conflict_regates_fresh_record(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        """AWS moved the review to Action Required between Get and Update: the retry is gated anew."""
        oid = new_opportunity(cfg, pc)
        to_action_required = lambda: pc.console_edit(  # noqa: E731
            oid, LifeCycle={"ReviewStatus": "Action Required"}
        )
        writer, api = pc_writer(cfg, pc, {"update_opportunity": [to_action_required]})
        pc.reset_calls()

        out = writer.update(oid, {"next_steps": "Chase AWS", "target_close_date": "2030-06-30"})

        assert out.review_status == "Action Required"
        assert out.gated == {"next_steps": "NOT_EDITABLE_IN_ACTION_REQUIRED"}
        assert out.written == {"target_close_date": "2030-06-30"}
        assert out.attempts == 2
        first, second = api.params("update_opportunity")
        assert first["LifeCycle"]["NextSteps"] == "Chase AWS"
        assert second["LifeCycle"]["NextSteps"] == DEAL_VALUES["next_steps"]
        after = pc.read(oid)
        assert after["LifeCycle"]["NextSteps"] == DEAL_VALUES["next_steps"]
        assert after["LifeCycle"]["TargetCloseDate"] == "2030-06-30"

    def _submitted_between_get_and_update(
        self, cfg: SyncConfig, pc: PcEmulator
    ) -> tuple[str, PartnerCentralWriter, dict[str, Any]]:
        """An opportunity with a solution, read now, whose submission lands just before the Update."""
        oid = new_opportunity(cfg, pc)
        writer, _ = pc_writer(cfg, pc)
        writer.ensure_solutions(pc.read(oid), [SOLUTION_ID])
        current = pc.read(oid)
        writer, _ = pc_writer(cfg, pc, {"update_opportunity": [lambda: pc.submit_directly(oid)]})
        pc.reset_calls()
        return oid, writer, current

    def test_record_submitted_meanwhile_is_not_written(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid, writer, current = self._submitted_between_get_and_update(cfg, pc)

        out = writer.update(oid, {"next_steps": "Chase AWS"}, current=current)

        assert out.written == {}
        assert pc.calls()["UpdateOpportunity"] == 1
        after = pc.read(oid)
        assert after["LifeCycle"]["ReviewStatus"] == "Submitted"
        assert after["LifeCycle"]["NextSteps"] == DEAL_VALUES["next_steps"]

    def test_record_submitted_meanwhile_is_reported_gated(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid, writer, current = self._submitted_between_get_and_update(cfg, pc)

        out = writer.update(oid, {"next_steps": "Chase AWS"}, current=current)

        assert out.review_status == "Submitted"
        assert out.gated == {"next_steps": "REVIEW_IN_PROGRESS"}
        assert out.written == {}

    def test_conflict_rediff_supersedes_newer_console_edit(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        """The same field was edited in the console after the plan: kept, returned as superseded."""
        oid = new_opportunity(cfg, pc)
        edit = lambda: pc.console_edit(oid, LifeCycle={"NextSteps": "Console says wait"})  # noqa: E731
        writer, _ = pc_writer(cfg, pc, {"update_opportunity": [edit]})
        expected = {"next_steps": DEAL_VALUES["next_steps"], "target_close_date": "2030-01-15"}
        pc.reset_calls()

        out = writer.update(
            oid, {"next_steps": "Plan says go", "target_close_date": "2030-09-30"}, expected=expected
        )

        assert out.superseded == {"next_steps": "Console says wait"}
        assert out.written == {"target_close_date": "2030-09-30"}
        assert out.attempts == 2
        assert pc.calls()["UpdateOpportunity"] == 2
        after = pc.read(oid)
        assert after["LifeCycle"]["NextSteps"] == "Console says wait"
        assert after["LifeCycle"]["TargetCloseDate"] == "2030-09-30"

    def test_superseded_before_any_write(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        """The plan's view is already stale on the first read: nothing is sent for the edited field."""
        oid = new_opportunity(cfg, pc)
        pc.console_edit(oid, LifeCycle={"NextSteps": "Console says wait"})
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        out = writer.update(
            oid, {"next_steps": "Plan says go"}, expected={"next_steps": DEAL_VALUES["next_steps"]}
        )

        assert out.superseded == {"next_steps": "Console says wait"}
        assert (out.written, out.attempts) == ({}, 0)
        assert pc.calls()["UpdateOpportunity"] == 0
        assert pc.read(oid)["LifeCycle"]["NextSteps"] == "Console says wait"

    def test_conflict_retries_exhausted(self, pc: PcEmulator) -> None:
        """A record that keeps changing: conflict_retries + 1 attempts, then ConflictError; not written."""
        cfg = load_config(overrides={"conflict_retries": 2})
        oid = new_opportunity(cfg, pc)

        def console_edit(n: int) -> Callable[[], None]:
            problem = f"Console edit number {n} of the problem"
            return lambda: pc.console_edit(oid, Project={"CustomerBusinessProblem": problem})

        edits = [console_edit(n) for n in range(3)]
        writer, _ = pc_writer(cfg, pc, {"update_opportunity": edits})
        pc.reset_calls()

        with pytest.raises(ConflictError) as err:
            writer.update(oid, {"next_steps": "Never lands"})

        assert err.value.code == "ConflictException"
        assert pc.calls()["UpdateOpportunity"] == 3
        after = pc.read(oid)
        assert after["LifeCycle"]["NextSteps"] == DEAL_VALUES["next_steps"]
        assert after["Project"]["CustomerBusinessProblem"] == "Console edit number 2 of the problem"


# ---------------------------------------------------------------------------------------------------
# PartnerCentralWriter: solutions
# ---------------------------------------------------------------------------------------------------
class TestPartnerCentralOtherContacts:
    """``Customer.Contacts[1..]`` of an existing opportunity follow the deal's contacts (one way)."""

    PRIMARY: ClassVar[dict[str, str | None]] = {
        "contact_email": "ann@customer.example",
        "contact_first_name": "Ann",
    }
    OTHERS: ClassVar[list[dict[str, str]]] = [
        {"Email": "bo@customer.example", "FirstName": "Bo"},
        {"Email": "cy@customer.example"},
    ]

    def _emails(self, pc: PcEmulator, oid: str) -> list[str | None]:
        return [c.get("Email") for c in pc.read(oid)["Customer"].get("Contacts") or []]

    def test_contacts_alone_are_one_update_and_a_repeat_sends_nothing(
        self, cfg: SyncConfig, pc: PcEmulator
    ) -> None:
        oid = new_opportunity(cfg, pc, **self.PRIMARY)
        writer, api = pc_writer(cfg, pc)
        out = writer.update(oid, {}, other_contacts=self.OTHERS)
        assert api.operations() == ["get_opportunity", "update_opportunity"]
        assert out.other_contacts == 2
        assert out.written == {}
        assert self._emails(pc, oid) == ["ann@customer.example", "bo@customer.example", "cy@customer.example"]

        writer, api = pc_writer(cfg, pc)
        again = writer.update(oid, {}, other_contacts=self.OTHERS)
        assert api.operations() == ["get_opportunity"]  # the record holds them: nothing sent
        assert again.already_applied
        assert again.other_contacts is None

        # Removed on the deal: the contacts the sync sent before go, the primary stays.
        writer, _ = pc_writer(cfg, pc)
        writer.update(
            oid, {}, other_contacts=[], dropped_contacts=["bo@customer.example", "cy@customer.example"]
        )
        assert self._emails(pc, oid) == ["ann@customer.example"]

    def test_partner_centrals_own_contacts_are_kept_behind_hubspots(
        self, cfg: SyncConfig, pc: PcEmulator
    ) -> None:
        # AWS (or a console user) added a contact the deal never had: the sync adds HubSpot's, never drops it.
        oid = new_opportunity(cfg, pc, **self.PRIMARY)
        contacts = [
            {"Email": "ann@customer.example", "FirstName": "Ann"},
            {"Email": "aws.added@customer.example"},
        ]
        pc.console_edit(oid, Customer={"Contacts": contacts})
        writer, _ = pc_writer(cfg, pc)
        out = writer.update(oid, {}, other_contacts=self.OTHERS[:1])
        assert out.other_contacts == 2
        assert self._emails(pc, oid) == [
            "ann@customer.example",
            "bo@customer.example",
            "aws.added@customer.example",
        ]
        # Nothing new on the deal: the merged list is what the record holds, so nothing is sent.
        writer, api = pc_writer(cfg, pc)
        assert writer.update(oid, {}, other_contacts=self.OTHERS[:1]).already_applied
        assert "update_opportunity" not in api.operations()

    def test_a_field_change_and_the_contacts_go_in_one_write(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid = new_opportunity(cfg, pc, **self.PRIMARY)
        writer, api = pc_writer(cfg, pc)
        out = writer.update(oid, {"next_steps": "Workshop booked"}, other_contacts=self.OTHERS[:1])
        assert api.operations().count("update_opportunity") == 1
        assert out.written == {"next_steps": "Workshop booked"}
        opp = pc.read(oid)
        assert opp["LifeCycle"]["NextSteps"] == "Workshop booked"
        assert self._emails(pc, oid) == ["ann@customer.example", "bo@customer.example"]

    def test_a_console_edit_during_the_write_is_kept_and_the_contacts_still_sent(
        self, cfg: SyncConfig, pc: PcEmulator
    ) -> None:
        oid = new_opportunity(cfg, pc, **self.PRIMARY)
        writer, _api = pc_writer(
            cfg,
            pc,
            {
                "update_opportunity": [
                    lambda: pc.console_edit(oid, LifeCycle={"NextSteps": "Console meanwhile"})
                ]
            },
        )
        out = writer.update(oid, {}, other_contacts=self.OTHERS)
        assert out.attempts == 2  # ConflictException, re-read, merged again
        opp = pc.read(oid)
        assert opp["LifeCycle"]["NextSteps"] == "Console meanwhile"
        assert self._emails(pc, oid)[1:] == ["bo@customer.example", "cy@customer.example"]

    @pytest.mark.parametrize(
        ("review", "reason"),
        [
            pytest.param(None, "REVIEW_IN_PROGRESS", id="submitted-waits"),
            # Rejected records never take a change: no reason, so nothing is retried run after run.
            pytest.param("Rejected", None, id="rejected-never"),
        ],
    )
    def test_under_review_the_contacts_are_not_sent(
        self, cfg: SyncConfig, pc: PcEmulator, review: str | None, reason: str | None
    ) -> None:
        oid = submitted_opportunity(cfg, pc, review)
        before = pc.read(oid)["Customer"].get("Contacts")
        writer, api = pc_writer(cfg, pc)
        out = writer.update(oid, {}, other_contacts=self.OTHERS)
        assert "update_opportunity" not in api.operations()
        assert out.other_contacts_gated == reason
        assert out.already_applied is (reason is None)
        assert pc.read(oid)["Customer"].get("Contacts") == before


class TestPartnerCentralSolutions:
    def test_committed_associates_deal_solutions_first(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid = new_opportunity(cfg, pc)
        writer, api = pc_writer(cfg, pc)
        pc.reset_calls()
        deal_property = f"{SOLUTION_ID}; {OTHER_SOLUTION}"

        out = writer.update(oid, {"stage": "Committed"}, solution_ids=parse_solution_ids(deal_property))

        assert out.associated == [SOLUTION_ID, OTHER_SOLUTION]
        assert out.written == {"stage": "Committed"}
        calls = pc.calls()
        assert (calls["ListSolutions"], calls["AssociateOpportunity"], calls["UpdateOpportunity"]) == (
            1,
            2,
            1,
        )
        ops = api.operations()
        assert ops.index("associate_opportunity") < ops.index("update_opportunity")
        after = pc.read(oid)
        assert after["LifeCycle"]["Stage"] == "Committed"
        assert sorted(after["RelatedEntityIdentifiers"]["Solutions"]) == [SOLUTION_ID, OTHER_SOLUTION]

    def test_committed_uses_default_solutions(self, pc: PcEmulator) -> None:
        cfg = load_config(overrides={"submission": {"default_solution_ids": [OTHER_SOLUTION]}})
        oid = new_opportunity(cfg, pc)
        writer, _ = pc_writer(cfg, pc)

        out = writer.update(oid, {"stage": "Committed"})

        assert out.associated == [OTHER_SOLUTION]
        after = pc.read(oid)
        assert after["LifeCycle"]["Stage"] == "Committed"
        assert after["RelatedEntityIdentifiers"]["Solutions"] == [OTHER_SOLUTION]

    def test_committed_with_solution_already_associated(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid = new_opportunity(cfg, pc)
        writer, _ = pc_writer(cfg, pc)
        writer.ensure_solutions(pc.read(oid), [SOLUTION_ID])
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        out = writer.update(oid, {"stage": "Launched"})

        assert (out.associated, out.written) == ([], {"stage": "Launched"})
        calls = pc.calls()
        assert (calls["AssociateOpportunity"], calls["UpdateOpportunity"]) == (0, 1)
        assert pc.read(oid)["LifeCycle"]["Stage"] == "Launched"

    def test_solution_required(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid = new_opportunity(cfg, pc)
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        with pytest.raises(SolutionsRequiredError) as err:
            writer.update(oid, {"stage": "Committed", "next_steps": "Sign"})

        assert err.value.code == "SOLUTION_REQUIRED"
        assert err.value.record_id == oid
        assert "aws_solution_ids" in err.value.message
        calls = pc.calls()
        assert (calls["AssociateOpportunity"], calls["UpdateOpportunity"]) == (0, 0)
        after = pc.read(oid)
        assert (after["LifeCycle"]["Stage"], after["LifeCycle"]["NextSteps"]) == (
            "Qualified",
            DEAL_VALUES["next_steps"],
        )

    @pytest.mark.parametrize("unknown", ["S-9999999", INACTIVE_SOLUTION])
    def test_solution_not_found(self, cfg: SyncConfig, pc: PcEmulator, unknown: str) -> None:
        """An id ListSolutions does not list as active fails the write; nothing is associated."""
        oid = new_opportunity(cfg, pc)
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        with pytest.raises(SolutionsRequiredError) as err:
            writer.update(oid, {"stage": "Committed"}, solution_ids=[SOLUTION_ID, unknown])

        assert err.value.code == "SOLUTION_NOT_FOUND"
        assert unknown in err.value.message
        assert SOLUTION_ID not in err.value.message
        calls = pc.calls()
        assert (calls["ListSolutions"], calls["AssociateOpportunity"], calls["UpdateOpportunity"]) == (
            1,
            0,
            0,
        )
        after = pc.read(oid)
        assert after["LifeCycle"]["Stage"] == "Qualified"
        assert not (after.get("RelatedEntityIdentifiers") or {}).get("Solutions")

    def test_too_many_solutions(self, cfg: SyncConfig, pc: PcEmulator, pc_emulator: Any) -> None:
        """More than ten solutions would be associated: refused before any association."""
        solutions = pc_emulator.backend.store(CATALOG)["solutions"]
        template = solutions[SOLUTION_ID]
        extra = [f"S-20000{i:02d}" for i in range(10)]
        for sid in extra:
            solutions[sid] = {**template, "Id": sid, "Arn": sid}
        oid = new_opportunity(cfg, pc)
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        with pytest.raises(SolutionsRequiredError) as err:
            writer.update(oid, {"stage": "Committed"}, solution_ids=[SOLUTION_ID, *extra])

        assert err.value.code == "TOO_MANY_SOLUTIONS"
        calls = pc.calls()
        assert (calls["AssociateOpportunity"], calls["UpdateOpportunity"]) == (0, 0)
        assert not (pc.read(oid).get("RelatedEntityIdentifiers") or {}).get("Solutions")

    def test_active_solutions_read_once_per_writer(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        first = new_opportunity(cfg, pc, deal_id="9001")
        second = new_opportunity(cfg, pc, deal_id="9002")
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        writer.update(first, {"stage": "Committed"}, solution_ids=[SOLUTION_ID])
        writer.update(second, {"stage": "Committed"}, solution_ids=[OTHER_SOLUTION])

        assert pc.calls()["ListSolutions"] == 1
        assert [pc.read(o)["LifeCycle"]["Stage"] for o in (first, second)] == ["Committed", "Committed"]

    def test_committed_with_no_conflict_retries(self, pc: PcEmulator) -> None:
        cfg = load_config(overrides={"conflict_retries": 0})
        oid = new_opportunity(cfg, pc)
        writer, _ = pc_writer(cfg, pc)

        out = writer.update(oid, {"stage": "Committed"}, solution_ids=[SOLUTION_ID])

        assert out.written == {"stage": "Committed"}
        assert pc.read(oid)["LifeCycle"]["Stage"] == "Committed"


# ---------------------------------------------------------------------------------------------------
# PartnerCentralWriter.create and submit
# ---------------------------------------------------------------------------------------------------
class TestPartnerCentralCreate:
    def test_create_reads_back(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        writer, api = pc_writer(cfg, pc)
        pc.reset_calls()

        out = writer.create("4242", DEAL_VALUES)

        stored = pc.read(out["opportunity_id"])
        assert out["review_status"] == "Pending Submission"
        assert out["last_modified"] == ts_key(stored["LastModifiedDate"])
        assert {k: out["values"][k] for k in DEAL_VALUES} == DEAL_VALUES
        assert stored["PartnerOpportunityIdentifier"] == "4242"
        assert stored["Project"]["Title"] == DEAL_VALUES["project_title"]
        (request,) = api.params("create_opportunity")
        assert request["ClientToken"] == client_token(CATALOG, "4242")
        assert "held_back" not in out
        assert writer.calls == Counter({"CreateOpportunity": 1, "GetOpportunity": 1})

    def test_client_token_prevents_duplicates(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        """A retried create of the same deal returns the same opportunity; another deal gets its own."""
        writer, api = pc_writer(cfg, pc)

        first = writer.create("4242", DEAL_VALUES)
        again = writer.create("4242", DEAL_VALUES)
        other = writer.create("4343", DEAL_VALUES)

        assert again["opportunity_id"] == first["opportunity_id"] != other["opportunity_id"]
        tokens = [p["ClientToken"] for p in api.params("create_opportunity")]
        assert tokens[0] == tokens[1] != tokens[2]
        listed = [
            o["Id"] for page in pc.hook.paginate("list_opportunities") for o in page["OpportunitySummaries"]
        ]
        assert sorted(listed) == sorted({first["opportunity_id"], other["opportunity_id"]})

    def test_create_committed_deal_moves_stage_after_association(
        self, cfg: SyncConfig, pc: PcEmulator
    ) -> None:
        writer, api = pc_writer(cfg, pc)
        pc.reset_calls()

        out = writer.create("4242", {**DEAL_VALUES, "stage": "Committed"}, [SOLUTION_ID])

        (request,) = api.params("create_opportunity")
        assert request["LifeCycle"]["Stage"] == STAGE_BEFORE_SOLUTION
        ops = api.operations()
        assert ops.index("create_opportunity") < ops.index("associate_opportunity")
        assert ops.index("associate_opportunity") < ops.index("update_opportunity")
        calls = pc.calls()
        assert (calls["CreateOpportunity"], calls["AssociateOpportunity"], calls["UpdateOpportunity"]) == (
            1,
            1,
            1,
        )
        stored = pc.read(out["opportunity_id"])
        assert stored["LifeCycle"]["Stage"] == "Committed"
        assert stored["RelatedEntityIdentifiers"]["Solutions"] == [SOLUTION_ID]
        assert out["values"]["stage"] == "Committed"
        assert out["last_modified"] == ts_key(stored["LastModifiedDate"])
        assert "held_back" not in out
        assert "error" not in out

    def test_create_launched_deal_without_solution_holds_stage_back(
        self, cfg: SyncConfig, pc: PcEmulator
    ) -> None:
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        out = writer.create("4242", {**DEAL_VALUES, "stage": "Launched"})

        assert out["held_back"] == {"stage": "Launched"}
        assert out["error"]["code"] == "SOLUTION_REQUIRED"
        assert out["values"]["stage"] == STAGE_BEFORE_SOLUTION
        calls = pc.calls()
        assert (calls["CreateOpportunity"], calls["UpdateOpportunity"]) == (1, 0)
        assert pc.read(out["opportunity_id"])["LifeCycle"]["Stage"] == STAGE_BEFORE_SOLUTION


class TestPartnerCentralSubmit:
    def test_submit_associates_then_starts_engagement(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid = new_opportunity(cfg, pc)
        writer, api = pc_writer(cfg, pc)
        pc.reset_calls()

        out = writer.submit(oid, [SOLUTION_ID])

        assert out["opportunity_id"] == oid
        assert out["associated"] == [SOLUTION_ID]
        assert out["task_id"]
        assert api.operations() == [
            "get_opportunity",
            "list_solutions",
            "associate_opportunity",
            "start_engagement_from_opportunity_task",
        ]
        (request,) = api.params("start_engagement_from_opportunity_task")
        assert request["ClientToken"] == client_token(CATALOG, f"submit-{oid}")
        assert pc.calls()["StartEngagementFromOpportunityTask"] == 1
        after = pc.read(oid)
        assert after["LifeCycle"]["ReviewStatus"] == "Submitted"
        assert after["RelatedEntityIdentifiers"]["Solutions"] == [SOLUTION_ID]

    def test_resubmit_is_idempotent(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        """A retried submission associates nothing new and gets the same task back."""
        oid = new_opportunity(cfg, pc)
        writer, _ = pc_writer(cfg, pc)
        first = writer.submit(oid, [SOLUTION_ID])
        pc.reset_calls()

        again = writer.submit(oid, [SOLUTION_ID])

        assert again["task_id"] == first["task_id"]
        assert again["associated"] == []
        assert pc.calls()["AssociateOpportunity"] == 0
        assert pc.read(oid)["LifeCycle"]["ReviewStatus"] == "Submitted"

    def test_submit_without_solution_sends_nothing(self, cfg: SyncConfig, pc: PcEmulator) -> None:
        oid = new_opportunity(cfg, pc)
        writer, _ = pc_writer(cfg, pc)
        pc.reset_calls()

        with pytest.raises(SolutionsRequiredError) as err:
            writer.submit(oid)

        assert err.value.code == "SOLUTION_REQUIRED"
        calls = pc.calls()
        assert (calls["AssociateOpportunity"], calls["StartEngagementFromOpportunityTask"]) == (0, 0)
        assert pc.read(oid)["LifeCycle"]["ReviewStatus"] == "Pending Submission"


# ---------------------------------------------------------------------------------------------------
# HubSpot fixtures and helpers
# ---------------------------------------------------------------------------------------------------
@dataclass
class HsEmulator:
    """The HubSpot emulator: controls, call counts and plain REST reads for assertions."""

    url: str
    hook: HubSpotHook
    seeded: dict[str, list[str]] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        """Bearer auth for direct API reads."""
        return {"Authorization": f"Bearer {HS_TOKEN}"}

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST a test control and return its JSON answer."""
        response = requests.post(f"{self.url}/_emulator/{path}", json=body or {}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def calls(self) -> Counter[str]:
        """API calls the emulator answered, by endpoint."""
        body = requests.get(f"{self.url}/_emulator/calls", timeout=10).json()
        return Counter(body["by_endpoint"])

    def reset_calls(self) -> None:
        """Zero the call counters."""
        requests.delete(f"{self.url}/_emulator/calls", timeout=10).raise_for_status()

    def get(self, object_type: str, object_id: str, properties: list[str]) -> dict[str, Any]:
        """One object's properties, read directly."""
        response = requests.get(
            f"{self.url}/crm/v3/objects/{object_type}/{object_id}",
            params={"properties": ",".join(properties)},
            headers=self.headers,
            timeout=10,
        )
        response.raise_for_status()
        return dict(response.json()["properties"])

    def associated(self, object_type: str, object_id: str, to_type: str) -> list[str]:
        """Ids of the ``to_type`` objects associated with one object."""
        response = requests.get(
            f"{self.url}/crm/v4/objects/{object_type}/{object_id}/associations/{to_type}",
            headers=self.headers,
            timeout=10,
        )
        response.raise_for_status()
        return sorted(str(r["toObjectId"]) for r in response.json()["results"])

    def count(self, object_type: str) -> int:
        """How many objects of a type exist (search total)."""
        response = requests.post(
            f"{self.url}/crm/v3/objects/{object_type}/search",
            json={"filterGroups": [], "limit": 1},
            headers=self.headers,
            timeout=10,
        )
        response.raise_for_status()
        return int(response.json()["total"])


BATCH_UPDATE_DEALS = "POST /crm/v3/objects/deals/batch/update"


@pytest.fixture
def hs(hubspot_emulator: Any, monkeypatch: pytest.MonkeyPatch, cfg: SyncConfig) -> HsEmulator:
    """The HubSpot emulator (limits off) with 12 seeded deals and the sync's custom properties."""
    monkeypatch.setenv(
        HS_CONN, json.dumps({"conn_type": "hubspot", "password": HS_TOKEN, "host": hubspot_emulator.url})
    )
    requests.post(f"{hubspot_emulator.url}/_emulator/quotas", json={"enabled": False}, timeout=10)
    seeded = requests.post(
        f"{hubspot_emulator.url}/_emulator/seed",
        json={"deals": 12, "companies": 3, "contacts": 3, "seed": 7},
        timeout=30,
    ).json()
    hook = HubSpotHook()
    hook.burst_limiter = NoLimit()
    hook.search_limiter = NoLimit()
    ensure_properties(cfg, hook)
    emulator = HsEmulator(hubspot_emulator.url, hook, seeded)
    emulator.reset_calls()
    return emulator


def hs_writer(cfg: SyncConfig, hs: HsEmulator, checkpoints: Checkpoints | None = None) -> HubSpotWriter:
    """A writer over a counted gateway on the hook, as apply/resolution build it."""
    return HubSpotWriter(cfg, HubSpotGateway(hs.hook), checkpoints)


@pytest.fixture
def checkpoints(aws_endpoint: str, cfg: SyncConfig) -> Checkpoints:
    """Per-run markers in a (moto) S3 bucket, keyed like ``apply_hubspot`` keys them."""
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=cfg.storage.bucket)
    store = SnapshotStore(s3, cfg.storage.bucket, cfg.storage.prefix)
    keys = {n: run_key(CATALOG, "manual__writer-test", f"{n}_done.json") for n in ("notes", "new_companies")}
    return Checkpoints(store, keys)


# ---------------------------------------------------------------------------------------------------
# HubSpotWriter
# ---------------------------------------------------------------------------------------------------
class TestHubSpotUpdates:
    def test_updates_in_batches_of_100(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        deals = hs.control("seed", {"deals": 250, "seed": 3})["deals"]
        assert len(deals) == 250
        hs.reset_calls()
        updates = {d: {"aws_next_steps": f"step {i}"} for i, d in enumerate(deals)}
        owner_of = {("deals", d): f"O{i}" for i, d in enumerate(deals)}

        out = hs_writer(cfg, hs).update_objects({"deals": updates, "companies": {}}, owner_of)

        assert hs.calls()[BATCH_UPDATE_DEALS] == 3
        assert sum(hs.calls().values()) == 3
        assert out.failed == {}
        assert len(out.updated) == 250
        assert out.updated["O0"] == ["deals"]
        for i in (0, 99, 100, 249):
            assert hs.get("deals", deals[i], ["aws_next_steps"])["aws_next_steps"] == f"step {i}"

    def test_one_stream_per_object_type(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        deal, company = hs.seeded["deals"][0], hs.seeded["companies"][0]
        per_object = {"deals": {deal: {"aws_next_steps": "Call"}}, "companies": {company: {"city": "Lyon"}}}
        owner_of = {("deals", deal): "O1", ("companies", company): "O1"}

        out = hs_writer(cfg, hs).update_objects(per_object, owner_of)

        assert out.updated == {"O1": ["deals", "companies"]}
        calls = hs.calls()
        assert (calls[BATCH_UPDATE_DEALS], calls["POST /crm/v3/objects/companies/batch/update"]) == (1, 1)
        assert hs.get("companies", company, ["city"])["city"] == "Lyon"
        assert hs.get("deals", deal, ["aws_next_steps"])["aws_next_steps"] == "Call"

    def test_207_fails_only_the_named_items(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        deals = hs.seeded["deals"][:6]
        bad = {deals[1], deals[4]}
        hs.control("faults", {"fail_ids": sorted(bad)})
        updates = {d: {"aws_next_steps": "New step"} for d in deals}
        owner_of = {("deals", d): f"opp-{d}" for d in deals}

        out = hs_writer(cfg, hs).update_objects({"deals": updates}, owner_of)

        assert hs.calls()[BATCH_UPDATE_DEALS] == 1
        assert set(out.failed) == {f"opp-{d}" for d in bad}
        assert all(e["service"] == "hubspot" and e["type"] == "ValidationError" for e in out.failed.values())
        assert set(out.updated) == {f"opp-{d}" for d in deals if d not in bad}
        for d in deals:
            value = hs.get("deals", d, ["aws_next_steps"]).get("aws_next_steps")
            assert (value == "New step") == (d not in bad)

    def test_missing_object_fails_that_record_only(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        deal = hs.seeded["deals"][0]
        updates = {deal: {"aws_next_steps": "Go"}, "999999999": {"aws_next_steps": "Go"}}

        out = hs_writer(cfg, hs).update_objects({"deals": updates}, {})

        assert set(out.failed) == {"999999999"}
        assert out.updated == {deal: ["deals"]}
        assert hs.get("deals", deal, ["aws_next_steps"])["aws_next_steps"] == "Go"

    def test_whole_batch_400_is_bisected_to_the_bad_item(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        deals = hs.seeded["deals"][:8]
        bad = deals[5]
        updates = {d: {"aws_next_steps": "Bisected"} for d in deals}
        updates[bad] = {"dealstage": "no-such-stage"}

        out = hs_writer(cfg, hs).update_objects({"deals": updates}, {})

        # 8 -> 4 + 4 -> (the bad half) 2 + 2 -> 1 + 1: 1 + 2 * log2(8) requests.
        assert hs.calls()[BATCH_UPDATE_DEALS] == 7
        assert set(out.failed) == {bad}
        assert set(out.updated) == set(deals) - {bad}
        assert "dealstage" in out.failed[bad]["message"]
        for d in deals:
            props = hs.get("deals", d, ["aws_next_steps", "dealstage"])
            assert (props.get("aws_next_steps") == "Bisected") == (d != bad)
        assert hs.get("deals", bad, ["dealstage"])["dealstage"] != "no-such-stage"


class TestHubSpotCreates:
    def test_upsert_deals_is_idempotent(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        rows = {
            f"O{n}": {"dealname": f"Opportunity {n}", "pipeline": "default", "dealstage": "qualifiedtobuy"}
            for n in (1001, 1002, 1003)
        }
        before = hs.count("deals")
        writer = hs_writer(cfg, hs)

        created, failed = writer.upsert_deals(rows)
        again, failed_again = writer.upsert_deals(rows)

        assert failed == failed_again == {}
        assert set(created) == set(rows)
        assert again == created
        assert hs.count("deals") == before + 3
        for oid, deal_id in created.items():
            props = hs.get("deals", deal_id, [cfg.link_property, "dealname"])
            assert props[cfg.link_property] == oid
            assert props["dealname"] == rows[oid]["dealname"]

    def test_upsert_deals_reports_rejected_rows(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        rows = {
            "O2001": {"dealname": "Good", "pipeline": "default", "dealstage": "qualifiedtobuy"},
            "O2002": {"dealname": "Bad", "pipeline": "default", "dealstage": "no-such-stage"},
        }

        created, failed = hs_writer(cfg, hs).upsert_deals(rows)

        assert set(created) == {"O2001"}
        assert set(failed) == {"O2002"}
        assert failed["O2002"]["service"] == "hubspot"
        assert hs.get("deals", created["O2001"], [cfg.link_property])[cfg.link_property] == "O2001"

    def test_upsert_deals_per_item_failure(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        """A retried upsert whose existing deal HubSpot refuses: that opportunity is failed, not created."""
        rows = {
            f"O{n}": {"dealname": f"Opportunity {n}", "pipeline": "default", "dealstage": "qualifiedtobuy"}
            for n in (3001, 3002)
        }
        writer = hs_writer(cfg, hs)
        created, _ = writer.upsert_deals(rows)
        hs.control("faults", {"fail_ids": [created["O3001"]]})

        again, failed = writer.upsert_deals({k: {**v, "dealname": "Renamed"} for k, v in rows.items()})

        assert hs.get("deals", created["O3001"], ["dealname"])["dealname"] == "Opportunity 3001"
        assert hs.get("deals", created["O3002"], ["dealname"])["dealname"] == "Renamed"
        assert set(failed) == {"O3001"}
        assert again == {"O3002": created["O3002"]}

    def test_write_notes_on_deals_once_per_run(
        self, cfg: SyncConfig, hs: HsEmulator, checkpoints: Checkpoints
    ) -> None:
        deals = hs.seeded["deals"][:3]
        notes = {d: f"<p>Sync updated deal {d}</p>" for d in deals}
        before = hs.count("notes")

        count = hs_writer(cfg, hs, checkpoints).write_notes(notes)
        retried = hs_writer(cfg, hs, checkpoints).write_notes(notes)

        assert count == retried == 3
        assert hs.count("notes") == before + 3
        assert hs.calls()["POST /crm/v3/objects/notes/batch/create"] == 1
        for d in deals:
            (note,) = hs.associated("deals", d, "notes")
            assert hs.get("notes", note, ["hs_note_body"])["hs_note_body"] == notes[d]

    def test_create_conflict_tasks(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        deal_a, deal_b = hs.seeded["deals"][:2]
        conflicts = [
            {"conflict_id": "c-1", "field": "expected_spend_amount", "deal_id": deal_a},
            {"conflict_id": "c-2", "field": "next_steps", "deal_id": deal_a},
            {"conflict_id": "c-3", "field": "project_title", "deal_id": deal_b},
            {"conflict_id": "c-4", "field": "project_title", "deal_id": None},
        ]

        tasks = hs_writer(cfg, hs).create_conflict_tasks(conflicts)

        assert set(tasks) == {"c-1", "c-2", "c-3"}
        assert hs.count("tasks") == 3
        assert hs.associated("deals", deal_a, "tasks") == sorted([tasks["c-1"], tasks["c-2"]])
        assert hs.associated("deals", deal_b, "tasks") == [tasks["c-3"]]
        for cid, field_name in (("c-1", "amount"), ("c-2", "aws_next_steps"), ("c-3", "dealname")):
            task = hs.get("tasks", tasks[cid], ["hs_task_subject", "hs_task_body", "hs_task_status"])
            assert cid in task["hs_task_body"]
            assert task["hs_task_subject"].endswith(field_name)
            assert task["hs_task_status"] == "NOT_STARTED"
        for deal in (deal_a, deal_b):
            assert hs.get("deals", deal, ["aws_conflict_status"])["aws_conflict_status"] == "Pending"
        assert hs_writer(cfg, hs).create_conflict_tasks([conflicts[3]]) == {}


class TestHubSpotOneRecord:
    def test_write_record_to_deal_and_company(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        deal, company = hs.seeded["deals"][0], hs.seeded["companies"][0]
        ids = {"deal": deal, "company": company, "contact": None}

        written = hs_writer(cfg, hs).write_record(
            "O1", {"next_steps": "Workshop", "company_city": "Lyon"}, ids
        )

        assert written == {"next_steps": "Workshop", "company_city": "Lyon"}
        assert hs.get("deals", deal, ["aws_next_steps"])["aws_next_steps"] == "Workshop"
        assert hs.get("companies", company, ["city"])["city"] == "Lyon"

    def test_write_record_without_the_object(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        deal = hs.seeded["deals"][0]
        hs.reset_calls()

        with pytest.raises(WriteBlockedError, match="no HubSpot contact"):
            hs_writer(cfg, hs).write_record(
                "O1", {"contact_first_name": "Ana"}, {"deal": deal, "company": None, "contact": None}
            )
        assert sum(hs.calls().values()) == 0

    def test_write_record_rejected_by_hubspot(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        deal = hs.seeded["deals"][0]
        hs.control("faults", {"fail_ids": [deal]})

        with pytest.raises(ValidationError) as err:
            hs_writer(cfg, hs).write_record("O1", {"next_steps": "Rejected"}, {"deal": deal})

        assert err.value.service == "hubspot"
        assert err.value.record_id == "O1"
        assert deal in err.value.message
        assert hs.get("deals", deal, ["aws_next_steps"]).get("aws_next_steps") != "Rejected"

    def test_object_ids_from_deal_associations(self, cfg: SyncConfig, hs: HsEmulator) -> None:
        """Company and contact the baseline lacks are found through the deal's associations."""
        deal, company, contact = hs.seeded["deals"][0], hs.seeded["companies"][0], hs.seeded["contacts"][0]
        for to_type, to_id in (("companies", company), ("contacts", contact)):
            requests.put(
                f"{hs.url}/crm/v4/objects/deals/{deal}/associations/default/{to_type}/{to_id}",
                headers=hs.headers,
                timeout=10,
            ).raise_for_status()
        writer = hs_writer(cfg, hs)
        hs.reset_calls()

        ids = writer.object_ids(deal, None)

        assert ids == {"deal": deal, "company": company, "contact": contact}
        assert sum(hs.calls().values()) == 2
