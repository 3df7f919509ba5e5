"""Selling system settings: ``GetSellingSystemSettings`` and ``PutSellingSystemSettings`` through boto3.

API reference: the settings are the IAM role used for resource snapshot jobs, per catalog; Put accepts the
role's ARN or name (``ResourceSnapshotJobRoleIdentifier``) and both answer with the role's ARN
(``ResourceSnapshotJobRoleArn``). The EventBridge events reference names no event for settings, so a change
emits none.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from emulators.partner_central import shapes

ROLE_ARN = "arn:aws:iam::123456789012:role/service-role/SnapshotJobRole"


def _error(err: pytest.ExceptionInfo[ClientError]) -> dict[str, Any]:
    return err.value.response


class TestReadAndWrite:
    def test_fresh_catalog_has_no_role(self, pc):
        got = pc.get_selling_system_settings(Catalog="AWS")
        assert got["Catalog"] == "AWS"
        assert "ResourceSnapshotJobRoleArn" not in got

    def test_role_name_is_expanded_to_the_accounts_role_arn(self, pc):
        put = pc.put_selling_system_settings(Catalog="AWS", ResourceSnapshotJobRoleIdentifier="SnapshotRole")
        expected = "arn:aws:iam::123456789012:role/SnapshotRole"
        assert put["ResourceSnapshotJobRoleArn"] == expected
        assert pc.get_selling_system_settings(Catalog="AWS")["ResourceSnapshotJobRoleArn"] == expected

    def test_role_arn_with_path_is_kept_and_catalogs_are_separate(self, pc):
        pc.put_selling_system_settings(Catalog="Sandbox", ResourceSnapshotJobRoleIdentifier=ROLE_ARN)
        assert pc.get_selling_system_settings(Catalog="Sandbox")["ResourceSnapshotJobRoleArn"] == ROLE_ARN
        assert "ResourceSnapshotJobRoleArn" not in pc.get_selling_system_settings(Catalog="AWS")

    def test_put_is_idempotent_and_an_omitted_role_keeps_the_current_one(self, pc):
        first = pc.put_selling_system_settings(Catalog="AWS", ResourceSnapshotJobRoleIdentifier=ROLE_ARN)
        again = pc.put_selling_system_settings(Catalog="AWS", ResourceSnapshotJobRoleIdentifier=ROLE_ARN)
        bare = pc.put_selling_system_settings(Catalog="AWS")
        for answer in (first, again, bare):
            assert answer["ResourceSnapshotJobRoleArn"] == ROLE_ARN

    def test_answers_match_the_output_shapes(self, pc):
        put = pc.put_selling_system_settings(Catalog="AWS", ResourceSnapshotJobRoleIdentifier="Role-1")
        got = pc.get_selling_system_settings(Catalog="AWS")
        for operation, answer in (("PutSellingSystemSettings", put), ("GetSellingSystemSettings", got)):
            body = {k: v for k, v in answer.items() if k != "ResponseMetadata"}
            assert shapes.output_errors(operation, body) == []

    def test_no_event_is_emitted(self, pc, ctl):
        ctl("events", method="DELETE")
        pc.put_selling_system_settings(Catalog="AWS", ResourceSnapshotJobRoleIdentifier="SnapshotRole")
        assert ctl("events", method="GET")["count"] == 0


class TestValidation:
    @pytest.mark.parametrize(
        "identifier",
        [
            "has space",
            "arn:aws:iam::12345:role/Short",  # account id must be 12 digits
            "r" * 65,  # a role name is at most 64 characters
            "arn:aws:s3:::bucket",
        ],
    )
    def test_bad_role_identifier_is_refused_by_the_model_pattern(self, pc, identifier):
        with pytest.raises(ClientError) as err:
            pc.put_selling_system_settings(Catalog="AWS", ResourceSnapshotJobRoleIdentifier=identifier)
        response = _error(err)
        assert response["Error"]["Code"] == "ValidationException"
        assert response["Reason"] == "REQUEST_VALIDATION_FAILED"
        fields = {(e["FieldName"], e["Code"]) for e in response["ErrorList"]}
        assert fields == {("ResourceSnapshotJobRoleIdentifier", "INVALID_STRING_FORMAT")}
        assert "ResourceSnapshotJobRoleArn" not in pc.get_selling_system_settings(Catalog="AWS")

    def test_unknown_catalog_is_refused(self, pc):
        with pytest.raises(ClientError) as err:
            pc.get_selling_system_settings(Catalog="Prod")
        response = _error(err)
        assert response["Error"]["Code"] == "ValidationException"
        assert [e["FieldName"] for e in response["ErrorList"]] == ["Catalog"]

    def test_missing_catalog_is_refused_by_the_server(self, raw):
        with pytest.raises(ClientError) as err:
            raw.get_selling_system_settings()
        assert _error(err)["Error"]["Code"] == "ValidationException"


class TestAccess:
    def test_without_permission_both_operations_are_denied(self, pc, ctl):
        pc.put_selling_system_settings(Catalog="AWS", ResourceSnapshotJobRoleIdentifier="Kept")
        assert ctl("config", {"settings_access": False})["settings_access"] is False
        for call in (
            lambda: pc.get_selling_system_settings(Catalog="AWS"),
            lambda: pc.put_selling_system_settings(Catalog="AWS", ResourceSnapshotJobRoleIdentifier="Other"),
        ):
            with pytest.raises(ClientError) as err:
                call()
            response = _error(err)
            assert response["Error"]["Code"] == "AccessDeniedException"
            assert "Reason" not in response
        ctl("config", {"settings_access": True})
        got = pc.get_selling_system_settings(Catalog="AWS")
        assert got["ResourceSnapshotJobRoleArn"] == "arn:aws:iam::123456789012:role/Kept"
