"""The co-sell sync Airflow plugin: a name in the Plugins view, nothing heavy.

The hooks live in the ``cosell_hooks`` package next to this file (the plugins folder is on ``sys.path``)
and are imported by tasks as ``from cosell_hooks import PartnerCentralHook, HubSpotHook``. Airflow 3 does
not take hooks or connection types from plugins (only provider packages register connection types, see
``cosell_hooks.provider_info``), so this plugin deliberately imports neither boto3 nor hubspot-api-client:
every Airflow component loads plugins, and they must stay cheap to import.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class CoSellPlugin(AirflowPlugin):
    """Registers the co-sell sync plugin by name (UI extensions will be added here later)."""

    name = "cosell_sync"
