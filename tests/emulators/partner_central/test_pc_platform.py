"""Wire protocol, request validation, quotas, faults, events, seeding and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests
from botocore.exceptions import ClientError
from pc_helpers import associate_solution, opportunity_payload

from emulators.partner_central import PartnerCentralEmulator


def test_error_wire_shape_over_raw_http(emu):
    response = requests.post(
        emu.url,
        data=json.dumps({"Catalog": "AWS"}),
        timeout=5,
        headers={
            "X-Amz-Target": "AWSPartnerCentralSelling.GetOpportunity",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    assert response.status_code == 400
    assert response.json() == {
        "__type": "ValidationException",
        "Message": "Invalid input: Identifier",
        "Reason": "REQUEST_VALIDATION_FAILED",
        "ErrorList": [
            {"FieldName": "Identifier", "Message": "Identifier is required", "Code": "REQUIRED_FIELD_MISSING"}
        ],
    }
    unknown = requests.post(
        emu.url, data="{}", timeout=5, headers={"X-Amz-Target": "AWSPartnerCentralSelling.Nope"}
    )
    assert unknown.json()["__type"] == "UnknownOperationException"


def test_access_denied_wire_shape_is_the_models(emu, ctl):
    """A switched-off feature answers exactly the modeled AccessDeniedException: __type, Message, Reason."""
    from emulators.partner_central.exceptions import ACCESS_DENIED_REASONS, AccessDeniedException
    from emulators.partner_central.shapes import shape

    model = shape("AccessDeniedException")
    assert set(model.members["Reason"].enum) == ACCESS_DENIED_REASONS
    with pytest.raises(ValueError, match="AccessDeniedExceptionErrorCode"):
        AccessDeniedException("denied", "SEARCH_NOT_ENABLED")  # not a modeled value

    def post(operation: str, body: dict) -> requests.Response:
        return requests.post(
            emu.url,
            data=json.dumps(body),
            timeout=5,
            headers={
                "X-Amz-Target": f"AWSPartnerCentralSelling.{operation}",
                "Content-Type": "application/x-amz-json-1.0",
            },
        )

    ctl("config", {"search_enabled": False, "bulk_jobs_enabled": False})
    search = post("SearchOpportunities", {"Catalog": "AWS"})
    assert search.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert search.json() == {
        "__type": "AccessDeniedException",
        "Message": "SearchOpportunities is not enabled for this account",
        "Reason": "SEARCH_OPPORTUNITIES_NOT_ENABLED",
    }
    uri = "s3://bucket/in/a.csv"
    bulk = post(
        "StartOpportunityBulkJob", {"Catalog": "AWS", "ClientToken": "t", "FileURI": uri, "FileFormat": "CSV"}
    )
    assert bulk.json()["__type"] == "AccessDeniedException"
    assert bulk.json()["Reason"] == "OPPORTUNITY_BULK_JOB_NOT_ENABLED"
    # No modeled reason for customer account jobs: the member is absent, not empty.
    accounts = post("StartCustomerAccountBulkJob", {"Catalog": "AWS", "ClientToken": "t", "FileUri": uri})
    assert accounts.json() == {
        "__type": "AccessDeniedException",
        "Message": "Customer account bulk jobs are not enabled for this account",
    }
    for response in (search, bulk, accounts):
        assert set(response.json()) - {"__type"} <= set(model.members)


@pytest.mark.parametrize(
    ("kwargs", "field", "code"),
    [
        pytest.param(
            {"Catalog": "AWS", "Identifier": "X1"}, "Identifier", "INVALID_STRING_FORMAT", id="pattern"
        ),
        pytest.param(
            {"Catalog": "AWS", "Identifier": "O1", "InvolvementType": "Cosell"},
            "InvolvementType",
            "INVALID_ENUM_VALUE",
            id="enum",
        ),
        pytest.param(
            {"Identifier": "O1", "InvolvementType": "Co-Sell"},
            "Catalog",
            "REQUIRED_FIELD_MISSING",
            id="required",
        ),
    ],
)
def test_submit_request_validation(raw, kwargs, field, code):
    with pytest.raises(ClientError) as exc:
        raw.submit_opportunity(**kwargs)
    err = exc.value.response
    assert err["Reason"] == "REQUEST_VALIDATION_FAILED"
    assert {"FieldName": field, "Code": code} in [
        {k: e[k] for k in ("FieldName", "Code")} for e in err["ErrorList"]
    ]


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        pytest.param(
            {"PartnerOpportunityIdentifier": "x" * 65},
            "PartnerOpportunityIdentifier",
            "INVALID_STRING_FORMAT",
            id="length",
        ),
        pytest.param(
            {
                "Project": {
                    "ExpectedCustomerSpend": [
                        {"CurrencyCode": "USD", "Frequency": "Monthly", "TargetCompany": "AWS"}
                    ]
                    * 11
                }
            },
            "Project.ExpectedCustomerSpend",
            "TOO_MANY_VALUES",
            id="list-size",
        ),
        pytest.param(
            {"Project": {"CustomerBusinessProblem": "too short"}},
            "Project.CustomerBusinessProblem",
            "INVALID_STRING_FORMAT",
            id="min-length",
        ),
        pytest.param({"NationalSecurity": True}, "NationalSecurity", "INVALID_VALUE", id="type"),
    ],
)
def test_create_request_validation(raw, overrides, field, code):
    with pytest.raises(ClientError) as exc:
        raw.create_opportunity(**opportunity_payload(**overrides))
    errors = exc.value.response["ErrorList"]
    assert (field, code) in [(e["FieldName"], e["Code"]) for e in errors]


def test_default_quotas_throttle_second_immediate_write(emu, pc, ctl):
    ctl("quotas", {"enabled": True, "time_scale": 1})
    pc.create_opportunity(**opportunity_payload())
    with pytest.raises(ClientError) as exc:
        pc.create_opportunity(**opportunity_payload())
    assert exc.value.response["Error"]["Code"] == "ThrottlingException"
    for _ in range(9):
        pc.list_opportunities(Catalog="AWS")  # reads have their own bucket of 10
    calls = ctl("calls", method="GET")
    assert calls["by_operation"] == {"CreateOpportunity": 2, "ListOpportunities": 9}
    assert calls["total"] == 11
    assert calls["throttled"] == 1
    assert len(calls["writes"]) == 1
    time.sleep(1.05)
    pc.create_opportunity(**opportunity_payload())  # a caller pacing itself at 1/s is never throttled


def test_time_scale_raises_rate(pc, ctl):
    # time_scale 5: buckets hold (and refill) 5 writes a second, so a burst of 5 passes and the 6th does not.
    ctl("quotas", {"enabled": True, "time_scale": 5})
    for _ in range(5):
        pc.create_opportunity(**opportunity_payload())
    with pytest.raises(ClientError):
        pc.create_opportunity(**opportunity_payload())


def test_faults_are_deterministic_for_a_seed(emu, pc, ctl):
    def run() -> list[str]:
        ctl("faults", {"throttle_rate": 0.3, "error_rate": 0.2, "seed": 42})
        outcomes = []
        for _ in range(30):
            try:
                pc.list_solutions(Catalog="AWS")
                outcomes.append("ok")
            except ClientError as err:
                outcomes.append(err.response["Error"]["Code"])
        return outcomes

    first, second = run(), run()
    assert first == second
    assert {"ok", "ThrottlingException", "InternalServerException"} <= set(first)
    # Added latency is observable as a client read timeout shorter than it (no stopwatch in tests).
    from botocore.exceptions import ReadTimeoutError

    from tests.emulators.partner_central.conftest import make_client

    ctl("faults", {"throttle_rate": 0, "error_rate": 0, "latency_ms": 1500})
    with pytest.raises(ReadTimeoutError):
        make_client(emu.url, read_timeout=0.3).list_solutions(Catalog="AWS")
    ctl("faults", {"latency_ms": 0})
    assert pc.list_solutions(Catalog="AWS")["SolutionSummaries"]


class _Sink(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        _Sink.received.append(
            (self.headers.get("X-Api-Key"), json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        )
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_events_envelope_and_delivery_to_target(pc, ctl):
    sink = HTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        ctl(
            "event-target",
            {"url": f"http://127.0.0.1:{sink.server_port}/hook", "headers": {"X-Api-Key": "k"}},
        )
        opp = pc.create_opportunity(**opportunity_payload())
        event = ctl("events", method="GET")["events"][-1]
        assert set(event) == {
            "version",
            "id",
            "detail-type",
            "source",
            "account",
            "time",
            "region",
            "resources",
            "detail",
        }
        assert event["source"] == "aws.partnercentral-selling"
        assert event["detail-type"] == "Opportunity Created"
        assert event["detail"] == {
            "schemaVersion": "1",
            "catalog": "AWS",
            "opportunity": {"identifier": opp["Id"]},
        }
        deadline = time.monotonic() + 5
        while not _Sink.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _Sink.received[0] == ("k", event)
    finally:
        sink.shutdown()


def test_review_simulation_emits_update_and_moves_last_modified(pc, ctl):
    opp = pc.create_opportunity(**opportunity_payload())
    associate_solution(pc, opp["Id"])
    pc.submit_opportunity(Catalog="AWS", Identifier=opp["Id"], InvolvementType="Co-Sell")
    before = pc.get_opportunity(Catalog="AWS", Identifier=opp["Id"])["LastModifiedDate"]
    ctl("events", method="DELETE")
    ctl("simulate/review", {"catalog": "AWS", "identifier": opp["Id"], "review_status": "Approved"})
    after = pc.get_opportunity(Catalog="AWS", Identifier=opp["Id"])
    assert after["LifeCycle"]["ReviewStatus"] == "Approved"
    assert after["LastModifiedDate"] > before
    assert [e["detail-type"] for e in ctl("events", method="GET")["events"]] == ["Opportunity Updated"]


def test_seed_is_deterministic_and_silent(emu, pc, ctl):
    # Seeding speed is a figure of `make bench` (bench/emulator_seed.py), not a test assertion.
    ids = ctl("seed", {"opportunities": 10_000, "seed": 5})["opportunity_ids"]
    assert len(ids) == 10_000
    first = pc.get_opportunity(Catalog="AWS", Identifier=ids[17])
    assert ctl("events", method="GET")["count"] == 0
    assert ctl("calls", method="GET")["total"] == 1
    ctl("reset")
    again = ctl("seed", {"opportunities": 20, "seed": 5})["opportunity_ids"]
    same = pc.get_opportunity(Catalog="AWS", Identifier=again[17])
    assert same["Customer"] == first["Customer"]
    assert same["Project"] == first["Project"]


def test_state_file_survives_restart(tmp_path):
    state = str(tmp_path / "pc.json")
    from pc_helpers import opportunity_payload as payload

    from tests.emulators.partner_central.conftest import make_client

    with PartnerCentralEmulator(state_file=state) as first:
        oid = make_client(first.url).create_opportunity(**payload())["Id"]
    with PartnerCentralEmulator(state_file=state) as second:
        assert make_client(second.url).get_opportunity(Catalog="AWS", Identifier=oid)["Id"] == oid


def test_command_line_prints_url_and_serves():
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.partner_central", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("Partner Central emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[-1]
        assert requests.get(f"{url}/_emulator/calls", timeout=5).json()["total"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=5)
