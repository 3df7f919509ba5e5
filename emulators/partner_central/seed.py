"""Deterministic, realistic opportunity books for tests and benchmarks (``POST /_emulator/seed``).

Records are written straight into the store (no API calls, no events) so 10,000 take well under a second.
Every record satisfies the ``GetOpportunity`` output shape (a test checks a sample) and the solution rules:
submitted records and records in ``Committed``/``Launched`` carry an associated seeded solution.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from emulators.partner_central.models import (
    AWS_ACCOUNT,
    STAGES_NEEDING_OFFERING,
    PartnerCentralBackend,
    parse_ts,
)

_PREFIX = [
    "Blue",
    "North",
    "Silver",
    "Bright",
    "Apex",
    "Cedar",
    "Summit",
    "Harbor",
    "Pioneer",
    "Quantum",
    "Atlas",
    "Evergreen",
    "Granite",
    "Lumen",
    "Orbit",
    "Prairie",
    "Redwood",
    "Sterling",
    "Vertex",
    "Willow",
]
_SUFFIX = [
    "Analytics",
    "Logistics",
    "Health",
    "Foods",
    "Energy",
    "Robotics",
    "Retail",
    "Media",
    "Financial",
    "Software",
    "Systems",
    "Labs",
    "Motors",
    "Learning",
    "Networks",
    "Biotech",
]
_FORM = ["Inc.", "LLC", "Corp.", "Group", "GmbH", "Ltd."]
_CITIES = [
    ("Seattle", "WA", "98101", "US"),
    ("Austin", "TX", "73301", "US"),
    ("New York", "NY", "10001", "US"),
    ("Chicago", "IL", "60601", "US"),
    ("Denver", "CO", "80202", "US"),
    ("Boston", "MA", "02108", "US"),
    ("Toronto", "Ontario", "M5H 2N2", "CA"),
    ("London", "England", "EC1A 1BB", "GB"),
    ("Berlin", "Berlin", "10115", "DE"),
    ("Sydney", "New South Wales", "2000", "AU"),
]
_INDUSTRIES = [
    "Software and Internet",
    "Financial Services",
    "Healthcare",
    "Retail",
    "Manufacturing",
    "Media and Entertainment",
    "Education",
    "Telecommunications",
    "Transportation and Logistics",
    "Energy - Power and Utilities",
    "Life Sciences",
    "Gaming",
]
_PROJECTS = [
    "Data lake modernization",
    "SAP migration to AWS",
    "Contact center on Amazon Connect",
    "Generative AI assistant",
    "Mainframe modernization",
    "Disaster recovery on AWS",
    "Analytics platform refresh",
    "Kubernetes platform migration",
    "Windows workloads migration",
]
_PROBLEMS = [
    "The customer runs on ageing on-premises hardware and needs elastic capacity for seasonal peaks.",
    "Reporting takes days because data sits in silos; leadership wants near real-time insight.",
    "Licensing costs of the current platform grow faster than revenue and block new projects.",
    "The customer must meet new resilience regulations and lacks a tested recovery plan.",
]
_STAGES = ["Prospect", "Qualified", "Technical Validation", "Business Validation", "Committed", "Launched"]
_NEEDS = [
    "Co-Sell - Architectural Validation",
    "Co-Sell - Business Presentation",
    "Co-Sell - Pricing Assistance",
    "Co-Sell - Technical Consultation",
    "Co-Sell - Deal Support",
]
_REVIEW = (
    ["Pending Submission"] * 30
    + ["Submitted"] * 8
    + ["In review"] * 7
    + ["Approved"] * 40
    + ["Action Required"] * 10
    + ["Rejected"] * 5
)
# The active seeded solutions (PartnerCentralBackend seeds S-1000001..S-1000005; S-1000005 is Inactive).
_SOLUTIONS = ["S-1000001", "S-1000002", "S-1000003", "S-1000004"]
_BASE = parse_ts("2025-01-01T00:00:00Z")
_YEAR_MS = 365 * 86_400_000


def seed_opportunities(
    backend: PartnerCentralBackend, count: int, seed: int = 0, catalog: str = "AWS"
) -> list[str]:
    """Add ``count`` opportunities to ``catalog``; the same seed always yields the same records."""
    rng = random.Random(seed)
    ids: list[str] = []
    with backend.lock:
        store = backend.store(catalog)
        for n in range(count):
            oid = backend.new_opportunity_id(catalog)
            record = _opportunity(rng, n, catalog, oid, backend.account_id, backend.region)
            review = record["LifeCycle"]["ReviewStatus"]
            if review != "Pending Submission":
                store["aws_summaries"][oid] = {
                    "RelatedOpportunityId": oid,
                    "Origin": "Partner Referral",
                    "InvolvementType": "Co-Sell",
                    "Visibility": "Full",
                    "LifeCycle": {"Stage": "Prospect" if review == "Approved" else "Not Started"},
                }
            store["opportunities"][oid] = record
            ids.append(oid)
        # Later writes must still move LastModifiedDate forward past every seeded value.
        backend.advance_clock_to(max((store["opportunities"][i]["LastModifiedDate"] for i in ids), default=0))
        backend.touch()
    return ids


def _opportunity(
    rng: random.Random, n: int, catalog: str, oid: str, account: str, region: str
) -> dict[str, Any]:
    company = f"{rng.choice(_PREFIX)} {rng.choice(_SUFFIX)} {rng.choice(_FORM)}"
    slug = company.split()[0].lower() + company.split()[1].lower()
    city, state, postal, country = rng.choice(_CITIES)
    created = _BASE + rng.randrange(_YEAR_MS)
    # Unique, increasing-with-n offsets keep LastModifiedDate distinct across the book.
    modified = created + rng.randrange(30 * 86_400_000) + n
    close = dt.date(2026, 1, 1) + dt.timedelta(days=rng.randrange(540))
    stage = rng.choice(_STAGES)
    review = rng.choice(_REVIEW)
    amount = rng.choice([1500, 2500, 5000, 8000, 12000, 25000, 40000])
    lifecycle: dict[str, Any] = {
        "Stage": stage,
        "TargetCloseDate": close.isoformat(),
        "ReviewStatus": review,
        "NextSteps": f"Follow up with {company.split()[0]} stakeholders",
    }
    if review == "Action Required":
        lifecycle["ReviewComments"] = "Please provide a more specific customer business problem."
    if review == "Rejected":
        lifecycle["ReviewStatusReason"] = "Duplicate opportunity"
    record: dict[str, Any] = {
        "Catalog": catalog,
        "Id": oid,
        "Arn": f"arn:aws:partnercentral:{region}:{account}:catalog/{catalog}/opportunity/{oid}",
        "CreatedDate": created,
        "LastModifiedDate": modified,
        "RelatedEntityIdentifiers": {},
        "Origin": "Partner Referral",
        "OpportunityType": rng.choice(["Net New Business", "Expansion", "Flat Renewal"]),
        "NationalSecurity": "No",
        "PrimaryNeedsFromAws": [rng.choice(_NEEDS)],
        "Customer": {
            "Account": {
                "CompanyName": company,
                "Industry": rng.choice(_INDUSTRIES),
                "WebsiteUrl": f"https://www.{slug}.com",
                "Address": {
                    "City": city,
                    "StateOrRegion": state,
                    "PostalCode": postal,
                    "CountryCode": country,
                    "StreetAddress": f"{rng.randint(1, 999)} Main Street",
                },
            },
            "Contacts": [
                {
                    "Email": f"buyer{n}@{slug}.com",
                    "FirstName": "Jordan",
                    "LastName": "Lee",
                    "BusinessTitle": "CTO",
                }
            ],
        },
        "Project": {
            "Title": f"{rng.choice(_PROJECTS)} for {company.split()[0]}",
            "CustomerBusinessProblem": rng.choice(_PROBLEMS),
            "DeliveryModels": ["Professional Services"],
            "SalesActivities": ["Initialized discussions with customer"],
            "ExpectedCustomerSpend": [
                {"Amount": str(amount), "CurrencyCode": "USD", "Frequency": "Monthly", "TargetCompany": "AWS"}
            ],
        },
        "LifeCycle": lifecycle,
    }
    if rng.random() < 0.6:
        record["PartnerOpportunityIdentifier"] = f"HS-{100000 + n}"
    if review != "Pending Submission" or stage in STAGES_NEEDING_OFFERING:
        # Submitted records went through submission (one to ten solutions) and Committed/Launched need
        # one too. Picked from n, not rng, so every other field stays what this seed always produced.
        record["RelatedEntityIdentifiers"] = {"Solutions": [_SOLUTIONS[n % len(_SOLUTIONS)]]}
    return record


# ------------------------------------------------------------------------------------------ engagements
_USECASES = ["Generative AI", "Migration", "Analytics", "Security", "Modernization", "Cost optimization"]
_SOURCES = [
    ("Event", "evt-reinvent", "AWS re:Invent"),
    ("Website", "web-free-tier", "AWS website"),
    ("Campaign", "cmp-genai-2025", "GenAI campaign"),
    ("Campaign", "cmp-summit-2024", "2024 Summit campaign"),
    ("Referral", "ref-aws-seller", "AWS seller referral"),
]
_SEGMENTS = ["Enterprise", "Mid-Market", "SMB"]
_MATURITY = ["New to AWS", "Experimenting", "Scaling", "Advanced"]
_QUALIFICATION = ["Qualified", "Under Evaluation", "Disqualified"]
_LEVELS = ["High", "Medium", "Low"]
_FIRST = ["Jordan", "Avery", "Riley", "Casey", "Morgan", "Taylor"]
_LAST = ["Lee", "Patel", "Garcia", "Kim", "Novak", "Schmidt"]
_TITLES = ["CTO", "VP Engineering", "Head of Data", "IT Director", "CIO"]
_GEO = {"US": ("AMER", "NAMER"), "CA": ("AMER", "NAMER"), "GB": ("EMEA", "UKI"), "DE": ("EMEA", "DACH")}
_ID_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"


def seed_engagements(
    backend: PartnerCentralBackend, count: int, seed: int = 0, catalog: str = "AWS"
) -> list[str]:
    """Add ``count`` AWS-shared engagements (leads) to ``catalog``; the same seed yields the same records.

    Every engagement has a ``Lead`` context; every third one also a ``CustomerProject`` context and every
    fourth (from the second) a ``ProspectingResult`` context, so all SearchEngagements keys have values. AWS
    created them; half of them list this partner as a member too.
    """
    rng = random.Random(f"engagements-{seed}")
    ids: list[str] = []
    with backend.lock:
        store = backend.store(catalog)
        for n in range(count):
            eid = "eng-" + "".join(rng.choice(_ID_CHARS) for _ in range(14))
            while eid in store["engagements"]:
                eid = "eng-" + "".join(rng.choice(_ID_CHARS) for _ in range(14))
            record = _engagement(rng, n, catalog, eid, backend)
            store["engagements"][eid] = record
            ids.append(eid)
        backend.advance_clock_to(max((store["engagements"][i]["ModifiedAt"] for i in ids), default=0))
    return ids


def _engagement(
    rng: random.Random, n: int, catalog: str, eid: str, backend: PartnerCentralBackend
) -> dict[str, Any]:
    company = f"{rng.choice(_PREFIX)} {rng.choice(_SUFFIX)} {rng.choice(_FORM)}"
    slug = company.split()[0].lower() + company.split()[1].lower()
    city, state, postal, country = rng.choice(_CITIES)
    industry = rng.choice(_INDUSTRIES)
    usecase = rng.choice(_USECASES)
    created = _BASE + rng.randrange(_YEAR_MS)
    modified = created + rng.randrange(10 * 86_400_000) + n
    interactions = []
    for i in range(1 + rng.randrange(2)):
        source_type, source_id, source_name = rng.choice(_SOURCES)
        interactions.append(
            {
                "SourceType": source_type,
                "SourceId": source_id,
                "SourceName": source_name,
                "Usecase": usecase if i == 0 else rng.choice(_USECASES),
                "InteractionDate": created - (i + 1) * 86_400_000,
                "CustomerAction": "Requested a follow-up",
                "BusinessProblem": f"{company} wants help with {usecase.lower()} on AWS.",
                "Contact": {
                    "BusinessTitle": rng.choice(_TITLES),
                    "Email": f"lead{n}.{i}@{slug}.com",
                    "FirstName": rng.choice(_FIRST),
                    "LastName": rng.choice(_LAST),
                    "Phone": "+12065550100",
                },
            }
        )
    lead = {
        "QualificationStatus": rng.choice(_QUALIFICATION),
        "Insights": {
            "LeadReadinessScore": rng.choice(_LEVELS),
            "ChannelRecommendation": {
                "RecommendedChannel": rng.choice(["EMAIL", "CALL"]),
                "BestOutreachWindows": [{"Day": "TUESDAY", "StartTimeUtc": "14:00", "EndTimeUtc": "17:00"}],
            },
        },
        "Customer": {
            "Industry": industry,
            "CompanyName": company,
            "WebsiteUrl": f"https://www.{slug}.com",
            "Address": {"City": city, "PostalCode": postal, "StateOrRegion": state, "CountryCode": country},
            "AwsMaturity": rng.choice(_MATURITY),
            "MarketSegment": rng.choice(_SEGMENTS),
        },
        "Interactions": interactions,
    }
    contexts: list[dict[str, Any]] = [{"Id": "1", "Type": "Lead", "Payload": {"Lead": lead}}]
    if n % 3 == 0:
        contexts.append(
            {
                "Id": str(len(contexts) + 1),
                "Type": "CustomerProject",
                "Payload": {
                    "CustomerProject": {
                        "Customer": {
                            "Industry": industry,
                            "CompanyName": company,
                            "WebsiteUrl": f"https://www.{slug}.com",
                            "CountryCode": country,
                        },
                        "Project": {
                            "Title": f"{usecase} for {company.split()[0]}",
                            "BusinessProblem": rng.choice(_PROBLEMS),
                            "TargetCompletionDate": (
                                dt.date(2026, 1, 1) + dt.timedelta(days=rng.randrange(365))
                            ).isoformat(),
                        },
                    }
                },
            }
        )
    if n % 4 == 1:
        geo, region = _GEO.get(country, ("APJ", "ANZ"))
        task_id = "task-" + "".join(rng.choice(_ID_CHARS) for _ in range(14))
        contexts.append(
            {
                "Id": str(len(contexts) + 1),
                "Type": "ProspectingResult",
                "Payload": {
                    "ProspectingResult": {
                        "Aws": {
                            "Customer": {
                                "AccountName": company,
                                "Geo": geo,
                                "Region": region,
                                "SubRegion": region,
                                "Country": country,
                                "Industry": industry,
                                "SubIndustry": industry,
                                "Segment": rng.choice(_SEGMENTS),
                                "CompanySize": rng.choice(["1-50", "51-500", "501-5000", "5000+"]),
                                "EligiblePrograms": ["Migration Acceleration Program"],
                                "PublicProfileSummary": f"{company}, {industry.lower()}, {city}.",
                            },
                            "Insights": {
                                "MarketplaceEngagementScore": rng.choice(_LEVELS),
                                "SolutionScore": str(rng.randrange(40, 100)),
                                "SolutionCategory": usecase,
                                "SolutionSubCategory": f"{usecase} services",
                            },
                            "StartTime": modified - 3_600_000,
                            "EndTime": modified - 1_800_000,
                            "TaskId": task_id,
                            "TaskArn": backend.make_arn(catalog, "prospecting-from-engagement-task", task_id),
                            "TaskName": "Quarterly prospecting",
                        }
                    }
                },
            }
        )
    members = [
        {
            "CompanyName": "Amazon Web Services",
            "WebsiteUrl": "https://aws.amazon.com",
            "AccountId": AWS_ACCOUNT,
        }
    ]
    if n % 2 == 0:
        members.append(backend.partner_member())
    return {
        "Id": eid,
        "Arn": backend.make_arn(catalog, "engagement", eid),
        "Title": f"{company.split()[0]} {usecase} lead"[:40],
        "Description": f"{usecase} lead for {company} ({city}) shared by AWS.",
        "CreatedAt": created,
        "CreatedBy": AWS_ACCOUNT,
        "ModifiedAt": modified,
        "ModifiedBy": AWS_ACCOUNT,
        "Contexts": contexts,
        "Members": members,
        "Catalog": catalog,
        "Resources": [],
    }
