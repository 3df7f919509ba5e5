"""Tests for HubSpotHook: against the HubSpot emulator, and transport-level behaviour against a tiny stub."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from cosell_hooks import HubSpotHook
from cosell_hooks.hubspot import DEFAULT_BASE_URL, PacedPoolManager
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
from emulators.common.server import ThreadedServer

CONN_VAR = "AIRFLOW_CONN_HUBSPOT_DEFAULT"
TOKEN = "pat-na1-secret-token-123"


def _set_conn(monkeypatch, host: str | None = None, conn_type: str = "hubspot", **extra: Any) -> None:
    conn: dict[str, Any] = {"conn_type": conn_type, "password": TOKEN, "extra": extra}
    if host:
        conn["host"] = host
    monkeypatch.setenv(CONN_VAR, json.dumps(conn))


class CountingLimiter:
    """Stands in for a limiter and counts acquisitions."""

    def __init__(self) -> None:
        self.calls = 0

    def acquire(self, n: int = 1) -> float:
        self.calls += n
        return 0.0


class StubHubSpot:
    """A scripted HTTP server: answers queued (status, headers, body) in order, then 200 ``{}``."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], Any, float]] = []
        self.requests: list[tuple[str, str, float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self.server = ThreadedServer(self._app)

    def answer(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None, delay: float = 0.0
    ) -> None:
        self.script.append((status, headers or {}, body if body is not None else {}, delay))

    def _app(self, environ, start_response):
        request = Request(environ)
        with self._lock:
            self.requests.append((request.method, request.path, time.monotonic(), dict(request.headers)))
            status, headers, body, delay = self.script.pop(0) if self.script else (200, {}, {}, 0.0)
        if delay:
            time.sleep(delay)
        response = Response(json.dumps(body), status=status, headers=headers, content_type="application/json")
        return response(environ, start_response)


@pytest.fixture
def stub(monkeypatch) -> Iterator[StubHubSpot]:
    server = StubHubSpot()
    with server.server:
        _set_conn(monkeypatch, server.server.url, backoff_factor=0.05, max_retries=3)
        yield server


@pytest.fixture
def emulator(hubspot_emulator, monkeypatch):
    _set_conn(monkeypatch, hubspot_emulator.url)
    response = requests.post(
        f"{hubspot_emulator.url}/_emulator/seed",
        json={"deals": 12, "contacts": 3, "companies": 2, "seed": 1},
        timeout=10,
    )
    response.raise_for_status()
    return hubspot_emulator


def _calls(emulator) -> dict[str, Any]:
    return requests.get(f"{emulator.url}/_emulator/calls", timeout=10).json()


BATCH_INPUT = {"inputs": [{"properties": {"dealname": "x"}}]}


class TestHubSpotHook:
    def test_hook_attributes(self):
        assert HubSpotHook.conn_type == "hubspot"
        assert HubSpotHook.default_conn_name == "hubspot_default"
        assert HubSpotHook.conn_name_attr == "hubspot_conn_id"
        assert HubSpotHook.hook_name == "HubSpot"
        behaviour = HubSpotHook.get_ui_field_behaviour()
        assert "password" in behaviour["relabeling"]
        assert isinstance(HubSpotHook.get_connection_form_widgets(), dict)

    def test_nothing_built_in_init(self, monkeypatch):
        monkeypatch.delenv(CONN_VAR, raising=False)
        hook = HubSpotHook()  # no connection yet: must not be read here
        assert not {"client", "settings", "pool_manager"} & set(hook.__dict__)

    @pytest.mark.parametrize(
        ("conn", "expected"),
        [
            pytest.param({}, DEFAULT_BASE_URL, id="default"),
            pytest.param({"host": "http://127.0.0.1:8765"}, "http://127.0.0.1:8765", id="host-url"),
            pytest.param({"host": "http://127.0.0.1:8765/"}, "http://127.0.0.1:8765", id="trailing-slash"),
            pytest.param(
                {"host": "127.0.0.1", "port": 8765, "schema": "http"}, "http://127.0.0.1:8765", id="uri-parts"
            ),
            pytest.param({"host": "api.example.com"}, "https://api.example.com", id="host-only-https"),
            pytest.param(
                {"host": "http://ignored", "extra": {"host": "http://emu:1"}},
                "http://emu:1",
                id="extra-host-wins",
            ),
            pytest.param({"extra": {"base_url": "http://emu:2"}}, "http://emu:2", id="extra-base-url"),
        ],
    )
    def test_base_url(self, monkeypatch, conn, expected):
        monkeypatch.setenv(CONN_VAR, json.dumps({"conn_type": "hubspot", "password": TOKEN, **conn}))
        hook = HubSpotHook()
        assert hook.base_url == expected
        assert hook.client.config["host"] == expected
        assert hook.crm.deals.basic_api.api_client.configuration.host == expected

    @pytest.mark.parametrize(
        ("conn", "match"),
        [
            pytest.param({"conn_type": "hubspot"}, "token", id="no-token"),
            pytest.param(
                {"conn_type": "hubspot", "password": "t", "extra": {"requests_per_10s": "many"}},
                "numeric",
                id="bad-number",
            ),
        ],
    )
    def test_bad_connection(self, monkeypatch, conn, match):
        monkeypatch.setenv(CONN_VAR, json.dumps(conn))
        with pytest.raises(ConfigError, match=match):
            _ = HubSpotHook().settings

    def test_settings_repr_hides_token(self, monkeypatch):
        _set_conn(monkeypatch, "http://127.0.0.1:1")
        assert TOKEN not in repr(HubSpotHook().settings)

    def test_api_objects_cached_and_paced(self, monkeypatch):
        _set_conn(monkeypatch, "http://127.0.0.1:1")
        hook = HubSpotHook()
        assert hook.crm.deals.batch_api is hook.crm.deals.batch_api
        assert hook.client.crm.contacts.basic_api is hook.crm.contacts.basic_api
        for api in (
            hook.crm.deals.batch_api,
            hook.crm.companies.search_api,
            hook.client.crm.owners.owners_api,
            hook.client.crm.associations.v4.batch_api,
        ):
            assert api.api_client.rest_client.pool_manager is hook.pool_manager
        assert isinstance(hook.pool_manager, PacedPoolManager)

    @pytest.mark.parametrize("conn_type", ["hubspot", "http", "generic"])
    def test_reads_from_emulator_any_conn_type(self, emulator, monkeypatch, conn_type):
        _set_conn(monkeypatch, emulator.url, conn_type=conn_type)
        hook = HubSpotHook()
        page = hook.call(hook.crm.deals.basic_api.get_page, limit=5)
        assert len(page.results) == 5

    def test_search_and_plain_requests_use_their_budgets(self, emulator):
        hook = HubSpotHook()
        hook.burst_limiter = CountingLimiter()
        hook.search_limiter = CountingLimiter()
        hook.call(hook.crm.deals.basic_api.get_page, limit=1)
        result = hook.call(
            hook.crm.deals.search_api.do_search, public_object_search_request={"filterGroups": [], "limit": 2}
        )
        hook.api_request("POST", "/crm/v3/objects/deals/search", body={"filterGroups": [], "limit": 1})
        assert result.total == 12
        assert (hook.burst_limiter.calls, hook.search_limiter.calls) == (1, 2)

    def test_search_limit_respected(self, emulator):
        requests.post(
            f"{emulator.url}/_emulator/quotas",
            json={"enabled": True, "tier": "free", "time_scale": 1},
            timeout=10,
        )
        hook = HubSpotHook()
        for _ in range(11):
            hook.call(
                hook.crm.deals.search_api.do_search,
                public_object_search_request={"filterGroups": [], "limit": 1},
            )
        # 11 searches against HubSpot's 5/s: the emulator answers 429 to any search over it, so none
        # refused and none resent means the hook paced them (the pacing's speed is a bench figure).
        calls = _calls(emulator)
        assert calls["throttled"] == 0
        assert calls["total"] == 11

    def test_burst_limit_respected(self, emulator):
        """105 requests at a free-tier budget: the limiter spreads them so HubSpot never answers 429."""
        requests.post(
            f"{emulator.url}/_emulator/quotas",
            json={"enabled": True, "tier": "free", "time_scale": 1},
            timeout=10,
        )
        hook = HubSpotHook()
        for _ in range(105):
            hook.call(hook.crm.deals.basic_api.get_page, limit=1)
        calls = _calls(emulator)
        assert calls["throttled"] == 0
        assert calls["total"] == 105

    def test_not_found_is_typed(self, emulator):
        hook = HubSpotHook()
        with pytest.raises(NotFoundError) as info:
            hook.call(hook.crm.deals.basic_api.get_by_id, deal_id="424242")
        assert info.value.record_id == "424242"
        assert info.value.code == "OBJECT_NOT_FOUND"
        assert info.value.service == "hubspot"
        assert info.value.__cause__ is not None

    def test_api_request_against_emulator(self, emulator):
        hook = HubSpotHook()
        response = hook.api_request("GET", "/crm/v3/objects/deals", qs={"limit": 3})
        assert len(response.json()["results"]) == 3
        with pytest.raises(NotFoundError):
            hook.api_request("GET", "/crm/v3/objects/deals/424242")

    def test_test_connection(self, emulator):
        ok, message = HubSpotHook().test_connection()
        assert ok, message
        assert emulator.url in message

    def test_test_connection_failure(self, stub):
        stub.answer(401, {"category": "INVALID_AUTHENTICATION", "message": "bad token"})
        ok, message = HubSpotHook().test_connection()
        assert not ok
        assert "AuthError" in message
        assert TOKEN not in message

    # -- transport (stub server) -------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("method", "call"),
        [
            pytest.param(
                "POST",
                lambda h: h.crm.deals.batch_api.create(
                    batch_input_simple_public_object_batch_input_for_create=BATCH_INPUT,
                    _preload_content=False,
                ),
                id="post-batch-create",
            ),
            pytest.param(
                "POST",
                lambda h: h.api_request("POST", "/crm/v3/objects/deals/batch/create", body=BATCH_INPUT),
                id="post-api-request",
            ),
        ],
    )
    def test_post_retried_on_429_honouring_retry_after(self, stub, method, call):
        stub.answer(
            429,
            {"category": "RATE_LIMITS", "policyName": "TEN_SECONDLY_ROLLING"},
            headers={"Retry-After": "1"},
        )
        hook = HubSpotHook()
        hook.call(call, hook)
        assert [r[0] for r in stub.requests] == [method, method]
        assert stub.requests[1][2] - stub.requests[0][2] >= 0.95

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_patch_retried_on_5xx(self, stub, status):
        stub.answer(status, {"message": "oops"})
        hook = HubSpotHook()
        hook.call(
            hook.crm.deals.basic_api.update,
            deal_id="7",
            simple_public_object_input={"properties": {"dealname": "y"}},
            _preload_content=False,
        )
        assert [r[0] for r in stub.requests] == ["PATCH", "PATCH"]

    def test_retries_are_paced(self, stub):
        for _ in range(2):
            stub.answer(503, {"message": "busy"})
        hook = HubSpotHook()
        hook.burst_limiter = CountingLimiter()
        hook.call(hook.crm.deals.basic_api.get_page, limit=1, _preload_content=False)
        assert hook.burst_limiter.calls == 3

    def test_gives_up_after_max_retries(self, stub):
        for _ in range(10):
            stub.answer(
                429, {"category": "RATE_LIMITS", "message": "You have reached your ten_secondly_rolling"}
            )
        hook = HubSpotHook()
        with pytest.raises(ThrottledError) as info:
            hook.call(
                hook.crm.deals.batch_api.create,
                batch_input_simple_public_object_batch_input_for_create=BATCH_INPUT,
            )
        assert len(stub.requests) == 4  # first try + max_retries=3
        assert info.value.code == "RATE_LIMITS"
        assert "ten_secondly_rolling" in info.value.message

    @pytest.mark.parametrize(
        ("status", "body", "error", "code"),
        [
            pytest.param(
                400,
                {"category": "VALIDATION_ERROR", "message": "Property values were not valid"},
                ValidationError,
                "VALIDATION_ERROR",
                id="400",
            ),
            pytest.param(
                401,
                {"category": "INVALID_AUTHENTICATION", "message": "expired"},
                AuthError,
                "INVALID_AUTHENTICATION",
                id="401",
            ),
            pytest.param(
                403, {"category": "MISSING_SCOPES", "message": "scope"}, AuthError, "MISSING_SCOPES", id="403"
            ),
            pytest.param(
                404,
                {"category": "OBJECT_NOT_FOUND", "message": "gone"},
                NotFoundError,
                "OBJECT_NOT_FOUND",
                id="404",
            ),
            pytest.param(
                409, {"category": "CONFLICT", "message": "exists"}, ConflictError, "CONFLICT", id="409"
            ),
            pytest.param(422, {"message": "odd"}, FatalError, "422", id="other-4xx"),
            pytest.param(501, "not json", ServiceUnavailableError, "501", id="5xx-not-retried-non-json"),
        ],
    )
    def test_status_translation(self, stub, status, body, error, code):
        stub.answer(status, body)
        hook = HubSpotHook()
        with pytest.raises(error) as info:
            hook.call(hook.crm.deals.basic_api.get_by_id, deal_id="9")
        assert type(info.value) is error
        assert info.value.code == code
        assert info.value.record_id == "9"
        if isinstance(body, dict) and "message" in body:
            assert body["message"] in info.value.message

    def test_read_timeout_from_connection(self, stub, monkeypatch):
        _set_conn(monkeypatch, stub.server.url, read_timeout=0.3, max_retries=0)
        stub.answer(200, {}, delay=1.5)
        hook = HubSpotHook()
        with pytest.raises(ServiceUnavailableError) as info:
            hook.call(hook.crm.deals.basic_api.get_page, limit=1)
        # The stub answers 200 after 1.5 s: only the connection's 0.3 s read timeout turns it into this.
        assert "read timeout=0.3" in info.value.message

    def test_post_not_resent_after_read_timeout(self, stub, monkeypatch):
        """HubSpot may have applied a POST that timed out: resending it could duplicate records."""
        _set_conn(monkeypatch, stub.server.url, read_timeout=0.3, max_retries=3)
        stub.answer(200, {}, delay=1.0)
        hook = HubSpotHook()
        with pytest.raises(ServiceUnavailableError):
            hook.call(
                hook.crm.deals.batch_api.create,
                batch_input_simple_public_object_batch_input_for_create=BATCH_INPUT,
            )
        assert len(stub.requests) == 1

    def test_token_sent_as_bearer_everywhere(self, stub):
        hook = HubSpotHook()
        hook.call(hook.crm.deals.basic_api.get_page, limit=1, _preload_content=False)
        hook.api_request("GET", "/crm/v3/owners")
        assert [r[3].get("Authorization") for r in stub.requests] == [f"Bearer {TOKEN}"] * 2

    def test_unreachable_host(self, monkeypatch):
        _set_conn(monkeypatch, "http://127.0.0.1:9", max_retries=0)
        hook = HubSpotHook()
        with pytest.raises(ServiceUnavailableError):
            hook.call(hook.crm.deals.basic_api.get_page, limit=1)
        with pytest.raises(ServiceUnavailableError):
            hook.api_request("GET", "/crm/v3/objects/deals")


def test_a_read_timeout_resends_a_search_but_never_a_create(hubspot_emulator, monkeypatch) -> None:
    """A search answered too late is resent (it changes nothing); a create answered too late is not (it
    may have been applied): the writer reads back instead."""
    from cosell_sync.hubspot_api import HubSpotGateway

    url = hubspot_emulator.url
    _set_conn(monkeypatch, url, read_timeout=0.5, max_retries=2, backoff_factor=0.01)
    slow = {"times": 1, "when": "after", "latency_ms": 1500}
    search, create = "POST /crm/v3/objects/deals/search", "POST /crm/v3/objects/notes/batch/create"
    requests.post(
        f"{url}/_emulator/faults", json={"endpoint_faults": {search: slow, create: slow}}, timeout=10
    )
    requests.delete(f"{url}/_emulator/calls", timeout=10)
    gw = HubSpotGateway(HubSpotHook("hubspot_default"))

    found = list(gw.search("deals", [{"filters": []}], ["dealname"], "hs_lastmodifieddate"))
    with pytest.raises(ServiceUnavailableError):
        gw.batch_create("notes", [{"properties": {"hs_note_body": "once", "hs_timestamp": "1700000000000"}}])

    calls = requests.get(f"{url}/_emulator/calls", timeout=10).json()["by_endpoint"]
    assert found == []
    assert calls[search] == 2  # timed out once, resent
    assert calls[create] == 1  # timed out, applied, not resent
