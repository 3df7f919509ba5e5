"""Airflow hooks of co-sell sync: AWS Partner Central Selling and HubSpot CRM.

The Airflow plugins folder is on ``sys.path``, so DAG tasks import them as
``from cosell_hooks import PartnerCentralHook, HubSpotHook``. The hooks are imported lazily: importing the
package (e.g. while a DAG file is parsed) does not import boto3 or hubspot-api-client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cosell_hooks.hubspot import HubSpotHook
    from cosell_hooks.partner_central import PartnerCentralHook

__all__ = ["HubSpotHook", "PartnerCentralHook"]

_HOOKS = {
    "HubSpotHook": "cosell_hooks.hubspot",
    "PartnerCentralHook": "cosell_hooks.partner_central",
}


def __getattr__(name: str) -> Any:
    """Import a hook on first access (PEP 562), keeping DAG parsing free of the SDK imports."""
    module_name = _HOOKS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
