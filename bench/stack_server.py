"""Run the local stack (both emulators and moto) in its own process for the benchmark.

``python -m bench.stack_server`` prints one JSON line ``{"partner_central", "hubspot", "aws"}`` with the
URLs, then serves until its stdin closes. A separate process keeps the emulators' CPU work off the GIL
of the process running the DAG, as in a real deployment where the APIs are remote.
"""

from __future__ import annotations

import json
import logging
import sys


def main() -> int:
    """Serve until stdin closes."""
    logging.disable(logging.WARNING)
    from cosell_local.stack import local_stack

    with local_stack() as stack:
        print(
            json.dumps(
                {
                    "partner_central": stack.partner_central_url,
                    "hubspot": stack.hubspot_url,
                    "aws": stack.aws_url,
                }
            ),
            flush=True,
        )
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
