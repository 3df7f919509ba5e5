"""``make airflow``: a local Airflow (``airflow standalone``) wired to the local emulators.

- Airflow state lives in ``.airflow/`` inside the repo (git-ignored), on SQLite with the LocalExecutor.
  Its ``airflow.cfg`` holds the settings that run (DAGs and plugins folders, executor, ports, DAGs
  unpaused at creation, no examples): what you read there is what runs, no environment overrides.
- The emulators and a moto server run in this process, on fixed ports (``COSELL_PC_PORT``,
  ``COSELL_HUBSPOT_PORT``, ``COSELL_AWS_PORT``; 5100, 5200, 5300 by default), for as long as Airflow does;
  their request lines go to ``.airflow/local_services.log``.
- The three connections are stored in Airflow's database, so they show (and can be edited) under
  Admin > Connections; the ``partner_central_writes`` pool (1 slot) is created.
- The HubSpot emulator delivers signed webhooks (the README's subscriptions) to the receiver at
  ``http://localhost:<port>/cosell/hubspot/webhooks``; the ``hubspot_default`` connection holds the client
  secret they are signed with (extra ``client_secret``), so a deal edit in the emulator starts
  ``cosell_events``.
- ``--seed`` (``make airflow SEED=1``): the HubSpot properties, the state bucket and tables are set up and
  the demo book seeded (200 opportunities, 120 deals, 15 marked for co-sell), ready for a first sync.
- The API server listens on ``--port`` (``AIRFLOW_PORT``); the task and triggerer log servers follow it
  (port + 1, port + 2), so two local Airflows do not collide. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from cosell_local.real_airflow import SCHEDULER_IDLE_SLEEP_S

ROOT = Path(__file__).resolve().parents[2]
#: The emulators' and moto's fixed local ports (overridable through the environment).
DEFAULT_PORTS = {"COSELL_PC_PORT": 5100, "COSELL_HUBSPOT_PORT": 5200, "COSELL_AWS_PORT": 5300}


def set_options(cfg_text: str, options: dict[tuple[str, str], str]) -> str:
    """Set ``key = value`` in the given sections of an ``airflow.cfg`` text, keeping everything else.

    A key already set (or present commented out, ``# key =``) in its section is replaced in place; a
    missing one is added at the end of its section, and a missing section at the end of the file.

    Args:
        cfg_text: the file's text.
        options: (section, key) -> value.

    Returns:
        The new text.
    """
    lines = cfg_text.splitlines()
    for (section, key), value in options.items():
        start = next((i for i, line in enumerate(lines) if line.strip() == f"[{section}]"), None)
        if start is None:
            lines += ["", f"[{section}]", f"{key} = {value}"]
            continue
        end = next(
            (i for i in range(start + 1, len(lines)) if re.match(r"^\[[^\]]+\]\s*$", lines[i])), len(lines)
        )
        pattern = re.compile(rf"^#?\s*{re.escape(key)}\s*=")
        found = next((i for i in range(start + 1, end) if pattern.match(lines[i])), None)
        if found is None:
            lines.insert(end, f"{key} = {value}")
        else:
            lines[found] = f"{key} = {value}"
    return "\n".join(lines) + "\n"


def local_options(port: int) -> dict[tuple[str, str], str]:
    """What ``make airflow`` runs with, as ``airflow.cfg`` options."""
    return {
        ("core", "dags_folder"): str(ROOT / "dags"),
        ("core", "plugins_folder"): str(ROOT / "plugins"),
        ("core", "load_examples"): "False",
        ("core", "executor"): "LocalExecutor",
        # Locally, a DAG is ready to run when it appears (deployments keep Airflow's paused default).
        ("core", "dags_are_paused_at_creation"): "False",
        ("api", "port"): str(port),
        # Local only: the API server listens on this machine (and Airflow does not warn of production).
        ("api", "host"): "localhost",
        ("api", "base_url"): f"http://localhost:{port}",
        # Task workers reach the API server here; it must match the port the UI is served on.
        ("core", "execution_api_server_url"): f"http://localhost:{port}/execution/",
        ("logging", "worker_log_server_port"): str(port + 1),
        ("logging", "trigger_log_server_port"): str(port + 2),
        # Event runs are chains of short tasks: hand-offs wait for a scheduler loop (idle default 1 s).
        ("scheduler", "scheduler_idle_sleep_time"): SCHEDULER_IDLE_SLEEP_S,
    }


def _print_password(home: Path, port: int) -> None:
    password_file = home / "simple_auth_manager_passwords.json.generated"
    for _ in range(180):
        if password_file.exists():
            users = json.loads(password_file.read_text() or "{}")
            for user, password in users.items():
                print(
                    f"\n  Airflow UI: http://localhost:{port}   user: {user}   password: {password}\n",
                    flush=True,
                )
            return
        time.sleep(1)


def _airflow(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _store_connections(env: dict[str, str], home: Path, connections: dict[str, dict[str, Any]]) -> None:
    """Put the connections in Airflow's database (replacing earlier ones): they show under Admin.

    The file holds the emulators' stand-in credentials only (``testing``, the local HubSpot token).
    """
    path = home / "local_connections.json"
    path.write_text(json.dumps(connections, indent=2))
    _airflow(env, "connections", "import", "--overwrite", str(path))


def _requests_to_file(path: Path) -> None:
    """The emulators' and moto's request lines go to ``path``, not the terminal."""
    import logging

    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    for name in ("werkzeug", "emulators", "moto"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False


def _seed(stack: Any) -> dict[str, int]:
    """Set up HubSpot's properties and the state stores, then seed the demo book."""
    from cosell_local.demo import seed_book
    from cosell_runtime.tasks import setup_ensure_properties, setup_ensure_storage

    stack.export()  # the hooks below read the connections from the environment, in this process only
    setup_ensure_storage()
    setup_ensure_properties()
    return seed_book(stack.partner_central_url, stack.hubspot_url)


def _connect_webhooks(hubspot_url: str, port: int) -> str:
    """Make the HubSpot emulator deliver signed webhooks to this Airflow's receiver; returns its URL.

    Signed with the client secret the local ``hubspot_default`` connection holds (extra ``client_secret``),
    for the subscriptions the README lists. Deliveries made before the API server is up fail and are
    retried, as HubSpot retries them.
    """
    from cosell_local.real_airflow import WEBHOOK_PATH, configure_hubspot_webhooks
    from cosell_local.stack import LOCAL_WEBHOOK_SECRET

    target = f"http://localhost:{port}{WEBHOOK_PATH}"
    configure_hubspot_webhooks(hubspot_url, target, LOCAL_WEBHOOK_SECRET)
    return target


def _stop(process: subprocess.Popen[bytes], grace_seconds: float = 30) -> None:
    """Stop ``airflow standalone`` and everything it started (its own process group)."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, grace_seconds), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # Components that outlived standalone (a worker mid-task) share its group: make sure none is left.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    """Start the emulators, configure Airflow, and run ``airflow standalone`` until interrupted."""
    parser = argparse.ArgumentParser(prog="make airflow")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--seed", action="store_true", help="set up HubSpot and seed the demo book")
    args = parser.parse_args(argv)
    home = Path(os.environ.get("AIRFLOW_HOME", ROOT / ".airflow"))
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "include"), str(ROOT / "plugins")]),
            # standalone starts its components as `airflow ...` from PATH: make that the venv's airflow.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
    )
    # Airflow writes a full airflow.cfg on first use; then the settings that run are written into it.
    _airflow(env, "config", "get-value", "core", "executor")
    cfg = home / "airflow.cfg"
    cfg.write_text(set_options(cfg.read_text(), local_options(args.port)))
    ports = {name: int(os.environ.get(name, default)) for name, default in DEFAULT_PORTS.items()}

    sys.path[:0] = [str(ROOT), str(ROOT / "include"), str(ROOT / "plugins")]
    from cosell_local.stack import local_stack

    _requests_to_file(home / "local_services.log")
    with local_stack(
        pc_port=ports["COSELL_PC_PORT"],
        hubspot_port=ports["COSELL_HUBSPOT_PORT"],
        aws_port=ports["COSELL_AWS_PORT"],
    ) as stack:
        print(
            f"Partner Central emulator: {stack.partner_central_url}\nHubSpot emulator:         "
            f"{stack.hubspot_url}\nS3/DynamoDB (moto):       {stack.aws_url}\n"
            f"Airflow home:             {home}",
            flush=True,
        )
        _airflow(env, "db", "migrate")
        _airflow(
            env, "pools", "set", "partner_central_writes", "1", "Partner Central writes: 1/s per account"
        )
        _store_connections(env, home, stack.connections())
        print(
            "Connections partner_central_default, hubspot_default, aws_default: Admin > Connections",
            flush=True,
        )
        webhooks = _connect_webhooks(stack.hubspot_url, args.port)
        print(f"HubSpot emulator delivers signed webhooks to {webhooks}", flush=True)
        if args.seed:
            seeded = _seed(stack)
            print(
                f"Seeded {seeded['opportunities']} opportunities and {seeded['deals']} deals "
                f"({seeded['cosell_deals']} marked for co-sell): trigger cosell_reconcile for the first sync",
                flush=True,
            )
        threading.Thread(target=_print_password, args=(home, args.port), daemon=True).start()
        # Its own process group: Ctrl-C reaches this process only, which then stops the whole group.
        standalone = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"], env=env, start_new_session=True
        )
        # Ctrl-C (even when a parent shell started us with SIGINT ignored) and SIGTERM both stop it all.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            return standalone.wait()
        except KeyboardInterrupt:
            print("\nStopping Airflow and the emulators...", flush=True)
            return 0
        finally:
            _stop(standalone)


if __name__ == "__main__":
    raise SystemExit(main())
