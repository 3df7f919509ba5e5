"""``python -m emulators.partner_central --port PORT [--host HOST] [--state FILE]``."""

from __future__ import annotations

import argparse

from emulators.common.server import serve_main
from emulators.partner_central.server import PartnerCentralApp


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", default=None, help="JSON file to persist state across restarts")


def main(argv: list[str] | None = None) -> None:
    """Serve the emulator until interrupted."""
    serve_main("Partner Central", lambda args: PartnerCentralApp(args.state), argv, extra_args=_extra)


if __name__ == "__main__":
    main()
