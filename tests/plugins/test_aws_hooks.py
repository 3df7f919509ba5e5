"""``cosell_hooks.aws``: clients share botocore's parsed models, never a connection's credentials."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cosell_hooks.aws import aws_client
from cosell_hooks.partner_central import PartnerCentralHook


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, key: str, region: str, **extra: Any) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": key,
                "password": f"{key}-secret",
                "extra": {"region_name": region, "endpoint_url": "http://127.0.0.1:9", **extra},
            }
        ),
    )


def _loader(client: Any) -> Any:
    return client._loader


def test_clients_of_two_connections_share_the_models_but_keep_their_own_credentials_and_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _connection(monkeypatch, "aws_one", "KEYONE", "eu-west-1")
    _connection(
        monkeypatch,
        "aws_two",
        "KEYTWO",
        "us-east-2",
        config_kwargs={"retries": {"mode": "standard", "total_max_attempts": 7}},
    )
    one, two = aws_client("dynamodb", "aws_one"), aws_client("dynamodb", "aws_two")
    s3 = aws_client("s3", "aws_one")

    assert _loader(one) is _loader(two) is _loader(s3)
    assert (one._request_signer._credentials.access_key, two._request_signer._credentials.access_key) == (
        "KEYONE",
        "KEYTWO",
    )
    assert (one.meta.region_name, two.meta.region_name) == ("eu-west-1", "us-east-2")
    assert two.meta.config.retries == {"mode": "standard", "total_max_attempts": 7}
    assert one.meta.config.retries != two.meta.config.retries


def test_a_separate_data_path_gets_its_own_loader(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    _connection(monkeypatch, "aws_one", "KEYONE", "eu-west-1")
    default = aws_client("dynamodb", "aws_one")
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    custom = aws_client("dynamodb", "aws_one")
    assert _loader(custom) is not _loader(default)
    assert str(tmp_path) in _loader(custom).search_paths


def test_the_user_agent_names_the_hook_without_walking_the_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    _connection(monkeypatch, "partner_central_default", "KEYPC", "us-east-1")

    def no_stack(*_: Any, **__: Any) -> Any:
        raise AssertionError("inspect.stack() called while building a client")

    monkeypatch.setattr(inspect, "stack", no_stack)
    pc = PartnerCentralHook().conn
    state = aws_client("dynamodb", "partner_central_default")
    assert "Caller/PartnerCentralHook" in pc.meta.config.user_agent_extra
    assert "Caller/AwsClientHook" in state.meta.config.user_agent_extra
