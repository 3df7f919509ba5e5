"""A real Airflow as subprocesses: api-server, scheduler, dag-processor, triggerer (and a Celery worker).

Shared by the end-to-end test (``tests/e2e/test_real_airflow.py``) and the benchmarks
(``bench/scheduler.py``, ``bench/event_latency.py``): one place that knows how to wire a throwaway
``AIRFLOW_HOME`` to the local stand-ins and start Airflow's components as separate processes, as a
deployment runs them.

Two shapes:

- ``sqlite``: SQLite metadata DB in the home, ``LocalExecutor`` (what ``make airflow`` runs);
- ``postgres``: a throwaway database on the local PostgreSQL (``127.0.0.1:5432``, user ``postgres``, trust
  auth) and, with ``executor="CeleryExecutor"``, Redis (``127.0.0.1:6379``) as the broker and an
  ``airflow celery worker`` on a queue of its own (the production shape of ``docker-compose.yaml``).

Every component gets the same environment: the connections (``AIRFLOW_CONN_*``), one JWT secret, free ports
for the API server and the log servers (two Airflows on one machine never collide), and
:data:`LATENCY_OPTIONS`, the scheduler settings that keep an event run's task hand-offs short.

Also here: :class:`EventBridgeRelay`, which plays EventBridge's API destination for the Partner Central
emulator (input transformer from the CloudFormation template, OAuth token from ``/auth/token``), and
:func:`configure_hubspot_webhooks`, which points the HubSpot emulator's webhook deliveries at the receiver.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379"
#: The Airflow user EventBridge's connection logs in as (role ``user``: may trigger DAG runs).
EVENTBRIDGE_USER = "eventbridge"
#: The deployed rule's input transformer (what the API destination posts).
EVENTS_TEMPLATE = ROOT / "deploy" / "cloudformation" / "cosell-events.yaml"
#: Webhook path of the Co-sell app on the API server.
WEBHOOK_PATH = "/cosell/hubspot/webhooks"

#: ``[scheduler] scheduler_idle_sleep_time``: how long a scheduler loop that found nothing to do sleeps.
SCHEDULER_IDLE_SLEEP_S = "0.2"
#: Scheduler settings for event-driven runs (also in docker-compose.yaml, make airflow and the README): an
#: event DAG run is a chain of short tasks, so between tasks it waits for the scheduler noticing one task
#: finished and queueing the next.
LATENCY_OPTIONS: dict[str, str] = {
    # The default (1 s) adds up to a second to each hand-off from one task to the next.
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": SCHEDULER_IDLE_SLEEP_S,
}

#: HubSpot webhook subscriptions the README's "Deploy: HubSpot webhooks" table lists (deal, contact and
#: company properties the sync maps to Partner Central), in the emulator's configuration form.
WEBHOOK_SUBSCRIPTIONS: list[Any] = [
    "deal.creation",
    "deal.deletion",
    "deal.associationChange",
    "contact.creation",
    "company.associationChange",
    *(
        {"subscriptionType": "deal.propertyChange", "propertyName": p}
        for p in (
            "dealstage",
            "hubspot_owner_id",
            "dealname",
            "amount",
            "closedate",
            "description",
            "aws_next_steps",
        )
    ),
    *(
        {"subscriptionType": "contact.propertyChange", "propertyName": p}
        for p in ("email", "firstname", "lastname", "phone", "jobtitle")
    ),
    *(
        {"subscriptionType": "company.propertyChange", "propertyName": p}
        for p in ("name", "website", "industry", "address", "city", "state", "zip", "country")
    ),
]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds (PostgreSQL, Redis present?)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def psql(sql: str, db: str = "postgres") -> list[tuple[Any, ...]]:
    """Run one statement on the local PostgreSQL (autocommit); the rows it returned."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=db)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, Any]:
    """A JSON request with the standard library (this module is imported by tests and benches alike)."""
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(  # noqa: S310 - local URLs only
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - local URLs only
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw) if raw else None
        except ValueError:
            return err.code, raw.decode(errors="replace")


