"""Opportunities: create, update, get, list, submit, assign, associate, AWS summary, AWS-side simulation.

The rules' data and the :class:`OpportunityRecord` type live in ``opportunity_rules.py``; stored records stay
JSON-shaped dicts (what the API returns and ``dump`` persists), wrapped in an ``OpportunityRecord`` here.
"""

from __future__ import annotations

import bisect
import copy
import json
from typing import Any

from emulators.partner_central import shapes
from emulators.partner_central.exceptions import (
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
    business_error,
)
from emulators.partner_central.models.base import (
    BackendBase,
    changed_paths,
    decode_token,
    deep_merge,
    digest,
    encode_token,
    get_path,
    iso,
    not_permitted,
    parse_ts,
)
from emulators.partner_central.models.engagements import check_against
from emulators.partner_central.models.opportunity_rules import (
    ACTION_REQUIRED_EDITABLE,
    APPROVED_LOCKED,
    MAX_SOLUTIONS,
    PARTNER_FIELDS,
    READ_ONLY_STATUSES,
    REVIEW_OWNED,
    STAGES_NEEDING_OFFERING,
    OpportunityRecord,
    has_offering,
    require_offering_for_stage,
    require_solutions,
    require_submission_fields,
)


class OpportunitiesMixin(BackendBase):
    """The opportunity operations of ``partnercentral-selling``."""

    # -------------------------------------------------------------------------------- opportunities
    def opportunity(self, catalog: str, identifier: str) -> dict[str, Any]:
        """The stored opportunity or ``ResourceNotFoundException``."""
        opp = self.store(catalog)["opportunities"].get(identifier)
        if opp is None:
            raise ResourceNotFoundException(f"Opportunity {identifier} not found in catalog {catalog}")
        return opp

    def opportunity_record(self, catalog: str, identifier: str) -> OpportunityRecord:
        """The stored opportunity as an :class:`OpportunityRecord`, or ``ResourceNotFoundException``."""
        return OpportunityRecord.of(self.opportunity(catalog, identifier))

    def new_opportunity_id(self, catalog: str) -> str:
        """The next opportunity id of the catalog (``O`` and a counter)."""
        store = self.store(catalog)
        store["next_opp"] += 1
        return f"O{store['next_opp']}"

    def create_opportunity(self, params: dict[str, Any], *, origin_event: bool = True) -> dict[str, Any]:
        """CreateOpportunity: new record in ``Pending Submission``."""
        catalog = params["Catalog"]
        store = self.store(catalog)
        if params.get("Origin") == "AWS Referral" and catalog != "Sandbox":
            # API reference CreateOpportunity, Origin: AWS Referral is for Sandbox testing only.
            raise business_error(
                "Origin", "Origin 'AWS Referral' is only supported in the Sandbox catalog", "INVALID_VALUE"
            )
        # A new record has no associations yet, so Committed/Launched cannot be created directly.
        require_offering_for_stage(params, {})

        def action() -> dict[str, Any]:
            with self.lock:
                oid = self.new_opportunity_id(catalog)
                now = self.now()
                record = {k: copy.deepcopy(params[k]) for k in PARTNER_FIELDS if params.get(k) is not None}
                lifecycle = {k: v for k, v in record.get("LifeCycle", {}).items() if k not in REVIEW_OWNED}
                if params.get("Origin") != "AWS Referral":
                    lifecycle["ReviewStatus"] = "Pending Submission"
                if lifecycle.get("NextSteps"):
                    lifecycle["NextStepsHistory"] = [{"Value": lifecycle["NextSteps"], "Time": now}]
                record["LifeCycle"] = lifecycle
                record.update(
                    {
                        "Catalog": catalog,
                        "Id": oid,
                        "Arn": self.make_arn(catalog, "opportunity", oid),
                        "CreatedDate": now,
                        "LastModifiedDate": now,
                        "RelatedEntityIdentifiers": {},
                        "Origin": params.get("Origin", "Partner Referral"),
                    }
                )
                if params.get("OpportunityTeam"):
                    record["OpportunityTeam"] = copy.deepcopy(params["OpportunityTeam"])
                store["opportunities"][oid] = record
                if params.get("Tags"):
                    self.tags[record["Arn"]] = {t["Key"]: t["Value"] for t in params["Tags"]}
                self.touch()
                if origin_event:
                    self.opportunity_event("Opportunity Created", record)
                return {
                    "Id": oid,
                    "PartnerOpportunityIdentifier": record.get("PartnerOpportunityIdentifier"),
                    "LastModifiedDate": now,
                }

        return self.idempotent(catalog, "CreateOpportunity", params, action)

    def opportunity_event(self, detail_type: str, opp: dict[str, Any]) -> None:
        """Emit an opportunity event (``Opportunity Created``/``Opportunity Updated``)."""
        self.emit(
            detail_type,
            {"schemaVersion": "1", "catalog": opp["Catalog"], "opportunity": {"identifier": opp["Id"]}},
            [opp["Arn"]],
        )

    def _changed(self, rec: OpportunityRecord) -> None:
        """After any change: new LastModifiedDate, ``Opportunity Updated``, ``on_opportunity_changed``."""
        rec.last_modified = self.now()
        self.touch()
        self.opportunity_event("Opportunity Updated", rec.data)
        self.on_opportunity_changed(rec.data)

    def update_opportunity(self, params: dict[str, Any]) -> dict[str, Any]:
        """UpdateOpportunity: whole-record replace, optimistic lock, review-status rules."""
        with self.lock:
            rec = self.opportunity_record(params["Catalog"], params["Identifier"])
            opp, status = rec.data, rec.review_status
            if status in READ_ONLY_STATUSES or status == "Rejected":
                raise business_error(
                    "LifeCycle.ReviewStatus",
                    f"Opportunity {rec.id} cannot be updated while its ReviewStatus is {status}",
                    "INVALID_RESOURCE_STATE",
                )
            if parse_ts(params["LastModifiedDate"]) != rec.last_modified:
                raise ConflictException(
                    f"Opportunity {rec.id} was modified at {iso(rec.last_modified)}; "
                    "fetch the latest version and retry"
                )
            new = {k: copy.deepcopy(params[k]) for k in PARTNER_FIELDS if params.get(k) is not None}
            new_lc = {k: v for k, v in new.get("LifeCycle", {}).items() if k not in REVIEW_OWNED}
            old_partner = {k: opp.get(k) for k in PARTNER_FIELDS}
            old_partner["LifeCycle"] = {
                k: v for k, v in (opp.get("LifeCycle") or {}).items() if k not in REVIEW_OWNED
            }
            new["LifeCycle"] = new_lc
            diff = changed_paths(old_partner, new)
            if status == "Action Required":
                denied = sorted(
                    p
                    for p in diff
                    if not any(p == a or p.startswith(a + ".") for a in ACTION_REQUIRED_EDITABLE)
                )
                if denied:
                    raise not_permitted(
                        "Only a limited set of fields can be updated while ReviewStatus is Action Required",
                        denied,
                        "Field cannot be changed in Action Required",
                    )
            if status == "Approved":
                locked = sorted(p for p in diff if p in APPROVED_LOCKED)
                if locked:
                    raise not_permitted(
                        "Fields cannot be changed after approval", locked, "Field is locked after approval"
                    )
            if status == "Action Required":
                require_submission_fields(new)
            require_offering_for_stage(new, rec.related)
            # Whole-record replace: omitted partner fields become null.
            lifecycle = opp.get("LifeCycle") or {}
            for k in REVIEW_OWNED:
                if k in lifecycle:
                    new_lc[k] = lifecycle[k]
            if new_lc.get("NextSteps") and new_lc.get("NextSteps") != lifecycle.get("NextSteps"):
                history = [
                    *lifecycle.get("NextStepsHistory", []),
                    {"Value": new_lc["NextSteps"], "Time": self.peek_now()},
                ]
                new_lc["NextStepsHistory"] = history[-50:]
            if status == "Action Required":
                # "After updates, the opportunity re-enters the validation phase" (LifeCycle.ReviewStatus).
                new_lc["ReviewStatus"] = "Submitted"
            for k in PARTNER_FIELDS:
                opp.pop(k, None)
            opp.update(new)
            self._changed(rec)
            return {"Id": rec.id, "LastModifiedDate": rec.last_modified}

    def submit_record(self, rec: OpportunityRecord, involvement: str, visibility: str | None) -> None:
        """Pending Submission -> Submitted after business validation; AWS's summary appears."""
        status = rec.review_status
        if status != "Pending Submission":
            raise business_error(
                "LifeCycle.ReviewStatus",
                f"Opportunity {rec.id} can only be submitted from Pending Submission, not {status}",
                "INVALID_RESOURCE_STATE",
            )
        require_submission_fields(rec.data)
        require_solutions(rec.data)
        rec.data["LifeCycle"]["ReviewStatus"] = "Submitted"
        self.store(rec.catalog)["aws_summaries"][rec.id] = {
            "RelatedOpportunityId": rec.id,
            "Origin": rec.data.get("Origin", "Partner Referral"),
            "InvolvementType": involvement,
            "Visibility": visibility or "Full",
            "LifeCycle": {"Stage": "Not Started"},
        }
        self._changed(rec)

    def submit_opportunity(self, params: dict[str, Any]) -> None:
        """SubmitOpportunity: Pending Submission -> Submitted, after business validation."""
        with self.lock:
            rec = self.opportunity_record(params["Catalog"], params["Identifier"])
            self.submit_record(rec, params["InvolvementType"], params.get("Visibility"))

    def assign_opportunity(self, params: dict[str, Any]) -> None:
        """AssignOpportunity: the assignee becomes the opportunity owner (OpportunityTeam)."""
        with self.lock:
            rec = self.opportunity_record(params["Catalog"], params["Identifier"])
            if rec.review_status == "Rejected":
                raise business_error(
                    "LifeCycle.ReviewStatus", "Rejected opportunities are read-only", "INVALID_RESOURCE_STATE"
                )
            a = params["Assignee"]
            member = {
                "Email": a["Email"],
                "FirstName": a["FirstName"],
                "LastName": a["LastName"],
                "BusinessTitle": a["BusinessTitle"],
            }
            if a.get("Phone"):
                member["Phone"] = a["Phone"]
            rec.data["OpportunityTeam"] = [member]
            self._changed(rec)

    def associate(self, params: dict[str, Any], associate: bool) -> None:
        """Associate/DisassociateOpportunity with a solution, AWS product or Marketplace entity.

        A solution must exist in the catalog (``ResourceNotFoundException``, like every unknown id here) and
        an opportunity holds at most 10 solutions; the last solution/product/offer of a ``Committed`` or
        ``Launched`` opportunity cannot be removed. A refused call leaves the record unchanged.
        """
        with self.lock:
            catalog = params["Catalog"]
            rec = self.opportunity_record(catalog, params["OpportunityIdentifier"])
            kind, ident = params["RelatedEntityType"], params["RelatedEntityIdentifier"]
            related = rec.related
            current = list(related.get(kind) or [])
            if associate:
                pattern = (
                    shapes.shape("RelatedEntityIdentifiers").members[kind].member.metadata.get("pattern")
                )
                if pattern and not shapes.regex(pattern).fullmatch(ident):
                    raise ValidationException(
                        f"RelatedEntityIdentifier is not a valid {kind} identifier",
                        [
                            {
                                "FieldName": "RelatedEntityIdentifier",
                                "Message": f"Must match {pattern}",
                                "Code": "INVALID_STRING_FORMAT",
                            }
                        ],
                    )
                if kind == "Solutions" and ident not in self.store(catalog)["solutions"]:
                    raise ResourceNotFoundException(f"Solution {ident} not found in catalog {catalog}")
                if kind == "Solutions" and ident not in current and len(current) >= MAX_SOLUTIONS:
                    raise business_error(
                        "RelatedEntityIdentifier",
                        f"Opportunity {rec.id} already has {len(current)} associated solutions; "
                        f"at most {MAX_SOLUTIONS} are allowed",
                        "TOO_MANY_VALUES",
                    )
                if ident not in current:
                    current.append(ident)
            else:
                if ident not in current:
                    raise ResourceNotFoundException(f"{kind} {ident} is not associated with {rec.id}")
                current.remove(ident)
                stage = rec.stage
                if stage in STAGES_NEEDING_OFFERING and not has_offering({**related, kind: current}):
                    raise business_error(
                        "RelatedEntityIdentifier",
                        f"{ident} is the last solution, AWS product or AWS Marketplace offer of "
                        f"{rec.id}, which LifeCycle.Stage {stage} requires; associate another first",
                        "ACTION_NOT_PERMITTED",
                    )
            rec.data.setdefault("RelatedEntityIdentifiers", {})[kind] = current
            self._changed(rec)

    def aws_summary(self, catalog: str, identifier: str) -> dict[str, Any]:
        """GetAwsOpportunitySummary: AWS's view, which exists once the opportunity reached AWS."""
        with self.lock:
            opp = self.opportunity(catalog, identifier)
            summary = self.store(catalog)["aws_summaries"].get(identifier)
            if summary is None:
                raise ResourceNotFoundException(
                    f"No AWS opportunity summary for {identifier}: not submitted to AWS"
                )
            out = copy.deepcopy(summary)
            out["Catalog"] = catalog
            out.setdefault("Customer", {"Contacts": copy.deepcopy(get_path(opp, "Customer.Contacts") or [])})
            out.setdefault(
                "Project",
                {
                    "ExpectedCustomerSpend": copy.deepcopy(
                        get_path(opp, "Project.ExpectedCustomerSpend") or []
                    )
                },
            )
            return out

    def list_opportunities(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListOpportunities: filters, sort and cursor pagination.

        Default sort is LastModifiedDate DESCENDING (API reference ``OpportunitySort``); pages are O(page)
        after one sort per data version.
        """
        with self.lock:
            catalog = params["Catalog"]
            store = self.store(catalog)
            sort = params.get("Sort") or {"SortBy": "LastModifiedDate", "SortOrder": "DESCENDING"}
            filters = {
                k: params.get(k)
                for k in (
                    "Identifier",
                    "LifeCycleStage",
                    "LifeCycleReviewStatus",
                    "CustomerCompanyName",
                    "LastModifiedDate",
                    "CreatedDate",
                    "TargetCloseDate",
                )
            }
            fkey = json.dumps(filters, sort_keys=True, default=str)
            cache_key = (catalog, fkey, sort["SortBy"])
            cached = self.list_cache.get(cache_key)
            if cached is None or cached[0] != self.data_version:
                keyed = [
                    (self._sort_key(o, sort["SortBy"]), o["Id"])
                    for o in store["opportunities"].values()
                    if self._matches(o, filters)
                ]
                keyed.sort()
                cached = (self.data_version, keyed)
                if len(self.list_cache) > 64:
                    self.list_cache.clear()
                self.list_cache[cache_key] = cached
            keyed = cached[1]
            size = params.get("MaxResults") or 20
            descending = sort["SortOrder"] == "DESCENDING"
            if params.get("NextToken"):
                tok = decode_token(params["NextToken"])
                if tok.get("q") != digest({"f": fkey, "s": sort}):
                    raise ValidationException(
                        "NextToken does not match the request",
                        [{"FieldName": "NextToken", "Message": "Invalid NextToken", "Code": "INVALID_VALUE"}],
                    )
                cursor = (tok["k"], tok["i"])
                pos = bisect.bisect_left(keyed, cursor) if descending else bisect.bisect_right(keyed, cursor)
            else:
                pos = len(keyed) if descending else 0
            if descending:
                page = keyed[max(0, pos - size) : pos][::-1]
                more = pos - size > 0
            else:
                page = keyed[pos : pos + size]
                more = pos + size < len(keyed)
            items = [store["opportunities"][i] for _, i in page]
            out: dict[str, Any] = {"OpportunitySummaries": items}
            if more and page:
                out["NextToken"] = encode_token(
                    {"k": page[-1][0], "i": page[-1][1], "q": digest({"f": fkey, "s": sort})}
                )
            return out

    @staticmethod
    def _sort_key(opp: dict[str, Any], by: str) -> Any:
        if by == "LastModifiedDate":
            return opp["LastModifiedDate"]
        if by == "CreatedDate":
            return opp["CreatedDate"]
        if by == "Identifier":
            return int(opp["Id"][1:])
        if by == "CustomerCompanyName":
            return get_path(opp, "Customer.Account.CompanyName") or ""
        return get_path(opp, "LifeCycle.TargetCloseDate") or ""

    @staticmethod
    def _matches(opp: dict[str, Any], f: dict[str, Any]) -> bool:
        if f["Identifier"] and opp["Id"] not in f["Identifier"]:
            return False
        if f["LifeCycleStage"] and get_path(opp, "LifeCycle.Stage") not in f["LifeCycleStage"]:
            return False
        if (
            f["LifeCycleReviewStatus"]
            and get_path(opp, "LifeCycle.ReviewStatus") not in f["LifeCycleReviewStatus"]
        ):
            return False
        if (
            f["CustomerCompanyName"]
            and get_path(opp, "Customer.Account.CompanyName") not in f["CustomerCompanyName"]
        ):
            return False
        for name, field in (("LastModifiedDate", "LastModifiedDate"), ("CreatedDate", "CreatedDate")):
            rng = f[name] or {}
            after, before = rng.get(f"After{name}"), rng.get(f"Before{name}")
            # AfterLastModifiedDate is inclusive: "AWS only returns opportunities created or updated on or
            # after that date and time" (API reference ListOpportunities).
            if after is not None and opp[field] < parse_ts(after):
                return False
            if before is not None and opp[field] > parse_ts(before):
                return False
        tcd = f["TargetCloseDate"] or {}
        close = get_path(opp, "LifeCycle.TargetCloseDate")
        if tcd.get("AfterTargetCloseDate") and (not close or close < tcd["AfterTargetCloseDate"]):
            return False
        return not (tcd.get("BeforeTargetCloseDate") and (not close or close > tcd["BeforeTargetCloseDate"]))

    # ---------------------------------------------------------------------------- AWS-side simulation
    def simulate_review(
        self,
        catalog: str,
        identifier: str,
        review_status: str,
        comments: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """An AWS reviewer moves a submitted opportunity to In review/Approved/Action Required/Rejected."""
        allowed = ("In review", "Approved", "Action Required", "Rejected")
        if review_status not in allowed:
            raise ValueError(f"review_status must be one of {allowed}")
        with self.lock:
            rec = self.opportunity_record(catalog, identifier)
            current = rec.review_status
            if current not in READ_ONLY_STATUSES:
                raise ConflictException(
                    f"Opportunity {identifier} is {current}; only submitted ones are reviewed"
                )
            lc = rec.data.setdefault("LifeCycle", {})
            lc["ReviewStatus"] = review_status
            for key, value in (("ReviewComments", comments), ("ReviewStatusReason", reason)):
                if value:
                    lc[key] = value
                else:
                    lc.pop(key, None)
            summary = self.store(catalog)["aws_summaries"].setdefault(
                identifier, {"RelatedOpportunityId": identifier}
            )
            if review_status == "Approved":
                summary["LifeCycle"] = {"Stage": "Prospect", "TargetCloseDate": lc.get("TargetCloseDate")}
                summary["OpportunityTeam"] = [
                    {
                        "Email": "aws.seller@amazon.com",
                        "FirstName": "Alex",
                        "LastName": "Seller",
                        "BusinessTitle": "AWSSalesRep",
                    }
                ]
            # Before Opportunity Updated: the developer guide's scenario rows list invitation events first.
            self.on_aws_review(rec.data, review_status)
            self._changed(rec)
            return {"identifier": identifier, "LastModifiedDate": iso(rec.last_modified)}

    def simulate_aws_update(self, catalog: str, identifier: str, changes: dict[str, Any]) -> dict[str, Any]:
        """An AWS-side edit (console or AWS seller): deep-merged, validated against the model."""
        with self.lock:
            rec = self.opportunity_record(catalog, identifier)
            opp = rec.data
            aws_part = changes.pop("AwsOpportunitySummary", None)
            merged = deep_merge(opp, changes)
            errors: list[dict[str, str]] = []
            out_shape = shapes.output_shape("GetOpportunity")
            shapes.validate(out_shape, shapes.project(out_shape, merged), "", errors, output=True)
            if errors:
                raise ValidationException("AWS-side update is not a valid opportunity", errors)
            opp.clear()
            opp.update(merged)
            if aws_part:
                summaries = self.store(catalog)["aws_summaries"]
                summaries[identifier] = deep_merge(
                    summaries.get(identifier, {"RelatedOpportunityId": identifier}), aws_part
                )
            self._changed(rec)
            return {"identifier": identifier, "LastModifiedDate": iso(rec.last_modified)}

    def simulate_aws_summary(self, catalog: str, identifier: str, changes: dict[str, Any]) -> dict[str, Any]:
        """AWS changes its side of the opportunity (test control ``simulate/aws-summary``).

        ``changes`` holds members of ``GetAwsOpportunitySummary`` (``InvolvementType``,
        ``InvolvementTypeChangeReason``, ``Visibility``, ``LifeCycle``, ``OpportunityTeam``, ``Insights``,
        ``RelatedEntityIds``, ``Customer``, ``Project``, ``CosellMotion``, ``CosellMotionReason``,
        ``SoftwareRevenue``, ``Origin``), deep-merged into the stored summary (lists replace); a new
        ``LifeCycle.NextSteps`` is appended to ``LifeCycle.NextStepsHistory`` (at most 50) unless the
        history is given. The result must be valid against the output shape. The developer guide says
        ``Opportunity Updated`` is "triggered when an opportunity (Opportunity or its corresponding AWS
        Opportunity Summary) is updated", so it is emitted. Assumption: the partner opportunity's
        ``LastModifiedDate`` does not move (the AWS summary is AWS's record) unless ``touch_opportunity``
        is true.
        """
        changes = dict(changes)
        touch = bool(changes.pop("touch_opportunity", False))
        for key in ("RelatedOpportunityId", "Catalog"):
            if key in changes:
                raise ValueError(f"{key} is not something AWS changes")
        with self.lock:
            rec = self.opportunity_record(catalog, identifier)
            summaries = self.store(catalog)["aws_summaries"]
            if identifier not in summaries:
                raise ResourceNotFoundException(
                    f"No AWS opportunity summary for {identifier}: not submitted to AWS"
                )
            old = summaries[identifier]
            merged = deep_merge(old, changes)
            next_steps = get_path(changes, "LifeCycle.NextSteps")
            if (
                next_steps
                and next_steps != get_path(old, "LifeCycle.NextSteps")
                and "NextStepsHistory" not in (changes.get("LifeCycle") or {})
            ):
                history = [
                    *(get_path(old, "LifeCycle.NextStepsHistory") or []),
                    {"Value": next_steps, "Time": self.peek_now()},
                ]
                merged["LifeCycle"]["NextStepsHistory"] = history[-50:]
            check_against(
                "GetAwsOpportunitySummaryResponse", {**merged, "Catalog": catalog}, "AwsOpportunitySummary"
            )
            summaries[identifier] = merged
            if touch:
                self._changed(rec)
            else:
                self.touch()  # search results may change; the partner record does not
                self.opportunity_event("Opportunity Updated", rec.data)
            return {
                "identifier": identifier,
                "LastModifiedDate": iso(rec.last_modified),
                "AwsOpportunitySummary": json.loads(
                    json.dumps(shapes.project(shapes.output_shape("GetAwsOpportunitySummary"), merged))
                ),
            }
