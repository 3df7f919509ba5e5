"""Fixtures for the Partner Central emulator tests: a fresh emulator, boto3 clients and control helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config

from emulators.partner_central import PartnerCentralEmulator


@pytest.fixture
def emu() -> Iterator[PartnerCentralEmulator]:
    """A fresh emulator; quotas scaled x1000 so functional tests never wait (quota tests reset them)."""
    with PartnerCentralEmulator(port=0) as emulator:
        requests.post(
            f"{emulator.url}/_emulator/quotas", json={"enabled": True, "time_scale": 1000}, timeout=5
        )
        requests.post(f"{emulator.url}/_emulator/config", json={"task_delay_ms": 30}, timeout=5)
        yield emulator


def make_client(url: str, **config: Any) -> Any:
    """A boto3 client exactly as the product builds it, without retries so errors surface."""
    return boto3.client(
        "partnercentral-selling",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, **config),
    )


@pytest.fixture
def pc(emu: PartnerCentralEmulator) -> Any:
    """boto3 client against the emulator."""
    return make_client(emu.url)


@pytest.fixture
def raw(emu: PartnerCentralEmulator) -> Any:
    """boto3 client with client-side validation off, so the server's validation is what answers."""
    return make_client(emu.url, parameter_validation=False)


@pytest.fixture
def ctl(emu: PartnerCentralEmulator) -> Callable[..., Any]:
    """Call a test control: ``ctl("seed", {...})`` (POST) or ``ctl("calls", method="GET")``."""

    def call(path: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
        response = requests.request(method, f"{emu.url}/_emulator/{path}", json=body, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    return call
