"""Unit tests for ``make airflow``'s config writing: the airflow.cfg it leaves is what runs."""

from __future__ import annotations

import json

from cosell_local.airflow_ui import local_options, set_options

CFG = """[core]
# The folder where your airflow pipelines live
dags_folder = /home/x/airflow/dags
# executor = SequentialExecutor
load_examples = True

[logging]
worker_log_server_port = 8793

[api]
port = 8080
"""


def test_set_keys_are_replaced_in_their_section_keeping_the_comments() -> None:
    out = set_options(CFG, {("core", "dags_folder"): "/repo/dags", ("core", "executor"): "LocalExecutor"})
    assert "dags_folder = /repo/dags" in out
    assert "executor = LocalExecutor" in out
    assert "# executor" not in out
    assert "# The folder where your airflow pipelines live" in out
    assert out.count("dags_folder") == 1


def test_missing_keys_and_sections_are_added_where_airflow_reads_them() -> None:
    out = set_options(CFG, {("logging", "trigger_log_server_port"): "8097", ("celery", "x"): "1"})
    logging_section = out.split("[logging]")[1].split("[api]")[0]
    assert "trigger_log_server_port = 8097" in logging_section
    assert out.rstrip().endswith("[celery]\nx = 1")


def test_a_key_of_another_section_is_left_alone() -> None:
    out = set_options(CFG, {("api", "port"): "8095"})
    assert "port = 8095" in out.split("[api]")[1]
    assert "worker_log_server_port = 8793" in out


def test_log_servers_and_the_execution_api_follow_the_ui_port() -> None:
    options = local_options(8095)
    assert options[("api", "port")] == "8095"
    assert options[("core", "execution_api_server_url")] == "http://localhost:8095/execution/"
    assert (
        options[("logging", "worker_log_server_port")],
        options[("logging", "trigger_log_server_port")],
    ) == (
        "8096",
        "8097",
    )
    assert options[("core", "dags_are_paused_at_creation")] == "False"


def test_the_local_hubspot_emulator_delivers_webhooks_the_receiver_can_verify() -> None:
    """``make airflow`` wiring: a deal edit in the emulator reaches the receiver's URL, signed with the secret
    of the local ``hubspot_default`` connection (what the receiver reads), for a subscribed property."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import requests

    from cosell_local.airflow_ui import _connect_webhooks
    from cosell_local.stack import local_stack
    from cosell_sync.webhooks import verify_v3

    received: list[tuple[str, dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, dict(self.headers), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        with local_stack() as stack:
            secret = stack.connections()["hubspot_default"]["extra"]["client_secret"]
            target = _connect_webhooks(stack.hubspot_url, port)
            headers = {"Authorization": "Bearer local-emulator-token"}
            deal = requests.post(
                f"{stack.hubspot_url}/crm/v3/objects/deals",
                headers=headers,
                json={"properties": {"dealname": "Local webhook"}},
                timeout=10,
            ).json()["id"]
            requests.patch(
                f"{stack.hubspot_url}/crm/v3/objects/deals/{deal}",
                headers=headers,
                json={"properties": {"dealstage": "contractsent"}},
                timeout=10,
            ).raise_for_status()
            deadline = time.monotonic() + 20
            while len(received) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        server.shutdown()
    assert target == f"http://localhost:{port}/cosell/hubspot/webhooks"
    events = []
    for path, hdrs, body in received:
        assert path == "/cosell/hubspot/webhooks"
        lower = {k.lower(): v for k, v in hdrs.items()}
        verify_v3(
            secret,
            "POST",
            target,
            body,
            lower["x-hubspot-request-timestamp"],
            lower["x-hubspot-signature-v3"],
            now_ms=int(time.time() * 1000),
        )
        events += json.loads(body)
    assert {(e["subscriptionType"], e.get("propertyName")) for e in events} >= {
        ("deal.creation", None),
        ("deal.propertyChange", "dealstage"),
    }
