"""The Co-sell API mounted as the API server mounts it, and tokens from Airflow's own token generator."""

from __future__ import annotations

from typing import Any


def airflow_api_app() -> Any:
    """A FastAPI app with the plugins' apps mounted by Airflow's ``init_plugins`` and the auth manager set up.

    The same two calls ``airflow.api_fastapi.app.create_app`` makes for the core API, without the rest of
    the API server (execution API, UI views): the Co-sell app is found through the plugins folder, so this
    also checks the plugin's registration.
    """
    from airflow.api_fastapi.app import init_auth_manager, init_plugins
    from fastapi import FastAPI

    app = FastAPI()
    init_plugins(app)
    init_auth_manager(app)
    return app


def token(role: str = "admin", username: str = "ops-7", expires_in: int = 3600) -> str:
    """A JWT made by the configured auth manager (the simple auth manager here), as ``POST /auth/token`` does.

    Args:
        role: the simple auth manager's role (``viewer``, ``user``, ``op``, ``admin``).
        username: the user name in the token.
        expires_in: seconds until it expires; negative for an expired token.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = get_auth_manager()
    assert isinstance(manager, SimpleAuthManager), f"tests expect the simple auth manager, got {manager}"
    user = SimpleAuthManagerUser(username=username, role=role)
    return manager.generate_jwt(user, expiration_time_in_seconds=expires_in)


def bearer(value: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {value}"}


def dag_run(dag_id: str, run_id: str) -> Any:
    """The DAG run row in Airflow's database (None when absent)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one_or_none()
        if run is not None:
            session.expunge(run)
        return run
