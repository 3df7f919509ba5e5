"""Engagement invitations: create, accept, reject, list, 15-day expiry, and simulated AWS referrals.

Engagement invitations expire 15 days after they are sent (API reference ``EngagementInvitationSummary``,
developer guide "Engagement invitations"); expiry emits ``Engagement Invitation Expired``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from emulators.partner_central.exceptions import (
    AccessDeniedException,
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from emulators.partner_central.models.base import AWS_ACCOUNT, iso, paginate
from emulators.partner_central.models.engagements import EngagementsMixin

INVITATION_TTL_MS = 15 * 24 * 3600 * 1000


class InvitationsMixin(EngagementsMixin):
    """The engagement invitation operations, plus AWS sending this partner a referral (test control)."""

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
        """Mark PENDING invitations past their ExpirationDate as EXPIRED (and emit the event)."""
        with self.lock:
            now = self.peek_now()
            for store in self.stores.values():
                for inv in store["invitations"].values():
                    if inv["Status"] == "PENDING" and inv["ExpirationDate"] <= now:
                        inv["Status"] = "EXPIRED"
                        self._invitation_event("Engagement Invitation Expired", inv)

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
            if not any(m["AccountId"] == self.account_id for m in eng["Members"]):
                eng["Members"].append(self.partner_member())
                self.emit(
                    "Engagement Member Added",
                    {
                        "catalog": catalog,
                        "engagement": {"id": eng["Id"]},
                        "engagementMember": {"accountId": self.account_id, "companyName": "Example Partner"},
                    },
                    [eng["Arn"]],
                )
            eng["ModifiedAt"] = self.now()
            self._invitation_event("Engagement Invitation Accepted", inv)
            return inv

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

    def simulate_aws_referral(self, catalog: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """AWS sends this partner an opportunity invitation (an AWS referral)."""
        with self.lock:
            store = self.store(catalog)
            p = payload or {}
            customer = p.get("Customer") or {
                "Industry": "Software and Internet",
                "CompanyName": "Example Corp",
                "WebsiteUrl": "https://example.com",
                "CountryCode": "US",
            }
            project = p.get("Project") or {
                "Title": "Cloud migration",
                "BusinessProblem": "Customer needs to migrate on-premises workloads.",
                "TargetCompletionDate": (dt.date.today() + dt.timedelta(days=90)).isoformat(),
                "ExpectedCustomerSpend": [
                    {"Amount": "5000", "CurrencyCode": "USD", "Frequency": "Monthly", "TargetCompany": "AWS"}
                ],
            }
            now = self.now()
            eng = self.new_engagement(
                catalog,
                title=p.get("Title", project["Title"][:40]),
                created_by=AWS_ACCOUNT,
                description=p.get("Description", "AWS referral"),
            )
            eng["Members"].append(
                {
                    "CompanyName": "Amazon Web Services",
                    "WebsiteUrl": "https://aws.amazon.com",
                    "AccountId": AWS_ACCOUNT,
                }
            )
            inv_payload = {
                "OpportunityInvitation": {
                    "SenderContacts": p.get("SenderContacts")
                    or [
                        {
                            "Email": "aws.seller@amazon.com",
                            "FirstName": "Alex",
                            "LastName": "Seller",
                            "BusinessTitle": "AWS Sales",
                        }
                    ],
                    "ReceiverResponsibilities": p.get("ReceiverResponsibilities") or ["Services Partner"],
                    "Customer": customer,
                    "Project": project,
                }
            }
            inv = self.new_invitation(
                catalog,
                eng,
                inv_payload,
                sender=AWS_ACCOUNT,
                sender_name="Amazon Web Services",
                receiver=self.account_id,
                participant="RECEIVER",
                message=p.get("Message", "AWS would like to co-sell this opportunity with you"),
            )
            store["engagements"][eng["Id"]] = eng
            return {
                "engagement_id": eng["Id"],
                "invitation_id": inv["Id"],
                "invitation_arn": inv["Arn"],
                "invitation_date": iso(now),
            }
