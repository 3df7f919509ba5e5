"""Consistency checks of docker-compose.yaml and docker/Dockerfile (Docker itself does not run in CI)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_SERVICES = [
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
]
OFFLINE_SERVICES = ["partner-central-emulator", "hubspot-emulator", "moto"]
# Connection id -> the offline service its endpoint must name.
OFFLINE_CONNECTIONS = {
    "AIRFLOW_CONN_PARTNER_CENTRAL_DEFAULT": ("endpoint_url", "partner-central-emulator"),
    "AIRFLOW_CONN_HUBSPOT_DEFAULT": ("host", "hubspot-emulator"),
    "AIRFLOW_CONN_AWS_DEFAULT": ("endpoint_url", "moto"),
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, Any]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=value form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _named_volumes(service: dict[str, Any]) -> set[str]:
    names = set()
    for volume in service.get("volumes", []):
        source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
        if source and not source.startswith((".", "/", "$", "~")):
            names.add(source)
    return names


def _port(url: str) -> str:
    match = re.search(r":(\d+)", url.split("//", 1)[-1])
    assert match, f"no port in {url}"
    return match.group(1)


class TestDockerCompose:
    @pytest.mark.parametrize("name", [*AIRFLOW_SERVICES, "postgres", "redis"])
    def test_service_exists(self, services, name):
        assert name in services

    @pytest.mark.parametrize("name", AIRFLOW_SERVICES)
    def test_airflow_service_uses_common_image_and_env(self, compose, services, name):
        common = compose["x-airflow-common"]
        service = services[name]
        assert service["image"] == common["image"]
        assert service["build"] == common["build"]
        assert service["volumes"] == common["volumes"]
        env = _env(service)
        for key, value in _env(common).items():
            assert env.get(key) == value, f"{name} overrides or lacks {key}"

    def test_every_named_volume_is_declared(self, compose, services):
        declared = set(compose.get("volumes") or {})
        used = set().union(*(_named_volumes(s) for s in services.values()))
        assert used, "expected named volumes (postgres data, logs)"
        assert used <= declared, f"undeclared volumes: {used - declared}"

    def test_depends_on_targets_exist(self, services):
        for name, service in services.items():
            depends = service.get("depends_on") or {}
            targets = depends if isinstance(depends, list) else list(depends)
            missing = [t for t in targets if t not in services]
            assert not missing, f"{name} depends on unknown services {missing}"

    @pytest.mark.parametrize(
        "key",
        [
            pytest.param("AIRFLOW__API_AUTH__JWT_SECRET", id="jwt-secret"),
            pytest.param("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", id="execution-api-url"),
            pytest.param("AIRFLOW__CORE__EXECUTOR", id="executor"),
            pytest.param("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", id="database"),
        ],
    )
    def test_same_setting_for_every_airflow_service(self, services, key):
        values = {name: _env(services[name]).get(key) for name in AIRFLOW_SERVICES}
        assert None not in values.values(), f"{key} missing in {[n for n, v in values.items() if v is None]}"
        assert len(set(values.values())) == 1, values

    def test_init_creates_the_partner_central_writes_pool(self, services):
        # apply_partner_central runs in this pool; a missing pool means the task is never scheduled.
        command = " ".join(services["airflow-init"]["command"])
        assert "pools set partner_central_writes 1" in command

    def test_jwt_secret_comes_from_env_with_default(self, services):
        secret = _env(services["airflow-scheduler"])["AIRFLOW__API_AUTH__JWT_SECRET"]
        assert re.fullmatch(r"\$\{[A-Z_]+:-.+\}", secret), secret

    def test_execution_api_points_at_the_api_server(self, services):
        url = _env(services["airflow-worker"])["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
        assert url.startswith("http://airflow-apiserver:")
        assert url.rstrip("/").endswith("/execution")
        assert services["airflow-apiserver"]["command"] == "api-server"
        published = [str(p).rsplit(":", 1)[-1] for p in services["airflow-apiserver"]["ports"]]
        assert _port(url) in published

    @pytest.mark.parametrize("path", ["/opt/airflow/include", "/opt/airflow/plugins"])
    def test_pythonpath_and_mounts(self, services, path):
        for name in AIRFLOW_SERVICES:
            service = services[name]
            assert path in _env(service)["PYTHONPATH"].split(":"), name
            assert any(v.endswith(f":{path}") for v in service["volumes"]), f"{name} does not mount {path}"

    @pytest.mark.parametrize("name", OFFLINE_SERVICES)
    def test_offline_services_exist_under_profile(self, services, name):
        service = services[name]
        assert service.get("profiles") == ["offline"]

    @pytest.mark.parametrize(
        ("name", "module"),
        [
            pytest.param("partner-central-emulator", "emulators.partner_central", id="partner-central"),
            pytest.param("hubspot-emulator", "emulators.hubspot", id="hubspot"),
        ],
    )
    def test_emulators_run_on_the_project_image(self, compose, services, name, module):
        service = services[name]
        assert service["image"] == compose["x-airflow-common"]["image"]
        command = service.get("entrypoint") or service.get("command")
        assert command[:3] == ["python", "-m", module]
        assert "0.0.0.0" in command
        assert (ROOT / module.replace(".", "/") / "__main__.py").exists()

    @pytest.mark.parametrize(
        ("conn_var", "target"), list(OFFLINE_CONNECTIONS.items()), ids=list(OFFLINE_CONNECTIONS)
    )
    def test_connections_reference_offline_services(self, services, conn_var, target):
        field, service_name = target
        service = services[service_name]
        command = service.get("entrypoint") or service.get("command")
        for name in AIRFLOW_SERVICES:
            conn = json.loads(_env(services[name])[conn_var])
            url = conn.get(field) or conn.get("extra", {}).get(field)
            assert url, f"{conn_var} has no {field}"
            assert url.startswith(f"http://{service_name}:"), url
            assert _port(url) in [str(part) for part in command], f"{url} does not match {command}"

    def test_partner_central_connection_shape(self, services):
        conn = json.loads(_env(services["airflow-worker"])["AIRFLOW_CONN_PARTNER_CENTRAL_DEFAULT"])
        assert conn["conn_type"] == "aws"
        assert conn["extra"]["region_name"] == "us-east-1"
        assert conn["extra"]["catalog"] in ("AWS", "Sandbox")


class TestDockerfile:
    @pytest.fixture(scope="class")
    def dockerfile(self) -> str:
        return (ROOT / "docker" / "Dockerfile").read_text()

    def test_base_image(self, dockerfile):
        assert re.search(r"^FROM apache/airflow:3\.3\.2-python3\.11\s*$", dockerfile, re.M)

    def test_installs_requirements_lock(self, dockerfile):
        assert re.search(r"^COPY .*requirements\.lock", dockerfile, re.M)
        assert re.search(r"^RUN pip install .*-r \S*requirements\.lock", dockerfile, re.M)

    def test_compose_builds_this_dockerfile(self, compose):
        build = compose["x-airflow-common"]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == (ROOT / "docker" / "Dockerfile")

    def test_lock_pins_airflow_of_base_image(self):
        assert "apache-airflow==3.3.2" in (ROOT / "requirements.lock").read_text()
