"""``cosell_hubspot_setup``: HubSpot custom properties and the state/audit storage, idempotently."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from cosell_sync.bootstrap import ensure_storage as _ensure_storage
from cosell_sync.properties import PropertyGroupSpec, PropertySpec, custom_properties, diff_property

if TYPE_CHECKING:
    from cosell_sync.clients import HubSpotApi
    from cosell_sync.config import SyncConfig

log = logging.getLogger(__name__)


def ensure_storage(cfg: SyncConfig, s3_client: Any, dynamodb_client: Any) -> dict[str, Any]:
    """Create the bucket and the audit/state tables when missing (first run and local stacks)."""
    created = _ensure_storage(
        s3_client, dynamodb_client, cfg.storage.bucket, cfg.storage.audit_table, cfg.storage.state_table
    )
    made = [name for name, flag in created.items() if flag]
    log.info("Storage: %s", f"created {', '.join(made)}" if made else "no changes (everything exists)")
    return {"created": made}


def _raw(api: HubSpotApi, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    response = api.call(fn, *args, _preload_content=False, **kwargs)
    body = response.data if hasattr(response, "data") else response
    return json.loads(body) if body else {}


def ensure_properties(cfg: SyncConfig, api: HubSpotApi) -> dict[str, Any]:
    """Create or patch the ``aws_partner_central`` groups and every custom property; report changes.

    Reads each object type's groups and properties once, creates what is missing in one batch call
    per object type, and patches only properties whose definition differs. A second run makes no
    writes and says so.
    """
    props_api = api.client.crm.properties
    specs = custom_properties(cfg)
    groups = [s for s in specs if isinstance(s, PropertyGroupSpec)]
    wanted = [s for s in specs if isinstance(s, PropertySpec)]
    summary: dict[str, list[str]] = {"groups_created": [], "created": [], "patched": [], "unchanged": []}

    for group in groups:
        existing = _raw(api, props_api.groups_api.get_all, group.object_type)
        if group.body["name"] not in {g["name"] for g in existing.get("results", [])}:
            _raw(api, props_api.groups_api.create, group.object_type, property_group_create=group.body)
            summary["groups_created"].append(f"{group.object_type}.{group.body['name']}")

    for object_type in sorted({s.object_type for s in wanted}):
        existing = {
            p["name"]: p for p in _raw(api, props_api.core_api.get_all, object_type).get("results", [])
        }
        missing = [s.body for s in wanted if s.object_type == object_type and s.name not in existing]
        if missing:
            _raw(
                api, props_api.batch_api.create, object_type, batch_input_property_create={"inputs": missing}
            )
            summary["created"].extend(f"{object_type}.{b['name']}" for b in missing)
        for spec in wanted:
            if spec.object_type != object_type or spec.name not in existing:
                continue
            patch = diff_property(existing[spec.name], spec.body)
            if patch:
                _raw(api, props_api.core_api.update, object_type, spec.name, property_update=patch)
                summary["patched"].append(f"{object_type}.{spec.name}")
            else:
                summary["unchanged"].append(f"{object_type}.{spec.name}")

    changes = len(summary["groups_created"]) + len(summary["created"]) + len(summary["patched"])
    if changes:
        log.info(
            "HubSpot setup: %d groups created, %d properties created, %d patched, %d unchanged",
            len(summary["groups_created"]),
            len(summary["created"]),
            len(summary["patched"]),
            len(summary["unchanged"]),
        )
    else:
        log.info("HubSpot setup: no changes - all %d properties already match", len(summary["unchanged"]))
    return {"changes": changes, **{k: len(v) for k, v in summary.items()}}
