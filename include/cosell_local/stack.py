"""Start the offline stack (Partner Central and HubSpot emulators, moto for S3/DynamoDB) in threads."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: The private-app token the local HubSpot connection uses (the emulator accepts any token).
LOCAL_HUBSPOT_TOKEN = "local-emulator-token"  # noqa: S105 - not a secret: the emulator's stand-in token
#: The HubSpot app client secret the local emulator signs webhooks with (a stand-in, not a secret).
LOCAL_WEBHOOK_SECRET = "local-emulator-webhook-secret"  # noqa: S105 - the emulator's stand-in secret


@dataclass
class LocalStack:
    """URLs of the running local services and the Airflow connections that point at them."""

    partner_central_url: str
    hubspot_url: str
    aws_url: str
    _servers: list[Any] = field(default_factory=list, repr=False)

    def connections(self) -> dict[str, dict[str, Any]]:
        """The three Airflow connections, as the JSON documents ``AIRFLOW_CONN_*`` variables take."""
        return {
            "partner_central_default": {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {
                    "region_name": "us-east-1",
                    "endpoint_url": self.partner_central_url,
                    "catalog": "AWS",
                },
            },
            "hubspot_default": {
                "conn_type": "hubspot",
                "host": self.hubspot_url,
                "password": LOCAL_HUBSPOT_TOKEN,
                # Verifies the emulator's signed webhook deliveries (cosell_runtime.webhooks).
                "extra": {"client_secret": LOCAL_WEBHOOK_SECRET},
            },
            "aws_default": {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"region_name": "us-east-1", "endpoint_url": self.aws_url},
            },
        }

    def connection_env(self) -> dict[str, str]:
        """Environment variables defining the connections (Airflow's ``AIRFLOW_CONN_<ID>`` form)."""
        return {
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)
            for conn_id, conn in self.connections().items()
        }

    def export(self) -> None:
        """Put the connections (and dummy AWS credentials) into this process's environment."""
        os.environ.update(self.connection_env())
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            os.environ.setdefault(key, value)


def configure_pc_s3(pc_url: str, s3_url: str) -> None:
    """Tell the Partner Central emulator which S3 endpoint ``s3://`` bulk job FileURIs are read from.

    Args:
        pc_url: the emulator's base URL.
        s3_url: the S3 endpoint (moto locally).
    """
    request = urllib.request.Request(  # noqa: S310 - the local emulator's http URL
        f"{pc_url}/_emulator/config",
        data=json.dumps({"s3_endpoint_url": s3_url}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local emulator URL
        response.read()


@contextmanager
def local_stack(
    host: str = "127.0.0.1", pc_port: int = 0, hubspot_port: int = 0, aws_port: int = 0
) -> Iterator[LocalStack]:
    """Run both emulators and a moto server for the duration of the block.

    Args:
        host: the interface to listen on.
        pc_port: the Partner Central emulator's port (0: a free one).
        hubspot_port: the HubSpot emulator's port (0: a free one).
        aws_port: moto's port (0: a free one).
    """
    from moto.server import ThreadedMotoServer

    from emulators.hubspot import HubSpotEmulator
    from emulators.partner_central import PartnerCentralEmulator

    pc = PartnerCentralEmulator(host=host, port=pc_port).start()
    hs = HubSpotEmulator(host=host, port=hubspot_port).start()
    moto = ThreadedMotoServer(ip_address=host, port=aws_port, verbose=False)
    moto.start()
    moto_host, moto_port = moto.get_host_and_port()
    stack = LocalStack(pc.url, hs.url, f"http://{moto_host}:{moto_port}", [pc, hs, moto])
    # Partner Central reads bulk job files (s3:// FileURIs) from this S3, as AWS reads them from its own.
    configure_pc_s3(pc.url, stack.aws_url)
    try:
        yield stack
    finally:
        for server in (pc, hs, moto):
            server.stop()
