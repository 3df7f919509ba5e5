"""Tests for PartnerCentralHook against the Partner Central emulator (connections from env vars)."""

from __future__ import annotations

import json
import socket

import pytest
import requests
from botocore.stub import Stubber

from cosell_hooks import PartnerCentralHook
from cosell_hooks.partner_central import WRITE_PACE_MARGIN
from cosell_sync.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    FatalError,
    NotFoundError,
    ServiceUnavailableError,
    ThrottledError,
    ValidationError,
)

CONN_VAR = "AIRFLOW_CONN_PARTNER_CENTRAL_DEFAULT"


def _set_conn(monkeypatch, endpoint_url: str | None, **extra) -> None:
    extras = {"region_name": "us-east-1", **extra}
    if endpoint_url:
        extras["endpoint_url"] = endpoint_url
    monkeypatch.setenv(
        CONN_VAR,
        json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extras}),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CountingLimiter:
    """Stands in for a TokenBucket and counts acquisitions."""

    def __init__(self) -> None:
        self.calls = 0

    def acquire(self, n: int = 1) -> float:
        self.calls += n
        return 0.0


@pytest.fixture
def emulator(pc_emulator, monkeypatch):
    """The emulator with 5 seeded AWS opportunities; the connection points at it."""
    _set_conn(monkeypatch, pc_emulator.url, max_attempts=1)
    response = requests.post(
        f"{pc_emulator.url}/_emulator/seed",
        json={"opportunities": 5, "seed": 1, "catalog": "AWS"},
        timeout=10,
    )
    response.raise_for_status()
    pc_emulator.opportunity_ids = response.json()["opportunity_ids"]
    return pc_emulator


@pytest.fixture
def counted_hook(emulator) -> PartnerCentralHook:
    hook = PartnerCentralHook()
    hook.read_limiter = CountingLimiter()
    hook.write_limiter = CountingLimiter()
    return hook


