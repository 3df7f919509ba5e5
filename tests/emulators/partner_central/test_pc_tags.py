"""Tags: ``TagResource``, ``UntagResource`` and ``ListTagsForResource`` on an opportunity through boto3.

Model rules (botocore ``Tag``, ``TagList``, ``TagKeyList``): key 1-128 and value 0-256 characters of Unicode
letters, digits, separators or ``_ . : / = + - @``; at most 200 tags a request, 50 keys an untag. Assumptions
(docs/api-rules.md): ``aws:`` keys are AWS's (general AWS tagging rules), a resource holds at most 200 tags
besides them, and tag changes neither emit an event nor move ``LastModifiedDate``.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from pc_helpers import opportunity_payload


@pytest.fixture
def opportunity(pc: Any) -> dict[str, Any]:
    """A fresh opportunity as GetOpportunity returns it (``Arn``, ``LastModifiedDate``)."""
    oid = pc.create_opportunity(**opportunity_payload())["Id"]
    return pc.get_opportunity(Catalog="AWS", Identifier=oid)


def _tags(pc: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in pc.list_tags_for_resource(ResourceArn=arn)["Tags"]}


def _refused(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response


def test_tag_replace_untag_round_trip_without_event_or_modification(pc, ctl, opportunity):
    arn = opportunity["Arn"]
    ctl("events", method="DELETE")
    pc.tag_resource(ResourceArn=arn, Tags=[{"Key": "Team", "Value": "North"}, {"Key": "Env", "Value": ""}])
    pc.tag_resource(ResourceArn=arn, Tags=[{"Key": "Team", "Value": "South"}])
    assert _tags(pc, arn) == {"Team": "South", "Env": ""}
    pc.untag_resource(ResourceArn=arn, TagKeys=["Env", "NotThere"])
    assert _tags(pc, arn) == {"Team": "South"}
    again = pc.get_opportunity(Catalog="AWS", Identifier=opportunity["Id"])
    assert again["LastModifiedDate"] == opportunity["LastModifiedDate"]
    assert ctl("events", method="GET")["count"] == 0


def test_an_untagged_resource_lists_an_empty_list(pc, opportunity):
    assert pc.list_tags_for_resource(ResourceArn=opportunity["Arn"])["Tags"] == []


@pytest.mark.parametrize(
    ("tag", "field"),
    [
        pytest.param({"Key": "k" * 129, "Value": "v"}, "Tags[0].Key", id="key-too-long"),
        pytest.param({"Key": "Team", "Value": "v" * 257}, "Tags[0].Value", id="value-too-long"),
        pytest.param({"Key": "Team#1", "Value": "v"}, "Tags[0].Key", id="key-character"),
        # \p{Z} is separators only: a tab or a newline is a control character.
        pytest.param({"Key": "Team", "Value": "a\tb"}, "Tags[0].Value", id="tab"),
        pytest.param({"Key": "Team", "Value": "ab\n"}, "Tags[0].Value", id="trailing-newline"),
    ],
)
def test_the_model_patterns_are_enforced(raw, opportunity, tag, field):
    answer = _refused(lambda: raw.tag_resource(ResourceArn=opportunity["Arn"], Tags=[tag]))
    assert answer["Error"]["Code"] == "ValidationException"
    assert answer["Reason"] == "REQUEST_VALIDATION_FAILED"
    assert [e["FieldName"] for e in answer["ErrorList"]] == [field]


def test_unicode_letters_separators_and_symbols_are_accepted(pc, opportunity):
    tag = {"Key": "Équipe\u3000nord", "Value": "値 _.:/=+-@ 2"}
    pc.tag_resource(ResourceArn=opportunity["Arn"], Tags=[tag])
    assert _tags(pc, opportunity["Arn"]) == {tag["Key"]: tag["Value"]}


def test_request_limits_are_the_models(raw, opportunity):
    many = [{"Key": f"k{i}", "Value": "v"} for i in range(201)]
    answer = _refused(lambda: raw.tag_resource(ResourceArn=opportunity["Arn"], Tags=many))
    assert answer["ErrorList"][0]["Code"] == "TOO_MANY_VALUES"
    answer = _refused(
        lambda: raw.untag_resource(ResourceArn=opportunity["Arn"], TagKeys=[f"k{i}" for i in range(51)])
    )
    assert answer["ErrorList"][0]["Code"] == "TOO_MANY_VALUES"


def test_at_most_200_tags_a_resource_and_a_refused_call_changes_nothing(pc, opportunity):
    arn = opportunity["Arn"]
    pc.tag_resource(ResourceArn=arn, Tags=[{"Key": f"k{i:03d}", "Value": "v"} for i in range(200)])
    answer = _refused(lambda: pc.tag_resource(ResourceArn=arn, Tags=[{"Key": "one-more", "Value": "v"}]))
    assert answer["Reason"] == "BUSINESS_VALIDATION_FAILED"
    assert answer["ErrorList"][0]["Code"] == "TOO_MANY_VALUES"
    assert len(_tags(pc, arn)) == 200
    pc.tag_resource(ResourceArn=arn, Tags=[{"Key": "k000", "Value": "new value"}])  # a replacement fits


def test_aws_keys_are_read_only_and_outside_the_limit(pc, ctl, opportunity):
    arn = opportunity["Arn"]
    ctl("simulate/aws-tags", {"resource_arn": arn, "tags": {"aws:createdBy": "console"}})
    for call in (
        lambda: pc.tag_resource(ResourceArn=arn, Tags=[{"Key": "aws:createdBy", "Value": "me"}]),
        lambda: pc.untag_resource(ResourceArn=arn, TagKeys=["aws:createdBy"]),
    ):
        answer = _refused(call)
        assert answer["Error"]["Code"] == "ValidationException"
        assert answer["Reason"] == "BUSINESS_VALIDATION_FAILED"
    assert _tags(pc, arn) == {"aws:createdBy": "console"}
    pc.tag_resource(ResourceArn=arn, Tags=[{"Key": f"k{i:03d}", "Value": "v"} for i in range(200)])
    assert len(_tags(pc, arn)) == 201


def test_unknown_resource_is_not_found(pc):
    arn = "arn:aws:partnercentral:us-east-1:123456789012:catalog/AWS/opportunity/O9999999999"
    for call in (
        lambda: pc.list_tags_for_resource(ResourceArn=arn),
        lambda: pc.tag_resource(ResourceArn=arn, Tags=[{"Key": "Team", "Value": "North"}]),
        lambda: pc.untag_resource(ResourceArn=arn, TagKeys=["Team"]),
    ):
        assert _refused(call)["Error"]["Code"] == "ResourceNotFoundException"
