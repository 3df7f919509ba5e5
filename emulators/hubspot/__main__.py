"""``python -m emulators.hubspot --port PORT [--host 127.0.0.1] [--access-token T ...]``."""

from __future__ import annotations

import argparse

from emulators.common.server import serve_main
from emulators.hubspot.server import HubSpotApp


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--access-token",
        action="append",
        dest="access_tokens",
        default=None,
        help="accepted Bearer token (repeatable); default: any non-empty token",
    )


def _build(args: argparse.Namespace) -> HubSpotApp:
    return HubSpotApp(args.access_tokens)


if __name__ == "__main__":
    serve_main("HubSpot", _build, extra_args=_extra)