@dataclass
class RealAirflow:
    """One Airflow, its components as subprocesses, in ``workdir``.

    Attributes:
        workdir: holds the home (``airflow.cfg``, SQLite DB, task logs) and one log file per component.
        connections: ``AIRFLOW_CONN_*`` variables every component gets.
        backend: ``sqlite`` or ``postgres``.
        executor: ``LocalExecutor`` or ``CeleryExecutor`` (PostgreSQL only).
        dags_folder: the DAGs (the repo's ``dags/`` by default).
        extra_env: more environment for every component (wins over the defaults here).
        components: which Airflow commands run (a Celery worker is added for the CeleryExecutor).
        parallelism: ``[core] parallelism`` (LocalExecutor worker processes, Celery worker concurrency).
    """

    workdir: Path
    connections: dict[str, str]
    backend: str = "sqlite"
    executor: str = "LocalExecutor"
    dags_folder: Path = ROOT / "dags"
    extra_env: dict[str, str] = field(default_factory=dict)
    components: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
    parallelism: int = 4
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    db_name: str = field(default_factory=lambda: f"cosell_e2e_{secrets.token_hex(4)}")
    queue: str = field(default_factory=lambda: f"cosell-e2e-{secrets.token_hex(4)}")
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _token: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The API server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        """``AIRFLOW_HOME``."""
        return self.workdir / "airflow_home"

    def env(self) -> dict[str, str]:
        """The environment of every component (and of ``airflow`` CLI calls for this Airflow)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "COSELL_SYNC_CONFIG"))}
        passwords = self.workdir / "passwords.json"
        env.update(self.connections)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                # Paused at creation, as deployed: only cosell_events (is_paused_upon_creation=False) runs
                # by itself; a scheduled DAG runs once unpaused (RealAirflow.unpause).
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__WORKERS": "1",
                # Every component signs and verifies the same JWTs (task workers -> execution API).
                "AIRFLOW__API_AUTH__JWT_SECRET": f"cosell-local-only-{self.port}",
                # One user, as the API destination's connection logs in (README: Deploy: Partner Central
                # events); its password lives in a file in the workdir only.
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{EVENTBRIDGE_USER}:user",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                # Log servers on free ports: two Airflows (or a bench beside a test) never collide.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("COSELL_E2E_LOG_LEVEL", "WARNING"),
                # New DAG files show up within seconds (the default is 5 minutes).
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "PYTHONPATH": os.pathsep.join(str(p) for p in (ROOT, ROOT / "include", ROOT / "plugins")),
                # Components are started as `python -m airflow`; standalone-style PATH lookups find ours.
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
                **LATENCY_OPTIONS,
            }
        )
        if self.backend == "postgres":
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"{PG_URL}/{self.db_name}"
        else:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{self.home / 'airflow.db'}"
        if self.executor == "CeleryExecutor":
            # A Redis database and queue of this Airflow only: other Celery workers on the machine
            # never take its tasks.
            env["AIRFLOW__CELERY__BROKER_URL"] = f"{REDIS_URL}/{int(self.queue[-2:], 16) % 16}"
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = f"db+postgresql://postgres@127.0.0.1:5432/{self.db_name}"
            env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] = self.queue
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(self.parallelism)
        env.update(self.extra_env)
        return env

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run an ``airflow`` CLI command against this Airflow; output goes to ``cli.log``."""
        with open(self.workdir / "cli.log", "ab") as log:
            return subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=self.env(),
                check=check,
                stdout=log,
                stderr=log,
            )

    # -- life cycle ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Home, users, database (created fresh for PostgreSQL), migrations and the writes pool."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.workdir / "passwords.json").write_text(json.dumps({EVENTBRIDGE_USER: self.password}))
        if self.backend == "postgres":
            psql(f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)")
            psql(f"CREATE DATABASE {self.db_name}")
        self.airflow("db", "migrate")
        self.airflow(
            "pools", "set", "partner_central_writes", "1", "Partner Central writes: 1/s per partner account"
        )

    def start(self) -> None:
        """Start every component (own process groups); returns at once, see :meth:`wait_ready`."""
        env = self.env()
        commands = {name: [name] for name in self.components}
        if self.executor == "CeleryExecutor":
            commands["celery-worker"] = [
                "celery",
                "worker",
                "--queues",
                self.queue,
                "--concurrency",
                str(self.parallelism),
                "--skip-serve-logs",
            ]
        for name, args in commands.items():
            log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
            self._procs[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def wait_ready(self, dag_ids: tuple[str, ...] = ("cosell_events",), timeout: float = 180) -> None:
        """Wait until the API server answers and the DAGs are parsed; raise if a component died."""

        def ready() -> bool:
            self._check_alive()
            try:
                return all(self.api("GET", f"/api/v2/dags/{d}")[0] == 200 for d in dag_ids)
            except OSError:
                return False

        wait_for(ready, timeout, f"Airflow to serve {', '.join(dag_ids)}", every=1.0)

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        """Stop the components this object started (SIGTERM, then SIGKILL), drop a PostgreSQL database."""
        for proc in self._procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            # Task processes a component forked share its group: none outlives the test.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        self._procs.clear()
        if self.backend == "postgres":
            with contextlib.suppress(Exception):
                psql(f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)")

    @contextlib.contextmanager
    def running(self, dag_ids: tuple[str, ...] = ("cosell_events",)) -> Iterator[RealAirflow]:
        """Prepare, start, wait until ready; stop on exit."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.prepare()
            self.start()
            self.wait_ready(dag_ids)
            yield self
        finally:
            self.stop()

    # -- REST API -----------------------------------------------------------------------------------
    def token(self, refresh: bool = False) -> str:
        """A JWT from ``POST /auth/token``, as EventBridge's OAuth client-credentials connection gets one."""
        if self._token is None or refresh:
            status, body = _http(
                "POST", f"{self.url}/auth/token", {"username": EVENTBRIDGE_USER, "password": self.password}
            )
            if status not in (200, 201):
                raise RuntimeError(f"/auth/token answered {status}")
            self._token = str(body["access_token"])
        return self._token

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Call the REST API with the JWT (fetched again once when it expired)."""
        status, got = _http(method, f"{self.url}{path}", body, {"Authorization": f"Bearer {self.token()}"})
        if status == 401:
            status, got = _http(
                method, f"{self.url}{path}", body, {"Authorization": f"Bearer {self.token(refresh=True)}"}
            )
        return status, got

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of ``dag_id`` (id, state, conf, start/end dates)."""
        status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=run_after")
        if status != 200:
            raise RuntimeError(f"listing {dag_id} runs answered {status}: {body}")
        return list(body["dag_runs"])

    def trigger(self, dag_id: str, run_id: str | None = None, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run through the REST API; its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        status, got = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
        if status != 200:
            raise RuntimeError(f"triggering {dag_id} answered {status}: {got}")
        return str(got["dag_run_id"])

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 180) -> dict[str, Any]:
        """Wait until a run finished; the run (its ``state`` is ``success`` or ``failed``)."""

        def done() -> dict[str, Any] | None:
            self._check_alive()
            status, run = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            return run if status == 200 and run["state"] in ("success", "failed") else None

        return wait_for(done, timeout, f"{dag_id} run {run_id}", every=0.5)

    def unpause(self, dag_id: str) -> None:
        """Unpause a DAG (its runs, triggered or scheduled, start only then)."""
        self._set_paused(dag_id, False)

    def pause(self, dag_id: str) -> None:
        """Pause a DAG: the scheduler creates no more runs of it."""
        self._set_paused(dag_id, True)

    def _set_paused(self, dag_id: str, paused: bool) -> None:
        status, got = self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})
        if status != 200:
            raise RuntimeError(f"{'pausing' if paused else 'unpausing'} {dag_id} answered {status}: {got}")

    def wait_idle(self, dag_id: str, timeout: float = 180) -> list[dict[str, Any]]:
        """Wait until no run of ``dag_id`` is queued or running; every run."""

        def idle() -> tuple[list[dict[str, Any]]] | None:
            self._check_alive()
            runs = self.runs(dag_id)
            return (runs,) if all(r["state"] in ("success", "failed") for r in runs) else None

        return list(wait_for(idle, timeout, f"every {dag_id} run to finish", every=0.5)[0])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Task id -> state of a run's task instances."""
        status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        if status != 200:
            raise RuntimeError(f"listing task instances answered {status}")
        return {ti["task_id"]: str(ti["state"]) for ti in body["task_instances"]}

    def task_timings(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """A run's task instances with their queued/start/end times (where the time goes)."""
        status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        if status != 200:
            raise RuntimeError(f"listing task instances answered {status}")
        return list(body["task_instances"])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); TimeoutError after ``timeout``.

    A poll whose own request timed out or found the server unreachable counts as "not yet": an API
    server busy with a scheduler, a worker and the DAG processor on two cores may take longer than one
    request's 30 s now and then, and the wait as a whole still has its deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (TimeoutError, ConnectionError, urllib.error.URLError) as err:
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} ({err})") from err
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# -- EventBridge stand-in ---------------------------------------------------------------------------
def input_transformer(template: Path = EVENTS_TEMPLATE) -> dict[str, Any]:
    """The API destination target's ``InputTransformer`` from the CloudFormation template."""
    from cfnlint.decode import cfn_yaml

    rule = cfn_yaml.load(str(template))["Resources"]["PartnerCentralRule"]["Properties"]
    [target] = [t for t in rule["Targets"] if t.get("Id") == "AirflowCosellEvents"]
    return dict(target["InputTransformer"])


