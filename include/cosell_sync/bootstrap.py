"""Create the bucket and tables co-sell sync needs, if they are missing.

Production deployments create these with infrastructure as code; this is for local runs (moto, the
demo) and first-run convenience (the DAG calls it only when its configuration allows). Every step
checks before it creates, so calling it again changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

TTL_ATTRIBUTE = "ttl"


def ensure_storage(
    s3_client: Any, dynamodb_client: Any, bucket: str, audit_table: str, state_table: str
) -> dict[str, bool]:
    """Create the S3 bucket and the audit and state tables if absent, and wait until they are usable.

    Tables get string keys ``PK``/``SK`` and on-demand billing; the audit table also gets TTL on
    ``ttl`` and point-in-time recovery (best effort: not every emulator supports it). A new bucket
    blocks public access, since snapshots and baselines hold customer data.

    Args:
        s3_client: a boto3 S3 client.
        dynamodb_client: a boto3 DynamoDB client.
        bucket: the bucket for snapshots and baselines.
        audit_table: the audit-trail table.
        state_table: the table for watermarks, the retry queue and conflicts (may equal ``audit_table``).

    Returns:
        What this call created: ``{"bucket": bool, "audit_table": bool, "state_table": bool,
        "audit_ttl": bool}``.
    """
    created = {"bucket": _ensure_bucket(s3_client, bucket)}
    created["audit_table"] = _ensure_table(dynamodb_client, audit_table)
    created["state_table"] = (
        _ensure_table(dynamodb_client, state_table) if state_table != audit_table else False
    )
    created["audit_ttl"] = _ensure_ttl(dynamodb_client, audit_table)
    if created["audit_table"]:
        _enable_pitr(dynamodb_client, audit_table)
    log.info("storage ensured: %s", created)
    return created


def _error_code(err: ClientError) -> str:
    return err.response.get("Error", {}).get("Code", "")


def _ensure_bucket(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as err:
        if _error_code(err) not in {"404", "NoSuchBucket", "NotFound"}:
            raise  # 403: the bucket exists but is not ours, or we lack rights; creating would not help
    kwargs: dict[str, Any] = {"Bucket": bucket}
    region = s3.meta.region_name
    # us-east-1 is the one region that rejects an explicit LocationConstraint.
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as err:
        if _error_code(err) == "BucketAlreadyOwnedByYou":
            return False  # created concurrently by another task
        raise
    s3.get_waiter("bucket_exists").wait(Bucket=bucket)
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    log.info("created bucket %s", bucket)
    return True


def _ensure_table(ddb: Any, table: str) -> bool:
    created = False
    try:
        status = ddb.describe_table(TableName=table)["Table"]["TableStatus"]
    except ClientError as err:
        if _error_code(err) != "ResourceNotFoundException":
            raise
        status = None
    if status is None:
        try:
            ddb.create_table(
                TableName=table,
                AttributeDefinitions=[
                    {"AttributeName": "PK", "AttributeType": "S"},
                    {"AttributeName": "SK", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "PK", "KeyType": "HASH"},
                    {"AttributeName": "SK", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            created = True
            log.info("created table %s", table)
        except ClientError as err:
            if _error_code(err) != "ResourceInUseException":  # created concurrently
                raise
    if status != "ACTIVE":
        ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
    return created


def _ensure_ttl(ddb: Any, table: str) -> bool:
    desc = ddb.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
    if desc.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}:
        if desc.get("AttributeName") != TTL_ATTRIBUTE:
            log.warning("table %s has TTL on %r, not %r", table, desc.get("AttributeName"), TTL_ATTRIBUTE)
        return False
    ddb.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )
    return True


def _enable_pitr(ddb: Any, table: str) -> None:
    # The audit trail is the record of what the sync did; PITR protects it from a bad delete.
    try:
        ddb.update_continuous_backups(
            TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    except ClientError as err:
        log.warning("could not enable point-in-time recovery on %s: %s", table, _error_code(err))