class TestPartnerCentralHook:
    def test_hook_attributes(self):
        assert PartnerCentralHook.default_conn_name == "partner_central_default"
        assert PartnerCentralHook.conn_type == "aws"
        assert PartnerCentralHook.conn_name_attr == "aws_conn_id"
        assert PartnerCentralHook().client_type == "partnercentral-selling"

    def test_client_is_lazy_and_cached(self, monkeypatch):
        monkeypatch.delenv(CONN_VAR, raising=False)
        hook = PartnerCentralHook()  # no connection defined: construction must not touch it
        assert "conn" not in hook.__dict__
        _set_conn(monkeypatch, "http://127.0.0.1:9")
        assert hook.conn is hook.conn

    @pytest.mark.parametrize(
        ("extra", "ctor", "expected"),
        [
            pytest.param({}, None, "AWS", id="default-aws"),
            pytest.param({"catalog": "Sandbox"}, None, "Sandbox", id="from-extra"),
            pytest.param({"catalog": "Sandbox"}, "AWS", "AWS", id="constructor-wins"),
            pytest.param({"catalog": "sandbox"}, None, ConfigError, id="case-sensitive"),
            pytest.param({"catalog": "Prod"}, None, ConfigError, id="unknown"),
        ],
    )
    def test_catalog(self, monkeypatch, extra, ctor, expected):
        _set_conn(monkeypatch, None, **extra)
        hook = PartnerCentralHook(catalog=ctor)
        if isinstance(expected, type):
            with pytest.raises(expected, match="catalog"):
                _ = hook.catalog
        else:
            assert hook.catalog == expected

    @pytest.mark.parametrize(
        ("extra", "mode", "attempts"),
        [
            pytest.param({}, "standard", 5, id="default-standard"),
            pytest.param({"retry_mode": "adaptive", "max_attempts": 8}, "adaptive", 8, id="adaptive"),
            pytest.param(
                {
                    "retry_mode": "standard",
                    "config_kwargs": {"retries": {"mode": "adaptive", "total_max_attempts": 3}},
                },
                "adaptive",
                3,
                id="config-kwargs-win",
            ),
        ],
    )
    def test_retry_config(self, monkeypatch, extra, mode, attempts):
        _set_conn(monkeypatch, None, **extra)
        config = PartnerCentralHook().config
        assert config.retries == {"mode": mode, "total_max_attempts": attempts}
        assert config.connect_timeout == 5.0
        assert config.read_timeout == 30.0

    @pytest.mark.parametrize(
        "extra",
        [
            pytest.param({"retry_mode": "legacy"}, id="legacy-mode"),
            pytest.param({"max_attempts": "x"}, id="nan"),
        ],
    )
    def test_bad_retry_config(self, monkeypatch, extra):
        _set_conn(monkeypatch, None, **extra)
        with pytest.raises(ConfigError):
            _ = PartnerCentralHook().config

    def test_retry_mode_reaches_the_client(self, emulator):
        client = PartnerCentralHook().conn
        assert client.meta.config.retries["mode"] == "standard"
        assert client.meta.config.retries["total_max_attempts"] == 1

    def test_call_injects_catalog_and_returns_record(self, emulator):
        opportunity_id = emulator.opportunity_ids[0]
        response = PartnerCentralHook().call("get_opportunity", Identifier=opportunity_id)
        assert response["Id"] == opportunity_id
        assert response["Catalog"] == "AWS"

    def test_explicit_catalog_is_kept(self, emulator):
        with pytest.raises(NotFoundError):  # seeded in AWS, looked up in Sandbox
            PartnerCentralHook().call(
                "get_opportunity", Identifier=emulator.opportunity_ids[0], Catalog="Sandbox"
            )

    def test_unknown_operation(self, emulator):
        with pytest.raises(ValueError, match="no operation"):
            PartnerCentralHook().call("get_everything")

    def test_paginate_uses_paginator(self, counted_hook, emulator):
        pages = list(counted_hook.paginate("list_opportunities", MaxResults=2))
        ids = [s["Id"] for page in pages for s in page["OpportunitySummaries"]]
        assert sorted(ids) == sorted(emulator.opportunity_ids)
        assert len(pages) == 3
        assert counted_hook.read_limiter.calls == 3  # one paced request per page
        assert counted_hook.write_limiter.calls == 0

    def test_paginate_next_token_fallback(self, counted_hook, emulator, monkeypatch):
        monkeypatch.setattr(counted_hook.conn, "can_paginate", lambda _op: False)
        pages = list(counted_hook.paginate("list_opportunities", MaxResults=2))
        assert [len(p["OpportunitySummaries"]) for p in pages] == [2, 2, 1]

    def test_reads_and_writes_use_separate_budgets(self, counted_hook, emulator):
        counted_hook.call("get_opportunity", Identifier=emulator.opportunity_ids[0])
        with pytest.raises(ConflictError):  # stale LastModifiedDate: the emulator enforces optimistic locking
            counted_hook.call(
                "update_opportunity",
                Identifier=emulator.opportunity_ids[0],
                LastModifiedDate="2020-01-01T00:00:00Z",
            )
        assert (counted_hook.read_limiter.calls, counted_hook.write_limiter.calls) == (1, 1)

    def test_retries_are_paced(self, emulator, monkeypatch):
        """botocore's retries go through the limiter too (before-send fires per attempt)."""
        _set_conn(monkeypatch, emulator.url, max_attempts=3)
        requests.post(f"{emulator.url}/_emulator/faults", json={"throttle_rate": 1.0}, timeout=10)
        hook = PartnerCentralHook()
        hook.read_limiter = CountingLimiter()
        with pytest.raises(ThrottledError) as info:
            hook.call("get_opportunity", Identifier=emulator.opportunity_ids[0])
        assert info.value.code == "ThrottlingException"
        assert info.value.record_id == emulator.opportunity_ids[0]
        assert hook.read_limiter.calls == 3

    @pytest.mark.parametrize(
        ("identifier", "error", "code"),
        [
            pytest.param("O9999999", NotFoundError, "ResourceNotFoundException", id="not-found"),
            pytest.param("not-an-id", ValidationError, "ValidationException", id="validation"),
        ],
    )
    def test_emulator_errors_are_typed(self, emulator, identifier, error, code):
        with pytest.raises(error) as info:
            PartnerCentralHook().call("get_opportunity", Identifier=identifier)
        assert info.value.code == code
        assert info.value.record_id == identifier
        assert info.value.service == "partner_central"
        assert isinstance(info.value.__cause__, Exception)

    def test_throttled_by_emulator(self, emulator):
        requests.post(f"{emulator.url}/_emulator/faults", json={"throttle_rate": 1.0}, timeout=10)
        with pytest.raises(ThrottledError) as info:
            PartnerCentralHook().call("list_opportunities", MaxResults=1)
        assert info.value.retriable

    def test_unreachable_endpoint(self, monkeypatch):
        _set_conn(monkeypatch, f"http://127.0.0.1:{_free_port()}", max_attempts=1)
        with pytest.raises(ServiceUnavailableError) as info:
            PartnerCentralHook().call("get_opportunity", Identifier="O1")
        assert info.value.code == "EndpointConnectionError"
        assert info.value.record_id == "O1"

    @pytest.mark.parametrize(
        ("code", "status", "error"),
        [
            pytest.param("ThrottlingException", 429, ThrottledError, id="throttling"),
            pytest.param("InternalServerException", 500, ServiceUnavailableError, id="internal"),
            pytest.param("SomethingNew", 503, ServiceUnavailableError, id="unknown-5xx"),
            pytest.param("ValidationException", 400, ValidationError, id="validation"),
            pytest.param("ConflictException", 409, ConflictError, id="conflict"),
            pytest.param("ResourceNotFoundException", 404, NotFoundError, id="not-found"),
            pytest.param("AccessDeniedException", 403, AuthError, id="access-denied"),
            pytest.param("ServiceQuotaExceededException", 402, ThrottledError, id="quota"),
            pytest.param("OddClientError", 418, FatalError, id="unknown-4xx"),
        ],
    )
    def test_client_error_translation(self, monkeypatch, code, status, error):
        _set_conn(monkeypatch, "http://127.0.0.1:9")
        hook = PartnerCentralHook()
        with Stubber(hook.conn) as stub:
            stub.add_client_error(
                "update_opportunity", service_error_code=code, service_message="boom", http_status_code=status
            )
            with pytest.raises(error) as info:
                hook.call("update_opportunity", Identifier="O42", LastModifiedDate="2024-01-01T00:00:00Z")
        assert type(info.value) is error
        assert info.value.code == code
        assert "boom" in info.value.message
        assert info.value.record_id == "O42"

    def test_test_connection(self, emulator):
        ok, message = PartnerCentralHook().test_connection()
        assert ok, message
        assert "AWS" in message

    def test_test_connection_failure(self, monkeypatch):
        _set_conn(monkeypatch, f"http://127.0.0.1:{_free_port()}", max_attempts=1)
        ok, message = PartnerCentralHook().test_connection()
        assert not ok
        assert "ServiceUnavailableError" in message

    def test_limiters_shared_per_connection(self, emulator):
        first, second = PartnerCentralHook(), PartnerCentralHook()
        assert first.write_limiter is second.write_limiter
        assert first.read_limiter is second.read_limiter
        assert PartnerCentralHook(write_rate_per_s=2.0).write_limiter is not first.write_limiter
        # paced a little under the 1 write/s quota so server-side clock jitter never throttles us
        assert first.write_limiter.rate_per_s == pytest.approx(1.0 * WRITE_PACE_MARGIN)
        assert first.write_limiter.rate_per_s < 1.0
        assert first.read_limiter.rate_per_s == 10.0


