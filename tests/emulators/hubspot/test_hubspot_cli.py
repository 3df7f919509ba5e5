"""``python -m emulators.hubspot`` prints its URL first and serves the API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[3]


def test_module_entry_point_serves() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulators.hubspot", "--port", "0", "--access-token", "tok"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("HubSpot emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[-1]
        ok = requests.get(url + "/crm/v3/pipelines/deals", headers={"Authorization": "Bearer tok"}, timeout=5)
        assert ok.status_code == 200
        assert ok.json()["results"][0]["id"] == "default"
        denied = requests.get(
            url + "/crm/v3/pipelines/deals", headers={"Authorization": "Bearer x"}, timeout=5
        )
        assert denied.status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)
