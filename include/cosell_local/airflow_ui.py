"""``make airflow``: a local Airflow UI (``airflow standalone``) wired to the local emulators.

Airflow state lives in ``.airflow/`` inside the repo (git-ignored), on SQLite with the LocalExecutor.
The emulators and a moto server run in this process for as long as Airflow does; the three Connections
point at them through ``AIRFLOW_CONN_*`` variables, and the ``partner_central_writes`` pool (1 slot) is
created so the reconcile DAG's Partner Central writes can be scheduled.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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


def main(argv: list[str] | None = None) -> int:
    """Start the emulators, configure Airflow, and run ``airflow standalone`` until interrupted."""
    parser = argparse.ArgumentParser(prog="make airflow")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    home = Path(os.environ.get("AIRFLOW_HOME", ROOT / ".airflow"))
    home.mkdir(parents=True, exist_ok=True)
    env = os.environ.copy()
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__API__PORT": str(args.port),
            # Task workers reach the API server here; it must match the port the UI is served on.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{args.port}/execution/",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "include"), str(ROOT / "plugins")]),
            # standalone starts its components as `airflow ...` from PATH: make that the venv's airflow.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
    )
    sys.path[:0] = [str(ROOT), str(ROOT / "include")]
    from cosell_local.stack import local_stack

    with local_stack() as stack:
        env.update(stack.connection_env())
        print(
            f"Partner Central emulator: {stack.partner_central_url}\nHubSpot emulator: "
            f"{stack.hubspot_url}\nS3/DynamoDB (moto): {stack.aws_url}",
            flush=True,
        )
        airflow = [sys.executable, "-m", "airflow"]
        subprocess.run([*airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            [
                *airflow,
                "pools",
                "set",
                "partner_central_writes",
                "1",
                "Partner Central writes: 1/s per partner account",
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        threading.Thread(target=_print_password, args=(home, args.port), daemon=True).start()
        try:
            return subprocess.call([*airflow, "standalone"], env=env)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
