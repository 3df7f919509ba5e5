"""Fixtures for the HubSpot emulator tests: a fresh emulator, the official SDK pointed at it, raw HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hubspot
import pytest
import requests

from emulators.hubspot import HubSpotEmulator

TOKEN = "pat-na1-test-token"


class Api:
    """Raw HTTP against the emulator with a Bearer token (what any HTTP client would send)."""

    def __init__(self, url: str, token: str | None = TOKEN) -> None:
        self.url = url
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, json: Any = None, **kw: Any) -> requests.Response:
        return self.session.request(method, self.url + path, json=json, timeout=30, **kw)

    def control(self, method: str, name: str, json: Any = None) -> Any:
        resp = requests.request(method, f"{self.url}/_emulator/{name}", json=json, timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()


@pytest.fixture
def emu() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(port=0) as emulator:
        yield emulator


@pytest.fixture
def api(emu: HubSpotEmulator) -> Api:
    return Api(emu.url)


@pytest.fixture
def fast(api: Api) -> Api:
    """Limits kept on but scaled up so functional tests are not throttled."""
    api.control("POST", "quotas", {"time_scale": 1000})
    return api


@pytest.fixture
def client(emu: HubSpotEmulator) -> hubspot.Client:
    return hubspot.Client.create(access_token=TOKEN, host=emu.url, base_url=emu.url)
