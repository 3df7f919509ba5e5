"""The per-record baseline: what the seeds' Lambda handlers do, one changed record at a time.

For every changed record: HubSpot ``GET`` the deal, ``GetOpportunity``, ``UpdateOpportunity`` with the full
record (the HubSpot value merged in), ``PATCH`` the deal with the Partner Central value. Calls go through
boto3 and the HubSpot SDK directly, paced to the same quotas (at the same time_scale) as ours, which is
the per-record design at its best: a Lambda fleet without shared pacing would also pay for 429 retries.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.stack import BenchStack


def run_per_record(stack: BenchStack, records: list[tuple[str, str]]) -> tuple[float, int]:
    """Sync ``records`` ((opportunity id, deal id) pairs) the per-record way.

    Returns:
        (wall seconds, number of UpdateOpportunity calls Partner Central refused).
    """
    import boto3
    import hubspot
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from hubspot.crm.deals import SimplePublicObjectInput

    from bench.stack import CATALOG, HS_TOKEN
    from cosell_hooks.ratelimit import RollingWindowLimiter, TokenBucket
    from cosell_sync.config import load_config
    from cosell_sync.mapping import merge_into_opportunity

    cfg = load_config()
    s = stack.time_scale
    pc = boto3.client(
        "partnercentral-selling",
        region_name="us-east-1",
        endpoint_url=stack.pc_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto/emulator dummy
        config=Config(retries={"mode": "standard", "total_max_attempts": 5}),
    )
    hs = hubspot.Client.create(access_token=HS_TOKEN, host=stack.hs_url, base_url=stack.hs_url)
    reads, writes = TokenBucket(10 * s, 1), TokenBucket(1 * s, 1, initial_tokens=0)
    burst = RollingWindowLimiter(int(100 * s), 10.0)
    props = ["dealname", "amount", "dealstage", "closedate", "aws_next_steps", cfg.link_property]

    failures: list[str] = []
    started = time.monotonic()
    for oid, deal_id in records:
        burst.acquire()
        deal: Any = hs.crm.deals.basic_api.get_by_id(deal_id, properties=props)
        reads.acquire()
        current = pc.get_opportunity(Catalog=CATALOG, Identifier=oid)
        current.pop("ResponseMetadata", None)
        payload = merge_into_opportunity(current, {"next_steps": deal.properties.get("aws_next_steps")}, cfg)
        writes.acquire()
        try:
            pc.update_opportunity(**payload)
        except ClientError as err:  # e.g. "In review": the Lambda would log and drop (or retry) the change
            failures.append(err.response.get("Error", {}).get("Code", "ClientError"))
        burst.acquire()
        hs.crm.deals.basic_api.update(
            deal_id,
            simple_public_object_input=SimplePublicObjectInput(
                properties={"aws_next_steps": (payload.get("LifeCycle") or {}).get("NextSteps") or ""}
            ),
        )
    return time.monotonic() - started, len(failures)
