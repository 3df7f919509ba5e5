"""The plugin's registration: the Co-sell app and page as Airflow lists them, and a cheap import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_loading_the_plugin_does_not_import_fastapi_or_the_api() -> None:
    # Every Airflow component imports the plugins folder; only the API server needs the app.
    code = (
        "import sys, cosell_plugin; "
        "print(sorted(m for m in ('fastapi', 'cosell_runtime.api') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in (".", "include", "plugins"))}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_airflow_lists_the_cosell_api_and_page() -> None:
    from airflow import plugins_manager
    from airflow.api_fastapi.core_api.datamodels.plugins import PluginResponse

    info = next(i for i in plugins_manager.get_plugin_info() if i["name"] == "cosell_sync")
    plugin = PluginResponse.model_validate(info)
    assert [(a.name, a.url_prefix) for a in plugin.fastapi_apps] == [("Co-sell API", "/cosell")]
    (view,) = plugin.external_views
    assert (view.name, view.href, view.url_route, view.destination) == (
        "Co-sell",
        "/cosell/ui",
        "cosell",
        "nav",
    )
    assert plugin.listeners == ["cosell_runtime.run_notes"]
