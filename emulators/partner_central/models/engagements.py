"""Engagements: engagements, their contexts and members, and engagement resource associations."""

from __future__ import annotations

import copy
from typing import Any

from emulators.partner_central.exceptions import (
    ConflictException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
    business_error,
)
from emulators.partner_central.models.base import BackendBase, iso, paginate, parse_ts


class EngagementsMixin(BackendBase):
    """The engagement operations (CreateEngagement, contexts, members, resource associations)."""

    def new_engagement(
        self,
        catalog: str,
        title: str | None,
        created_by: str,
        description: str | None = None,
        contexts: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A new engagement (we are a member when we create it), stored in the catalog."""
        store = self.store(catalog)
        eid = f"eng-{self.rand_id(14)}"
        now = self.now()
        eng = {
            "Id": eid,
            "Arn": self.make_arn(catalog, "engagement", eid),
            "Title": title,
            "Description": description,
            "CreatedAt": now,
            "CreatedBy": created_by,
            "ModifiedAt": now,
            "ModifiedBy": created_by,
            "Contexts": [],
            "Members": [],
            "Catalog": catalog,
            "Resources": [],
        }
        if created_by == self.account_id:
            eng["Members"].append(self.partner_member())
        for ctx in contexts or []:
            self.add_context(eng, ctx)
        store["engagements"][eid] = eng
        return eng

    def partner_member(self) -> dict[str, Any]:
        """This partner as an engagement member."""
        return {
            "CompanyName": "Example Partner",
            "WebsiteUrl": "https://partner.example.com",
            "AccountId": self.account_id,
        }

    def add_context(self, eng: dict[str, Any], ctx: dict[str, Any]) -> str:
        """Add a context (at most 5 per engagement); returns its id."""
        if len(eng["Contexts"]) >= 5:
            raise ServiceQuotaExceededException(f"Engagement {eng['Id']} already has 5 contexts")
        cid = str(len(eng["Contexts"]) + 1)
        eng["Contexts"].append(
            {"Id": cid, "Type": ctx["Type"], "Payload": copy.deepcopy(ctx.get("Payload") or {})}
        )
        return cid

    def engagement(self, catalog: str, identifier: str) -> dict[str, Any]:
        """Engagement by id or ARN, or ``ResourceNotFoundException``."""
        eid = identifier.rsplit("/", 1)[-1]
        eng = self.store(catalog)["engagements"].get(eid)
        if eng is None:
            raise ResourceNotFoundException(f"Engagement {identifier} not found in catalog {catalog}")
        return eng

    def create_engagement(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateEngagement (idempotent on ClientToken)."""

        def action() -> dict[str, Any]:
            with self.lock:
                eng = self.new_engagement(
                    params["Catalog"],
                    params.get("Title"),
                    self.account_id,
                    params.get("Description"),
                    params.get("Contexts"),
                )
                return {"Id": eng["Id"], "Arn": eng["Arn"], "ModifiedAt": eng["ModifiedAt"]}

        return self.idempotent(params["Catalog"], "CreateEngagement", params, action)

    def create_engagement_context(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateEngagementContext: add a context (at most 5 per engagement, model ``EngagementContexts``)."""

        def action() -> dict[str, Any]:
            with self.lock:
                eng = self.engagement(params["Catalog"], params["EngagementIdentifier"])
                cid = self.add_context(eng, {"Type": params["Type"], "Payload": params["Payload"]})
                eng["ModifiedAt"], eng["ModifiedBy"] = self.now(), self.account_id
                return {
                    "EngagementId": eng["Id"],
                    "EngagementArn": eng["Arn"],
                    "EngagementLastModifiedAt": eng["ModifiedAt"],
                    "ContextId": cid,
                }

        return self.idempotent(params["Catalog"], "CreateEngagementContext", params, action)

    def update_engagement_context(self, params: dict[str, Any]) -> dict[str, Any]:
        """UpdateEngagementContext: optimistic lock on ``EngagementLastModifiedAt``."""
        with self.lock:
            eng = self.engagement(params["Catalog"], params["EngagementIdentifier"])
            if parse_ts(params["EngagementLastModifiedAt"]) != eng["ModifiedAt"]:
                raise ConflictException(f"Engagement {eng['Id']} was modified at {iso(eng['ModifiedAt'])}")
            ctx = next((c for c in eng["Contexts"] if c["Id"] == params["ContextIdentifier"]), None)
            if ctx is None:
                raise ResourceNotFoundException(
                    f"Context {params['ContextIdentifier']} not found in {eng['Id']}"
                )
            if ctx["Type"] != params["Type"]:
                raise business_error("Type", f"Context {ctx['Id']} is of type {ctx['Type']}", "INVALID_VALUE")
            payload = copy.deepcopy(params["Payload"])
            if "Lead" in payload:
                lead = payload["Lead"]
                old = ctx["Payload"].get("Lead", {})
                interactions = list(old.get("Interactions", []))
                if lead.get("Interaction"):
                    interactions.append(lead.pop("Interaction"))
                lead["Interactions"] = interactions[-10:]
            ctx["Payload"] = payload
            eng["ModifiedAt"], eng["ModifiedBy"] = self.now(), self.account_id
            return {
                "EngagementId": eng["Id"],
                "EngagementArn": eng["Arn"],
                "EngagementLastModifiedAt": eng["ModifiedAt"],
                "ContextId": ctx["Id"],
            }

    def get_engagement(self, catalog: str, identifier: str) -> dict[str, Any]:
        """GetEngagement."""
        with self.lock:
            eng = self.engagement(catalog, identifier)
            return {**eng, "MemberCount": len(eng["Members"])}

    def list_engagements(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListEngagements with its filters and CreatedDate sort."""
        with self.lock:
            items = []
            for eng in self.store(params["Catalog"])["engagements"].values():
                types = {c["Type"] for c in eng["Contexts"]}
                if params.get("EngagementIdentifier") and eng["Id"] not in {
                    i.rsplit("/", 1)[-1] for i in params["EngagementIdentifier"]
                }:
                    continue
                if params.get("CreatedBy") and eng["CreatedBy"] not in params["CreatedBy"]:
                    continue
                if params.get("ExcludeCreatedBy") and eng["CreatedBy"] in params["ExcludeCreatedBy"]:
                    continue
                if params.get("ContextTypes") and not types & set(params["ContextTypes"]):
                    continue
                if params.get("ExcludeContextTypes") and types & set(params["ExcludeContextTypes"]):
                    continue
                items.append({**eng, "MemberCount": len(eng["Members"]), "ContextTypes": sorted(types)})
            order = (params.get("Sort") or {}).get("SortOrder", "DESCENDING")
            items.sort(key=lambda e: (e["CreatedAt"], e["Id"]), reverse=order == "DESCENDING")
            page, nxt = paginate(items, params, 20)
            return {"EngagementSummaryList": page, "NextToken": nxt}

    def list_engagement_members(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListEngagementMembers (at most 10 a page, model ``MemberPageSize``)."""
        with self.lock:
            eng = self.engagement(params["Catalog"], params["Identifier"])
            page, nxt = paginate(list(eng["Members"]), params, 10)
            return {"EngagementMemberList": page, "NextToken": nxt}

    def list_engagement_resource_associations(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListEngagementResourceAssociations."""
        with self.lock:
            items = []
            for eng in self.store(params["Catalog"])["engagements"].values():
                if params.get("EngagementIdentifier") and eng["Id"] != params["EngagementIdentifier"]:
                    continue
                for res in eng["Resources"]:
                    if params.get("ResourceIdentifier") and res["ResourceId"] != params["ResourceIdentifier"]:
                        continue
                    if params.get("CreatedBy") and res["CreatedBy"] != params["CreatedBy"]:
                        continue
                    items.append({"Catalog": params["Catalog"], "EngagementId": eng["Id"], **res})
            page, nxt = paginate(items, params, 100)
            return {"EngagementResourceAssociationSummaries": page, "NextToken": nxt}

    def associate_resource(self, eng: dict[str, Any], oid: str, created_by: str) -> None:
        """Associate an opportunity with the engagement (once)."""
        if not any(r["ResourceId"] == oid for r in eng["Resources"]):
            eng["Resources"].append(
                {"ResourceType": "Opportunity", "ResourceId": oid, "CreatedBy": created_by}
            )
