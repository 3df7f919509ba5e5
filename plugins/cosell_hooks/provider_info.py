"""Provider metadata for the ``hubspot`` connection type, in Airflow's ``provider.yaml`` shape.

Airflow 3 builds the connection form from provider packages only (``connection-types`` with
``conn-fields``/``ui-field-behaviour``, found through the ``apache_airflow_provider`` entry point); plugins
cannot register connection types. Until co-sell sync is installed as a package with that entry point
(``apache_airflow_provider = "cosell_hooks.provider_info:get_provider_info"``), ``hubspot_default`` can be
any connection type (``http`` or ``generic`` in the UI): the hook reads only the password, host and extra.
"""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Return the provider info dict Airflow's ProvidersManager reads."""
    return {
        "package-name": "cosell-sync",
        "name": "Co-sell sync",
        "description": "Hooks for AWS Partner Central Selling and HubSpot CRM.",
        "versions": ["0.1.0"],
        "connection-types": [
            {
                "connection-type": "hubspot",
                "hook-class-name": "cosell_hooks.hubspot.HubSpotHook",
                "hook-name": "HubSpot",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"password": "Private app access token", "host": "API base URL (optional)"},
                    "placeholders": {"host": "https://api.hubapi.com"},
                },
                "conn-fields": {
                    "requests_per_10s": {
                        "label": "Requests per 10 s",
                        "description": "HubSpot burst limit of the private app (100, 190 or 250).",
                        "schema": {"type": "integer", "default": 100, "minimum": 1},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Retries on 429 and 5xx (all methods), with backoff and jitter.",
                        "schema": {"type": "integer", "default": 5, "minimum": 0},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "schema": {"type": "number", "default": 5},
                    },
                    "read_timeout": {
                        "label": "Read timeout (s)",
                        "schema": {"type": "number", "default": 30},
                    },
                },
            }
        ],
    }