@pytest.mark.parametrize(
    "value",
    [
        "2025-01-02T03:04:05Z",
        "2025-01-02T03:04:05.123Z",
        "2025-01-02T03:04:05.123456+02:00",
        "2025-01-02T03:04:05.123456789Z",
        "2025-01-02",
        1735787045,
        "1735787045",
    ],
)
def test_fast_timestamp_parser_gives_botocores_values(value):
    from botocore.utils import parse_timestamp as botocore_parse_timestamp

    from cosell_hooks.partner_central import parse_timestamp

    ours, theirs = parse_timestamp(value), botocore_parse_timestamp(value)
    assert ours == theirs
    assert ours.isoformat() == theirs.isoformat()


def test_responses_carry_the_same_timestamps_as_botocores_default_parser(emulator, monkeypatch):
    """The hook's client parses with the fast parser, and reads the records a plain boto3 client reads."""
    import boto3

    from cosell_hooks import partner_central

    parsed: list[object] = []
    fast = partner_central.parse_timestamp
    monkeypatch.setattr(partner_central, "parse_timestamp", lambda v: parsed.append(v) or fast(v))
    hook = PartnerCentralHook()
    ours = hook.call("get_opportunity", Identifier=emulator.opportunity_ids[0])
    plain = boto3.client(
        "partnercentral-selling",
        region_name="us-east-1",
        endpoint_url=emulator.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).get_opportunity(Catalog="AWS", Identifier=emulator.opportunity_ids[0])
    assert parsed, "the hook's client did not use the fast timestamp parser"
    assert ours["LastModifiedDate"] == plain["LastModifiedDate"]
    assert ours["CreatedDate"] == plain["CreatedDate"]
    assert {k: v for k, v in ours.items() if k != "ResponseMetadata"} == {
        k: v for k, v in plain.items() if k != "ResponseMetadata"
    }
