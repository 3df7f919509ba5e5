"""Shared fixtures: local S3/DynamoDB (moto server), the two emulators, and an isolated AIRFLOW_HOME.

Every fixture starts its server on port 0 in a thread, so tests run in parallel (pytest-xdist)
without port clashes and without credentials or network.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Airflow reads its configuration at import time: point it at a throwaway home (SQLite) before any
# test module imports it. Each xdist worker gets its own home so their databases never collide.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
_AIRFLOW_HOME = Path(tempfile.gettempdir()) / f"cosell-test-airflow-{os.getppid()}-{_worker}"
# Forced, not defaulted: xdist workers inherit the controller's environment (and `make` exports the
# repo's own AIRFLOW_HOME), and two workers migrating one SQLite file corrupt each other's runs.
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "plugins")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
# Dummy credentials: boto3 refuses to sign without some, and nothing here may reach real AWS.
for _k, _v in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ.setdefault(_k, _v)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server standing in for S3 and DynamoDB; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_endpoint(moto_server: str) -> str:
    """The moto endpoint, reset before each test so state never leaks between tests."""
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    return moto_server


@pytest.fixture
def pc_emulator() -> Iterator[object]:
    """A fresh Partner Central emulator on port 0 (quotas at real values unless a test changes them)."""
    from emulators.partner_central import PartnerCentralEmulator

    with PartnerCentralEmulator(port=0) as emulator:
        yield emulator


@pytest.fixture
def hubspot_emulator() -> Iterator[object]:
    """A fresh HubSpot emulator on port 0 (limits at real values unless a test changes them)."""
    from emulators.hubspot import HubSpotEmulator

    with HubSpotEmulator(port=0) as emulator:
        yield emulator
