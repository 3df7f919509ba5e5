"""The AWS side of the event path (deploy/cloudformation/cosell-events.yaml) is a valid template that does
what cosell_events expects: cfn-lint finds nothing, every !Ref/!GetAtt names something that exists, and the
input transformer turns a real Partner Central event into a body Airflow's POST /dagRuns accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "cloudformation" / "cosell-events.yaml"

#: Properties CloudFormation requires per resource type (the CloudFormation resource reference).
REQUIRED = {
    "AWS::SQS::Queue": set(),
    "AWS::SQS::QueuePolicy": {"PolicyDocument", "Queues"},
    "AWS::Events::Connection": {"AuthorizationType", "AuthParameters"},
    "AWS::Events::ApiDestination": {"ConnectionArn", "HttpMethod", "InvocationEndpoint"},
    "AWS::IAM::Role": {"AssumeRolePolicyDocument"},
    "AWS::Events::Rule": set(),
}


@pytest.fixture(scope="module")
def template() -> Any:
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.load(str(TEMPLATE))


def test_cfn_lint_finds_nothing() -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(TEMPLATE, config=ManualArgs(regions=["us-east-1"]))
    assert [f"{m.rule.id} {m.message}" for m in matches] == []


def test_every_resource_has_its_type_required_properties_and_real_references(template: Any) -> None:
    resources = template["Resources"]
    names = (
        set(resources)
        | set(template.get("Parameters", {}))
        | {"AWS::Region", "AWS::AccountId", "AWS::NoValue"}
    )
    refs: list[str] = []
    attrs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "Ref":
                    refs.append(str(value))
                elif key == "Fn::GetAtt":
                    attrs.append(value[0] if isinstance(value, list) else str(value).split(".")[0])
                elif key == "Fn::Sub":
                    refs.extend(v for v in re.findall(r"\$\{([^}.!]+)\}", str(value)))
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for name, resource in resources.items():
        assert resource["Type"] in REQUIRED, f"{name}: unexpected type {resource['Type']}"
        missing = REQUIRED[resource["Type"]] - set(resource.get("Properties", {}))
        assert not missing, f"{name}: missing {sorted(missing)}"
    walk(resources)
    walk(template.get("Outputs", {}))
    assert set(refs) <= names, set(refs) - names
    assert set(attrs) <= set(resources), set(attrs) - set(resources)
    # What the issue asks for: the rule, the API destination and its connection, both queues, the IAM.
    assert {r["Type"] for r in resources.values()} == set(REQUIRED)


def test_input_transformer_posts_a_dag_run_airflow_accepts(template: Any, pc_emulator: Any) -> None:
    import requests
    from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody

    from cosell_sync.events import parse_event, render_input_transformer

    url = pc_emulator.url
    requests.post(
        f"{url}/_emulator/simulate/aws-referral", json={"catalog": "AWS"}, timeout=30
    ).raise_for_status()
    event = requests.get(f"{url}/_emulator/events", timeout=30).json()["events"][0]

    rule = template["Resources"]["PartnerCentralRule"]["Properties"]
    pattern = rule["EventPattern"]
    assert event["source"] in pattern["source"]
    assert pattern["detail"]["catalog"] == [{"Ref": "Catalog"}]
    [api] = [t for t in rule["Targets"] if t.get("Id") == "AirflowCosellEvents"]
    body = TriggerDAGRunPostBody.model_validate(
        json.loads(render_input_transformer(api["InputTransformer"], event))
    )
    # The run id is the event id's: a redelivery is refused by Airflow (409), never a second run.
    assert body.dag_run_id == f"eb-{event['id']}"
    assert re.match(r"^[A-Za-z0-9_.~:+-]+$", body.dag_run_id)  # Airflow's allowed_run_id_pattern
    assert body.conf == {"event": event}
    assert not parse_event(body.conf["event"]).ignored
    endpoint = template["Resources"]["AirflowApiDestination"]["Properties"]["InvocationEndpoint"]
    assert endpoint == {"Fn::Sub": "${AirflowBaseUrl}/api/v2/dags/cosell_events/dagRuns"}
    oauth = template["Resources"]["AirflowConnection"]["Properties"]["AuthParameters"]["OAuthParameters"]
    assert oauth["AuthorizationEndpoint"] == {"Fn::Sub": "${AirflowBaseUrl}/auth/token"}
    assert {p["Key"] for p in oauth["OAuthHttpParameters"]["BodyParameters"]} == {"username", "password"}
