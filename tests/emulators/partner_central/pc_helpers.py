"""Helpers shared by the Partner Central emulator tests (requests built the way the docs prescribe)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

# A seeded, active partner solution (the emulator seeds S-1000001..S-1000005; S-1000005 is Inactive).
SOLUTION_ID = "S-1000001"


def opportunity_payload(**overrides: Any) -> dict[str, Any]:
    """A complete, submittable CreateOpportunity request."""
    close = (dt.date.today() + dt.timedelta(days=60)).isoformat()
    payload: dict[str, Any] = {
        "Catalog": "AWS",
        "ClientToken": f"tok-{time.time_ns()}",
        "OpportunityType": "Net New Business",
        "NationalSecurity": "No",
        "PartnerOpportunityIdentifier": "HS-1",
        "PrimaryNeedsFromAws": ["Co-Sell - Technical Consultation"],
        "Customer": {
            "Account": {
                "CompanyName": "Acme Analytics Inc.",
                "Industry": "Software and Internet",
                "WebsiteUrl": "https://www.acme.example",
                "Address": {
                    "City": "Seattle",
                    "StateOrRegion": "WA",
                    "PostalCode": "98101",
                    "CountryCode": "US",
                    "StreetAddress": "1 Main Street",
                },
            }
        },
        "Project": {
            "Title": "Data lake modernization",
            "DeliveryModels": ["Professional Services"],
            "CustomerBusinessProblem": "Reporting takes days because data sits in silos.",
            "ExpectedCustomerSpend": [
                {"Amount": "5000", "CurrencyCode": "USD", "Frequency": "Monthly", "TargetCompany": "AWS"}
            ],
        },
        "LifeCycle": {"Stage": "Prospect", "TargetCloseDate": close, "NextSteps": "Kick-off call"},
    }
    payload.update(overrides)
    return payload


def associate_solution(
    pc: Any, opportunity_id: str, solution: str = SOLUTION_ID, catalog: str = "AWS"
) -> None:
    """Associate a partner solution, which submission needs (one to ten of them)."""
    pc.associate_opportunity(
        Catalog=catalog,
        OpportunityIdentifier=opportunity_id,
        RelatedEntityType="Solutions",
        RelatedEntityIdentifier=solution,
    )


def update_from(current: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """An UpdateOpportunity request built the documented way: Get, merge, send everything."""
    fields = (
        "PrimaryNeedsFromAws",
        "NationalSecurity",
        "PartnerOpportunityIdentifier",
        "Customer",
        "Project",
        "OpportunityType",
        "Marketing",
        "SoftwareRevenue",
        "LifeCycle",
    )
    body = {k: current[k] for k in fields if k in current}
    body.update(changes)
    body["LifeCycle"] = {
        k: v
        for k, v in body.get("LifeCycle", {}).items()
        if k not in ("ReviewStatus", "ReviewComments", "ReviewStatusReason", "NextStepsHistory")
    }
    return {
        "Catalog": current["Catalog"],
        "Identifier": current["Id"],
        "LastModifiedDate": current["LastModifiedDate"],
        **body,
    }


def wait_for(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.03)
    raise AssertionError("condition not met in time")