class EventBridgeRelay:
    """EventBridge's rule + API destination for the Partner Central emulator's events.

    The emulator POSTs each raw event here (``/_emulator/event-target``); the relay renders the deployed
    input transformer and posts the body to ``/api/v2/dags/cosell_events/dagRuns`` with a JWT from
    ``/auth/token`` (fetched again on a 401, as EventBridge's OAuth connection does). Each delivery's
    answer is kept in :attr:`deliveries` (event id, HTTP status, when).
    """

    def __init__(self, airflow: RealAirflow) -> None:
        from cosell_sync.events import render_input_transformer

        self.airflow = airflow
        self.transformer = input_transformer()
        self._render = render_input_transformer
        self.deliveries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                event = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                relay.deliver(event)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # the request lines are not wanted
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Where the emulator posts its events."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def deliver(self, event: dict[str, Any]) -> int:
        """Post one event the way the API destination does; the HTTP status (409 for a redelivery)."""
        received = time.time()
        body = self._render(self.transformer, event).encode()
        path = "/api/v2/dags/cosell_events/dagRuns"
        status, _ = _http(
            "POST", f"{self.airflow.url}{path}", body, {"Authorization": f"Bearer {self.airflow.token()}"}
        )
        if status == 401:
            status, _ = _http(
                "POST",
                f"{self.airflow.url}{path}",
                body,
                {"Authorization": f"Bearer {self.airflow.token(refresh=True)}"},
            )
        with self._lock:
            self.deliveries.append(
                {
                    "id": event.get("id"),
                    "detail_type": event.get("detail-type"),
                    "detail": event.get("detail"),
                    "status": status,
                    "received": received,
                }
            )
        return status

    def for_opportunity(self, opportunity_id: str) -> list[dict[str, Any]]:
        """Deliveries of events naming ``opportunity_id``."""
        with self._lock:
            return [
                d
                for d in self.deliveries
                if ((d.get("detail") or {}).get("opportunity") or {}).get("identifier") == opportunity_id
            ]

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


