"""Owners (``/crm/v3/owners``) and deal pipelines with their stages (``/crm/v3/pipelines``)."""

from __future__ import annotations

import copy
from typing import Any

from emulators.hubspot.exceptions import Conflict, NotFound, ValidationError
from emulators.hubspot.models.base import BackendBase, iso, now_ms


class OwnersPipelinesMixin(BackendBase):
    """Owners and pipelines."""

    def list_owners(self, email: str | None, archived: bool) -> list[dict[str, Any]]:
        """Owners, optionally filtered by email."""
        with self.lock:
            return [
                dict(o)
                for o in self.owners
                if o["archived"] == archived
                and (email is None or (o.get("email") or "").lower() == email.lower())
            ]

    def get_owner(self, owner_id: str, id_property: str = "id") -> dict[str, Any]:
        """One owner by ``id`` or ``userId``."""
        with self.lock:
            for o in self.owners:
                if str(o["userId" if id_property == "userId" else "id"]) == str(owner_id):
                    return dict(o)
        raise NotFound(f"No owner with {id_property} {owner_id}")

    def add_owner(self, first: str | None, last: str | None, email: str | None) -> dict[str, Any]:
        """Add an owner (seeding, ``POST /_emulator/owners``); a missing name or e-mail is left out."""
        with self.lock:
            n = len(self.owners)
            stamp = iso(now_ms())
            owner = {
                "id": str(75480756 + n),
                "userId": 10153601 + n,
                "userIdIncludingInactive": 10153601 + n,
                "type": "PERSON",
                "archived": False,
                "createdAt": stamp,
                "updatedAt": stamp,
                "teams": [],
            }
            # PublicOwner requires none of the three: an absent value is left out, as HubSpot does.
            owner.update(
                {
                    k: v
                    for k, v in (("firstName", first), ("lastName", last), ("email", email))
                    if v is not None
                }
            )
            self.owners.append(owner)
            return owner

    def _pipelines_of(self, object_type: str) -> dict[str, dict[str, Any]]:
        if object_type not in self.pipelines:
            raise ValidationError(f"Object type {object_type} does not support pipelines")
        return self.pipelines[object_type]

    def list_pipelines(self, object_type: str) -> list[dict[str, Any]]:
        """Pipelines of a type in display order."""
        with self.lock:
            return copy.deepcopy(
                sorted(
                    (p for p in self._pipelines_of(object_type).values() if not p["archived"]),
                    key=lambda p: p["displayOrder"],
                )
            )

    def get_pipeline(self, object_type: str, pipeline_id: str) -> dict[str, Any]:
        """One pipeline or 404."""
        with self.lock:
            pipe = self._pipelines_of(object_type).get(pipeline_id)
            if pipe is None or pipe["archived"]:
                raise NotFound(f"Unable to find pipeline {pipeline_id}")
            return copy.deepcopy(pipe)

    def _stage(self, object_type: str, body: dict[str, Any], stamp: str) -> dict[str, Any]:
        if not body.get("label"):
            raise ValidationError("Each stage needs a label")
        metadata = {k: str(v) for k, v in (body.get("metadata") or {}).items()}
        if object_type == "deals":
            # Deal stages require a win probability between 0 and 1 (HubSpot pipelines API).
            try:
                prob = float(metadata.get("probability", ""))
            except ValueError:
                raise ValidationError(
                    "Deal stages require metadata.probability between 0.0 and 1.0"
                ) from None
            if not 0 <= prob <= 1:
                raise ValidationError("Deal stages require metadata.probability between 0.0 and 1.0")
            metadata.setdefault(
                "isClosed",
                "true" if prob in (0.0, 1.0) and "closed" in str(body["label"]).lower() else "false",
            )
        return {
            "id": self.next_pipeline_id(),
            "label": body["label"],
            "displayOrder": body.get("displayOrder", 0),
            "archived": False,
            "createdAt": stamp,
            "updatedAt": stamp,
            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
            "metadata": metadata,
        }

    def create_pipeline(self, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a pipeline with its stages (``PipelineInput``)."""
        with self.lock:
            pipes = self._pipelines_of(object_type)
            if not body.get("label") or not isinstance(body.get("stages"), list) or not body["stages"]:
                raise ValidationError("A pipeline needs a label and at least one stage")
            if any(p["label"] == body["label"] and not p["archived"] for p in pipes.values()):
                raise Conflict(f"A pipeline with label {body['label']!r} already exists")
            stamp = iso(now_ms())
            pipe = {
                "id": str(body.get("pipelineId") or self.next_pipeline_id()),
                "label": body["label"],
                "displayOrder": body.get("displayOrder", len(pipes)),
                "archived": False,
                "createdAt": stamp,
                "updatedAt": stamp,
                "stages": [self._stage(object_type, s, stamp) for s in body["stages"]],
            }
            pipes[pipe["id"]] = pipe
            return copy.deepcopy(pipe)

    def update_pipeline(self, object_type: str, pipeline_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH a pipeline's label or display order."""
        with self.lock:
            pipe = self._pipelines_of(object_type).get(pipeline_id)
            if pipe is None or pipe["archived"]:
                raise NotFound(f"Unable to find pipeline {pipeline_id}")
            for key in ("label", "displayOrder", "archived"):
                if key in body:
                    pipe[key] = body[key]
            pipe["updatedAt"] = iso(now_ms())
            return copy.deepcopy(pipe)

    def archive_pipeline(self, object_type: str, pipeline_id: str) -> None:
        """Archive a pipeline."""
        with self.lock:
            pipe = self._pipelines_of(object_type).get(pipeline_id)
            if pipe is None or pipe["archived"]:
                raise NotFound(f"Unable to find pipeline {pipeline_id}")
            pipe["archived"] = True
            pipe["archivedAt"] = iso(now_ms())

    def create_stage(self, object_type: str, pipeline_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Add a stage to a pipeline."""
        with self.lock:
            pipe = self._pipelines_of(object_type).get(pipeline_id)
            if pipe is None or pipe["archived"]:
                raise NotFound(f"Unable to find pipeline {pipeline_id}")
            stage = self._stage(object_type, body, iso(now_ms()))
            pipe["stages"].append(stage)
            return copy.deepcopy(stage)
