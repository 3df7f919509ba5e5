"""Engagements: engagements, their contexts and members, and engagement resource associations."""

from __future__ import annotations

import copy
from typing import Any

from emulators.partner_central import shapes
from emulators.partner_central.exceptions import (
    AccessDeniedException,
    ConflictException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
    ValidationException,
    business_error,
)
from emulators.partner_central.models.base import AWS_ACCOUNT, BackendBase, iso, paginate, parse_ts


def check_against(shape_name: str, value: Any, label: str) -> None:
    """Validate a test control's value against a model shape, refusing members the shape does not declare.

    Test controls play AWS's side, so what they store must be something the API could return: an unknown or
    misspelt key is an error here (``ValidationException``, HTTP 400 from the control), not silently dropped.
    """
    errors: list[dict[str, str]] = []
    _unknown_members(shapes.shape(shape_name), value, label, errors)
    shapes.validate(shapes.shape(shape_name), value, label, errors, output=True)
    if errors:
        raise ValidationException(f"{label} is not a valid {shape_name}", errors)


def _unknown_members(shape: Any, value: Any, path: str, errors: list[dict[str, str]]) -> None:
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, item in value.items():
            if key not in shape.members:
                errors.append(
                    {
                        "FieldName": f"{path}.{key}",
                        "Message": f"{shape.name} has no member {key}",
                        "Code": "INVALID_VALUE",
                    }
                )
            else:
                _unknown_members(shape.members[key], item, f"{path}.{key}", errors)
    elif shape.type_name == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            _unknown_members(shape.member, item, f"{path}[{i}]", errors)


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
        if self.is_member(eng):
            # Developer guide, event scenarios: "You create an engagement" -> Engagement Created (also
            # StartEngagementFromOpportunityTask). An engagement AWS creates for a referral is not ours
            # until we accept, and "You receive an invitation" lists only Engagement Invitation Created.
            self.engagement_event("Engagement Created", eng)
        return eng

    def is_member(self, eng: dict[str, Any]) -> bool:
        """True when this partner account is a member of the engagement."""
        return any(m.get("AccountId") == self.account_id for m in eng["Members"])

    def engagement_event(self, detail_type: str, eng: dict[str, Any]) -> None:
        """Emit ``Engagement Created`` / ``Engagement Updated`` with the developer guide's sample detail.

        The samples spell the inner keys in mixed case (``engagementArn``, ``CreatedAt``, ``LastModifiedBy``,
        ``ContextTypes``); the emulator copies them exactly.
        """
        body: dict[str, Any] = {"engagementArn": eng["Arn"], "engagementId": eng["Id"]}
        if detail_type == "Engagement Created":
            body.update({"CreatedAt": iso(eng["CreatedAt"]), "CreatedBy": eng["CreatedBy"]})
        else:
            body.update({"LastModifiedAt": iso(eng["ModifiedAt"]), "LastModifiedBy": eng["ModifiedBy"]})
        body["ContextTypes"] = sorted({c["Type"] for c in eng["Contexts"]})
        self.emit(detail_type, {"catalog": eng["Catalog"], "engagement": body}, [eng["Arn"]])

    def member_added_event(self, eng: dict[str, Any], member: dict[str, Any]) -> None:
        """``Engagement Member Added`` (developer guide sample: engagement id, member account and name)."""
        self.emit(
            "Engagement Member Added",
            {
                "catalog": eng["Catalog"],
                "engagement": {"id": eng["Id"]},
                "engagementMember": {
                    "accountId": member.get("AccountId"),
                    "companyName": member["CompanyName"],
                },
            },
            [eng["Arn"]],
        )

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
                # Developer guide, event scenarios: "You update an engagement" -> Engagement Updated.
                self.engagement_event("Engagement Updated", eng)
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
            self.engagement_event("Engagement Updated", eng)
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
        """ListEngagementMembers (at most 10 a page, model ``MemberPageSize``); members only.

        API reference: "This operation can only be invoked by members of the Engagement", so before this
        partner joins (e.g. an AWS referral not yet accepted) the answer is ``AccessDeniedException``.
        """
        with self.lock:
            eng = self.engagement(params["Catalog"], params["Identifier"])
            if not self.is_member(eng):
                raise AccessDeniedException(
                    f"Account {self.account_id} is not a member of engagement {eng['Id']}"
                )
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

    # ---------------------------------------------------------------------------- AWS-side simulation
    def simulate_engagement_member(
        self, catalog: str, identifier: str, member: dict[str, Any]
    ) -> dict[str, Any]:
        """Another partner (or AWS) joins the engagement (test control ``simulate/engagement-member``).

        ``member`` is an ``EngagementMember`` (``CompanyName`` required here, ``WebsiteUrl``, ``AccountId``; a
        12-digit ``AccountId`` is generated when omitted). ``ModifiedAt`` moves (``ModifiedBy`` = the new
        member's account) and ``Engagement Member Added`` is emitted when this partner is a member (the event
        "notifies all current members").
        """
        with self.lock:
            eng = self.engagement(catalog, identifier)
            member = dict(member or {})
            if not member.get("CompanyName"):
                raise business_error(
                    "member.CompanyName", "member.CompanyName is required", "REQUIRED_FIELD_MISSING"
                )
            member.setdefault("AccountId", "".join(self._rng.choice("0123456789") for _ in range(12)))
            check_against("EngagementMember", member, "member")
            if any(m.get("AccountId") == member["AccountId"] for m in eng["Members"]):
                raise ConflictException(f"Account {member['AccountId']} is already a member of {eng['Id']}")
            eng["Members"].append(member)
            eng["ModifiedAt"], eng["ModifiedBy"] = self.now(), member["AccountId"]
            if self.is_member(eng):
                self.member_added_event(eng, member)
            return {
                "engagement_id": eng["Id"],
                "member": member,
                "member_count": len(eng["Members"]),
                "ModifiedAt": iso(eng["ModifiedAt"]),
            }

    def simulate_engagement_update(
        self, catalog: str, identifier: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        """AWS (or another member) changes the engagement (test control ``simulate/engagement-update``).

        ``changes`` may set ``Title`` and ``Description`` and carry ``Contexts``: an entry with the ``Id``
        of an existing context replaces that context's ``Payload`` (its ``Type`` must match); an entry without
        ``Id`` adds a context (at most 5). ``ModifiedBy`` defaults to ``aws``. The result must be a valid
        ``GetEngagement`` answer. ``ModifiedAt`` moves, so a partner ``UpdateEngagementContext`` that still
        sends the old ``EngagementLastModifiedAt`` gets ``ConflictException``; ``Engagement Updated`` is
        emitted when this partner is a member.
        """
        allowed = {"Title", "Description", "Contexts", "ModifiedBy"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ValueError(f"engagement-update accepts {sorted(allowed)}, not {unknown}")
        with self.lock:
            eng = self.engagement(catalog, identifier)
            new = copy.deepcopy(eng)
            for key in ("Title", "Description"):
                if key in changes:
                    new[key] = changes[key]
            for ctx in changes.get("Contexts") or []:
                if ctx.get("Id") is None:
                    self.add_context(new, ctx)
                    continue
                current = next((c for c in new["Contexts"] if c["Id"] == str(ctx["Id"])), None)
                if current is None:
                    raise ResourceNotFoundException(f"Context {ctx['Id']} not found in {eng['Id']}")
                if ctx.get("Type", current["Type"]) != current["Type"]:
                    raise business_error(
                        "Contexts.Type", f"Context {current['Id']} is of type {current['Type']}"
                    )
                current["Payload"] = copy.deepcopy(ctx.get("Payload") or {})
            new["ModifiedBy"] = changes.get("ModifiedBy", AWS_ACCOUNT)
            view = {k: v for k, v in new.items() if k not in ("Catalog", "Resources", "Members")}
            check_against(
                "GetEngagementResponse", {**view, "CreatedAt": None, "ModifiedAt": None}, "engagement"
            )
            new["ModifiedAt"] = self.now()
            eng.clear()
            eng.update(new)
            if self.is_member(eng):
                self.engagement_event("Engagement Updated", eng)
            return {"engagement_id": eng["Id"], "ModifiedAt": iso(eng["ModifiedAt"])}
