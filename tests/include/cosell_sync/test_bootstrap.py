from __future__ import annotations

import boto3
import pytest

from cosell_sync.bootstrap import ensure_storage


@pytest.fixture
def clients(aws_endpoint):
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
    return s3, ddb


class TestEnsureStorage:
    def test_creates_everything_once(self, clients):
        s3, ddb = clients
        created = ensure_storage(s3, ddb, "cosell-b", "audit", "state")
        assert created == {"bucket": True, "audit_table": True, "state_table": True, "audit_ttl": True}
        for table in ("audit", "state"):
            desc = ddb.describe_table(TableName=table)["Table"]
            assert desc["TableStatus"] == "ACTIVE"
            assert desc["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
            assert {k["AttributeName"]: k["KeyType"] for k in desc["KeySchema"]} == {
                "PK": "HASH",
                "SK": "RANGE",
            }
        ttl = ddb.describe_time_to_live(TableName="audit")["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
        assert (
            ddb.describe_time_to_live(TableName="state")["TimeToLiveDescription"]["TimeToLiveStatus"]
            == "DISABLED"
        )
        block = s3.get_public_access_block(Bucket="cosell-b")["PublicAccessBlockConfiguration"]
        assert all(block.values())
        # Second call: nothing to do.
        assert ensure_storage(s3, ddb, "cosell-b", "audit", "state") == dict.fromkeys(created, False)

    def test_shared_table(self, clients):
        s3, ddb = clients
        created = ensure_storage(s3, ddb, "cosell-b", "one", "one")
        assert created["audit_table"] is True
        assert created["state_table"] is False
        assert ddb.list_tables()["TableNames"] == ["one"]

    def test_other_region_bucket(self, aws_endpoint):
        s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="eu-west-1")
        ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="eu-west-1")
        assert ensure_storage(s3, ddb, "eu-bucket", "audit", "state")["bucket"] is True
        assert s3.get_bucket_location(Bucket="eu-bucket")["LocationConstraint"] == "eu-west-1"