def connect_partner_central_events(pc_url: str, relay_url: str | None) -> None:
    """Point (or, with None, stop) the Partner Central emulator's event delivery at ``relay_url``."""
    status, body = _http("POST", f"{pc_url}/_emulator/event-target", {"url": relay_url})
    if status != 200:
        raise RuntimeError(f"event-target answered {status}: {body}")


def configure_hubspot_webhooks(
    hubspot_url: str, target_url: str, client_secret: str, **options: Any
) -> dict[str, Any]:
    """Make the HubSpot emulator deliver signed webhooks for :data:`WEBHOOK_SUBSCRIPTIONS` to ``target_url``.

    Args:
        hubspot_url: the emulator's base URL.
        target_url: the receiver, ``<api-server>/cosell/hubspot/webhooks``.
        client_secret: the app secret it signs with (the ``hubspot_default`` extra ``client_secret``).
        options: more emulator settings (``retry_base_s``, ``max_attempts``, ``batch_window_s``).
    """
    status, body = _http(
        "POST",
        f"{hubspot_url}/_emulator/webhooks",
        {
            "target_url": target_url,
            "client_secret": client_secret,
            "subscriptions": WEBHOOK_SUBSCRIPTIONS,
            **options,
        },
    )
    if status != 200:
        raise RuntimeError(f"configuring webhooks answered {status}: {body}")
    return dict(body)


def route_deliveries(
    pc_url: str,
    hubspot_url: str,
    relay_url: str | None,
    webhook_url: str | None,
    client_secret: str,
    **webhook_options: Any,
) -> None:
    """Switch each delivery path on (a URL) or off (None): Partner Central events, HubSpot webhooks.

    One direction at a time keeps the echo of a sync's own write (the deal update it makes is a HubSpot
    change, the opportunity update an event) from starting runs that queue behind the lease.
    """
    connect_partner_central_events(pc_url, relay_url)
    if webhook_url:
        configure_hubspot_webhooks(hubspot_url, webhook_url, client_secret, **webhook_options)
    else:
        status, body = _http(
            "POST", f"{hubspot_url}/_emulator/webhooks", {"target_url": None, "subscriptions": []}
        )
        if status != 200:
            raise RuntimeError(f"turning webhooks off answered {status}: {body}")
