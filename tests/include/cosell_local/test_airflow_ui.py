"""Unit tests for ``make airflow``'s config writing: the airflow.cfg it leaves is what runs."""

from __future__ import annotations

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
