"""The co-sell sync Airflow plugin: a name in the Plugins view, nothing heavy.

The hooks live in the ``cosell_hooks`` package next to this file (the plugins folder is on ``sys.path``)
and are imported by tasks as ``from cosell_hooks import PartnerCentralHook, HubSpotHook``. Airflow 3 does
not take hooks or connection types from plugins (only provider packages register connection types, see
``cosell_hooks.provider_info``), so this plugin deliberately imports neither boto3 nor hubspot-api-client:
every Airflow component loads plugins, and they must stay cheap to import.

The Co-sell API and page (``cosell_runtime.api``) are mounted on Airflow's API server under ``/cosell``
through a lazy wrapper (``cosell_runtime.lazy_app``): FastAPI and Airflow's API security are imported on
the first request, in the API server only. The page appears in the UI's navigation as "Co-sell". The same
app receives HubSpot's webhooks at ``/cosell/hubspot/webhooks`` (``cosell_runtime.webhooks``), authenticated
by HubSpot's signature instead of Airflow's JWT.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from cosell_runtime import run_notes
from cosell_runtime.lazy_app import LazyASGIApp


class CoSellPlugin(AirflowPlugin):
    """The co-sell sync plugin: the run-note listener, and the Co-sell API and page on the API server."""

    name = "cosell_sync"
    # The scheduler calls it when a run ends; it only reads the run's XCom and sets the run's note.
    listeners = [run_notes]
    # Every route authenticates with Airflow's JWT itself: Airflow does not authenticate plugin apps.
    fastapi_apps = [
        {"app": LazyASGIApp("cosell_runtime.api:create_app"), "url_prefix": "/cosell", "name": "Co-sell API"}
    ]
    # The page, in the UI's navigation (an iframe at /plugin/cosell; the UI's cookie authenticates it).
    external_views = [
        {
            "name": "Co-sell",
            "href": "/cosell/ui",
            "url_route": "cosell",
            "destination": "nav",
            "category": "browse",
        }
    ]
