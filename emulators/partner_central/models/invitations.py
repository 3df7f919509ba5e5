"""Engagement invitations: create, accept, reject, list, 15-day expiry, and simulated AWS referrals.

Engagement invitations expire 15 days after they are sent (API reference ``EngagementInvitationSummary``,
developer guide "Engagement invitations"); expiry emits ``Engagement Invitation Expired``. Expiry runs on the
emulator clock: before every API request (``run_due_tasks``) and on ``POST /_emulator/clock``.

AWS's side (test controls): ``simulate_aws_referral`` sends this partner an ``OpportunityInvitation`` or a
``LeadInvitation``; ``withdraw_invitation`` takes a pending one back. Rules and assumptions:
docs/api-rules.md, "Partner Central referrals and engagement lifecycle".
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from emulators.partner_central.exceptions import (
    AccessDeniedException,
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from emulators.partner_central.models.base import AWS_ACCOUNT, deep_merge, iso, paginate
from emulators.partner_central.models.engagements import EngagementsMixin, check_against

INVITATION_TTL_MS = 15 * 24 * 3600 * 1000
REFERRAL_KINDS = {"opportunity": "OpportunityInvitation", "lead": "LeadInvitation"}
# Keys of simulate/aws-referral's "payload" that are about the engagement/invitation, not the payload type.
_ENVELOPE_KEYS = ("Title", "Description", "Message", "EnrichmentContext", "CustomerDetails", "LeadContact")


def _referral_defaults(kind: str, today: dt.date) -> dict[str, Any]:
    """The payload AWS sends when the test gives no overrides (valid against the model)."""
    if kind == "lead":
        return {
            "Customer": {
                "Industry": "Software and Internet",
                "CompanyName": "Example Lead Corp",
                "WebsiteUrl": "https://lead.example.com",
                "CountryCode": "US",
                "AwsMaturity": "Exploring",
                "MarketSegment": "Mid-Market",
            },
            "Interaction": {
                "SourceType": "Event",
                "SourceId": "evt-0001",
                "SourceName": "AWS Summit",
                "Usecase": "Generative AI",
                "ContactBusinessTitle": "CTO",
            },
        }
    return {
        "SenderContacts": [
            {
                "Email": "aws.seller@amazon.com",
                "FirstName": "Alex",
                "LastName": "Seller",
                "BusinessTitle": "AWS Sales",
            }
        ],
        "ReceiverResponsibilities": ["Services Partner"],
        "Customer": {
            "Industry": "Software and Internet",
            "CompanyName": "Example Corp",
            "WebsiteUrl": "https://example.com",
            "CountryCode": "US",
        },
        "Project": {
            "Title": "Cloud migration",
            "BusinessProblem": "Customer needs to migrate on-premises workloads.",
            "TargetCompletionDate": (today + dt.timedelta(days=90)).isoformat(),
            "ExpectedCustomerSpend": [
                {"Amount": "5000", "CurrencyCode": "USD", "Frequency": "Monthly", "TargetCompany": "AWS"}
            ],
        },
        "OpportunityType": "Net New Business",
    }


# What the AWS opportunity holds beyond the invitation: the developer guide ("Working with opportunities from
# AWS") lists the fields an invitation leaves out (street address, city, postal code, customer contacts, AWS
# account id); the opportunity created on acceptance "includes additional details required to identify the
# customer".
_DEFAULT_CUSTOMER_DETAILS: dict[str, Any] = {
    "Address": {
        "StreetAddress": "410 Terry Ave N",
        "City": "Seattle",
        "StateOrRegion": "WA",
        "PostalCode": "98109",
    },
    "Contacts": [
        {
            "Email": "jordan.buyer@example.com",
            "FirstName": "Jordan",
            "LastName": "Buyer",
            "BusinessTitle": "CIO",
        }
    ],
}


class InvitationsMixin(EngagementsMixin):
    """The engagement invitation operations, plus AWS sending this partner a referral (test control)."""

    def reset(self) -> None:
        """Reset the base state; the next expiry check scans every invitation."""
        with self.lock:
            super().reset()
            self._next_expiry_ms = 0

    def load(self, data: dict[str, Any]) -> None:
        """Restore state; the next expiry check scans every invitation."""
        with self.lock:
            super().load(data)
            self._next_expiry_ms = 0

    def new_invitation(
        self,
        catalog: str,
        eng: dict[str, Any],
        payload: dict[str, Any],
        sender: str,
        sender_name: str,
        receiver: str,
        participant: str,
        message: str,
    ) -> dict[str, Any]:
        """A new PENDING invitation into ``eng``, stored, with ``Engagement Invitation Created``."""
        iid = f"engi-{self.rand_id(13)}"
        now = self.now()
        inv = {
            "Id": iid,
            "Arn": f"arn:aws:partnercentral::{self.account_id}:{catalog}/engagement-invitation/{iid}",
            "Catalog": catalog,
            "EngagementId": eng["Id"],
            "EngagementTitle": eng.get("Title"),
            "EngagementDescription": eng.get("Description"),
            "Status": "PENDING",
            "InvitationDate": now,
            # Invitations expire 15 days after they are sent (API reference EngagementInvitationSummary).
            "ExpirationDate": now + INVITATION_TTL_MS,
            "SenderAwsAccountId": sender,
            "SenderCompanyName": sender_name,
            "Receiver": {"Account": {"AwsAccountId": receiver}},
            "ParticipantType": participant,
            "PayloadType": next(iter(payload)),
            "Payload": payload,
            "InvitationMessage": message,
            "ExistingMembers": [
                {"CompanyName": m["CompanyName"], "WebsiteUrl": m.get("WebsiteUrl")} for m in eng["Members"]
            ],
        }
        self.store(catalog)["invitations"][iid] = inv
        if self._next_expiry_ms:  # 0 means "scan everything next time" and must stay so
            self._next_expiry_ms = min(self._next_expiry_ms, inv["ExpirationDate"])
        self._invitation_event("Engagement Invitation Created", inv, created=True)
        return inv

    def _invitation_event(self, detail_type: str, inv: dict[str, Any], created: bool = False) -> None:
        # Detail shape: developer guide, "Engagement Invitation Created/Accepted/Rejected/Expired" samples;
        # participantType is mixed case in events (Sender/Receiver).
        detail = {
            "arn": inv["Arn"],
            "id": inv["Id"],
            "engagementId": inv["EngagementId"],
            "senderAccountId": inv["SenderAwsAccountId"],
            "receiverAccountId": inv["Receiver"]["Account"]["AwsAccountId"],
            "participantType": inv["ParticipantType"].capitalize(),
            "payloadType": inv["PayloadType"],
        }
        if created:
            detail["senderCompanyName"] = inv["SenderCompanyName"]
            detail["expirationDate"] = iso(inv["ExpirationDate"])
        self.emit(detail_type, {"catalog": inv["Catalog"], "engagementInvitation": detail}, [inv["Arn"]])

    def expire_invitations(self) -> None:
        """Mark PENDING invitations past their ExpirationDate as EXPIRED (and emit the event).

        Runs before every request, so it only scans when the earliest pending expiry has passed.
        """
        with self.lock:
            now = self.peek_now()
            if self._next_expiry_ms and now < self._next_expiry_ms:
                return
            upcoming = 0
            for store in self.stores.values():
                for inv in store["invitations"].values():
                    if inv["Status"] != "PENDING":
                        continue
                    if inv["ExpirationDate"] <= now:
                        inv["Status"] = "EXPIRED"
                        self._invitation_event("Engagement Invitation Expired", inv)
                    else:
                        upcoming = min(upcoming or inv["ExpirationDate"], inv["ExpirationDate"])
            # No pending invitation left: nothing to check until the next one is created (new_invitation).
            self._next_expiry_ms = upcoming or now + INVITATION_TTL_MS

    def invitation(self, catalog: str, identifier: str) -> dict[str, Any]:
        """Invitation by id or ARN, or ``ResourceNotFoundException``."""
        iid = identifier.rsplit("/", 1)[-1]
        inv = self.store(catalog)["invitations"].get(iid)
        if inv is None:
            raise ResourceNotFoundException(
                f"Engagement invitation {identifier} not found in catalog {catalog}"
            )
        return inv

    def create_engagement_invitation(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateEngagementInvitation: we invite another account into our engagement."""

        def action() -> dict[str, Any]:
            with self.lock:
                eng = self.engagement(params["Catalog"], params["EngagementIdentifier"])
                invitation = params["Invitation"]
                if not invitation["Payload"]:
                    raise ValidationException(
                        "Invitation.Payload must set one member",
                        [
                            {
                                "FieldName": "Invitation.Payload",
                                "Message": "Payload is empty",
                                "Code": "REQUIRED_FIELD_MISSING",
                            }
                        ],
                    )
                receiver = (invitation.get("Receiver") or {}).get("Account", {}).get("AwsAccountId")
                if not receiver:
                    raise ValidationException(
                        "Invitation.Receiver.Account is required",
                        [
                            {
                                "FieldName": "Invitation.Receiver",
                                "Message": "Receiver is required",
                                "Code": "REQUIRED_FIELD_MISSING",
                            }
                        ],
                    )
                inv = self.new_invitation(
                    params["Catalog"],
                    eng,
                    invitation["Payload"],
                    self.account_id,
                    "Example Partner",
                    receiver,
                    "SENDER",
                    invitation["Message"],
                )
                return {"Id": inv["Id"], "Arn": inv["Arn"]}

        return self.idempotent(params["Catalog"], "CreateEngagementInvitation", params, action)

    def _receivable(self, inv: dict[str, Any]) -> None:
        if inv["ParticipantType"] != "RECEIVER":
            raise AccessDeniedException(
                f"Invitation {inv['Id']} was sent by this account; only the receiver responds"
            )
        if inv["Status"] != "PENDING":
            raise ConflictException(f"Invitation {inv['Id']} is {inv['Status']}, not PENDING")

    def accept_invitation(self, catalog: str, identifier: str) -> dict[str, Any]:
        """AcceptEngagementInvitation: join the engagement."""
        with self.lock:
            self.expire_invitations()
            inv = self.invitation(catalog, identifier)
            self._receivable(inv)
            inv["Status"] = "ACCEPTED"
            eng = self.engagement(catalog, inv["EngagementId"])
            if not self.is_member(eng):
                eng["Members"].append(self.partner_member())
                self.member_added_event(eng, self.partner_member())
            eng["ModifiedAt"], eng["ModifiedBy"] = self.now(), self.account_id
            self._invitation_event("Engagement Invitation Accepted", inv)
            return inv

    def withdraw_invitation(self, catalog: str, identifier: str, status: str = "EXPIRED") -> dict[str, Any]:
        """AWS takes back a PENDING invitation it sent us (test control ``simulate/withdraw-invitation``).

        ``InvitationStatus`` has no withdrawn value. Assumption: a withdrawn invitation ends ``EXPIRED`` (the
        status for "can no longer be accepted") with ``ExpirationDate`` set to the withdrawal time and
        ``Engagement Invitation Expired`` emitted; ``status="REJECTED"`` plays the alternative (no
        ``RejectionReason``, ``Engagement Invitation Rejected``). Only a PENDING invitation this partner
        received can be withdrawn (else ``ConflictException``); an accept task still running for it then
        fails with ``InvitationValidationFailed``.
        """
        if status not in ("EXPIRED", "REJECTED"):
            raise ValueError("status must be EXPIRED (default) or REJECTED")
        with self.lock:
            self.expire_invitations()
            inv = self.invitation(catalog, identifier)
            if inv["ParticipantType"] != "RECEIVER" or inv["Status"] != "PENDING":
                raise ConflictException(
                    f"Invitation {inv['Id']} is {inv['Status']} ({inv['ParticipantType']}); only a PENDING "
                    "invitation this partner received can be withdrawn"
                )
            inv["Status"] = status
            if status == "EXPIRED":
                inv["ExpirationDate"] = self.now()
                self._invitation_event("Engagement Invitation Expired", inv)
            else:
                self._invitation_event("Engagement Invitation Rejected", inv)
            return {
                "invitation_id": inv["Id"],
                "status": status,
                "ExpirationDate": iso(inv["ExpirationDate"]),
            }

    def reject_invitation(self, catalog: str, identifier: str, reason: str | None) -> None:
        """RejectEngagementInvitation."""
        with self.lock:
            self.expire_invitations()
            inv = self.invitation(catalog, identifier)
            self._receivable(inv)
            inv["Status"] = "REJECTED"
            if reason:
                inv["RejectionReason"] = reason
            self._invitation_event("Engagement Invitation Rejected", inv)

    def list_invitations(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListEngagementInvitations for one participant side."""
        with self.lock:
            self.expire_invitations()
            items = []
            for inv in self.store(params["Catalog"])["invitations"].values():
                if inv["ParticipantType"] != params["ParticipantType"]:
                    continue
                if params.get("PayloadType") and inv["PayloadType"] not in params["PayloadType"]:
                    continue
                if params.get("Status") and inv["Status"] not in params["Status"]:
                    continue
                if params.get("EngagementIdentifier") and inv["EngagementId"] not in {
                    i.rsplit("/", 1)[-1] for i in params["EngagementIdentifier"]
                }:
                    continue
                if (
                    params.get("SenderAwsAccountId")
                    and inv["SenderAwsAccountId"] not in params["SenderAwsAccountId"]
                ):
                    continue
                items.append(inv)
            order = (params.get("Sort") or {}).get("SortOrder", "DESCENDING")
            items.sort(key=lambda i: (i["InvitationDate"], i["Id"]), reverse=order == "DESCENDING")
            page, nxt = paginate(items, params, 20)
            return {"EngagementInvitationSummaries": page, "NextToken": nxt}

    def simulate_aws_referral(
        self, catalog: str, payload: dict[str, Any] | None = None, kind: str = "opportunity"
    ) -> dict[str, Any]:
        """AWS sends this partner a referral: a PENDING ``OpportunityInvitation`` or ``LeadInvitation``.

        AWS creates an engagement (``CreatedBy`` ``aws``, AWS its only member) and an invitation addressed to
        this partner (``ParticipantType`` ``RECEIVER``), emitting ``Engagement Invitation Created``.
        ``payload`` overrides are deep-merged onto the defaults (lists replace): members of the payload type
        (``Customer``, ``Project``, ``SenderContacts``, ``ReceiverResponsibilities``, ``OpportunityType``
        for an opportunity; ``Customer``, ``Interaction`` for a lead), plus ``Title``, ``Description`` (the
        engagement), ``Message`` (the invitation), ``EnrichmentContext`` (GetEngagementInvitation),
        ``CustomerDetails`` (opportunity: address/contacts/AWS account id the invitation omits but the
        accepted opportunity gets) and ``LeadContact`` (lead: the contact in the engagement's Lead context).
        The result is checked against the model (``ValueError``/``ValidationException`` -> HTTP 400).
        """
        if kind not in REFERRAL_KINDS:
            raise ValueError(f"kind must be one of {sorted(REFERRAL_KINDS)}")
        payload_type = REFERRAL_KINDS[kind]
        p = copy.deepcopy(payload or {})
        envelope = {k: p.pop(k) for k in _ENVELOPE_KEYS if k in p}
        body = deep_merge(_referral_defaults(kind, dt.date.today()), p)
        check_against(payload_type + "Payload", body, f"payload.{payload_type}")
        with self.lock:
            now = self.now()
            if kind == "lead":
                customer = body["Customer"]
                contact = deep_merge(
                    {
                        "BusinessTitle": body["Interaction"]["ContactBusinessTitle"] or "Unknown",
                        "Email": "casey.lead@example.com",
                        "FirstName": "Casey",
                        "LastName": "Lead",
                    },
                    envelope.get("LeadContact") or {},
                )
                interaction = {k: v for k, v in body["Interaction"].items() if k != "ContactBusinessTitle"}
                interaction.update(
                    {"InteractionDate": now, "CustomerAction": "Requested a follow-up", "Contact": contact}
                )
                lead_customer = {k: v for k, v in customer.items() if k != "CountryCode"}
                if customer.get("CountryCode"):
                    lead_customer["Address"] = {"CountryCode": customer["CountryCode"]}
                context = {
                    "Type": "Lead",
                    "Payload": {"Lead": {"Customer": lead_customer, "Interactions": [interaction]}},
                }
                title = envelope.get("Title", f"{customer['CompanyName']} lead")
                enrichment = envelope.get(
                    "EnrichmentContext", {"LeadInsights": {"LeadReadinessScore": "High"}}
                )
            else:
                context = {
                    "Type": "CustomerProject",
                    "Payload": {
                        "CustomerProject": {
                            "Customer": copy.deepcopy(body["Customer"]),
                            "Project": {
                                k: body["Project"][k]
                                for k in ("Title", "BusinessProblem", "TargetCompletionDate")
                            },
                        }
                    },
                }
                title = envelope.get("Title", body["Project"]["Title"])
                enrichment = envelope.get("EnrichmentContext")
            check_against("EngagementContextDetails", context, "context")
            if enrichment is not None:
                check_against("EnrichmentContext", enrichment, "payload.EnrichmentContext")
            details = deep_merge(_DEFAULT_CUSTOMER_DETAILS, envelope.get("CustomerDetails") or {})
            if kind == "opportunity":
                unknown = sorted(set(details) - {"Address", "Contacts", "AwsAccountId"})
                if unknown:
                    raise ValueError(
                        f"CustomerDetails accepts Address, Contacts, AwsAccountId, not {unknown}"
                    )
                check_against("Address", details["Address"], "payload.CustomerDetails.Address")
                check_against("CustomerContactsList", details["Contacts"], "payload.CustomerDetails.Contacts")
            eng = self.new_engagement(
                catalog,
                title=title[:40],
                created_by=AWS_ACCOUNT,
                description=envelope.get("Description", "AWS referral"),
                contexts=[context],
            )
            eng["Members"].append(
                {
                    "CompanyName": "Amazon Web Services",
                    "WebsiteUrl": "https://aws.amazon.com",
                    "AccountId": AWS_ACCOUNT,
                }
            )
            inv = self.new_invitation(
                catalog,
                eng,
                {payload_type: body},
                sender=AWS_ACCOUNT,
                sender_name="Amazon Web Services",
                receiver=self.account_id,
                participant="RECEIVER",
                message=envelope.get("Message", "AWS would like to co-sell this opportunity with you"),
            )
            if enrichment is not None:
                inv["EnrichmentContext"] = copy.deepcopy(enrichment)
            if kind == "opportunity":
                # Held back until acceptance (see _DEFAULT_CUSTOMER_DETAILS); not part of any API answer.
                inv["_customer_details"] = details
            return {
                "engagement_id": eng["Id"],
                "invitation_id": inv["Id"],
                "invitation_arn": inv["Arn"],
                "payload_type": payload_type,
                "invitation_date": iso(now),
                "expiration_date": iso(inv["ExpirationDate"]),
            }
