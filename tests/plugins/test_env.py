"""``build_env``'s DynamoDB client: no client-side parameter validation, the connection's config kept."""

from __future__ import annotations

import json

from cosell_runtime.env import _dynamodb_client


def test_dynamodb_client_skips_parameter_validation_and_keeps_the_connection_config(monkeypatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {
                    "region_name": "eu-west-1",
                    "endpoint_url": "http://127.0.0.1:9",
                    "config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": 7}},
                },
            }
        ),
    )
    client = _dynamodb_client()
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 7}
    assert client.meta.region_name == "eu-west-1"
    # A malformed request is no longer refused on our side: it reaches the wire, where DynamoDB checks it.
    sent: list[str] = []

    def capture(request: object, **_: object) -> _Stop:
        sent.append(request.url)  # type: ignore[attr-defined]
        return _Stop()

    client.meta.events.register("before-send.dynamodb", capture)
    client.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": {"PK": {"S": 1}}}}]})
    assert sent == ["http://127.0.0.1:9/"]


class _Stop:
    """A stand-in HTTP response: ``before-send`` handlers that return one short-circuit the send."""

    status_code = 200
    headers: dict[str, str] = {}
    content = b"{}"
    raw = None

    @property
    def text(self) -> str:
        return "{}"
