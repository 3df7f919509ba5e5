"""The Co-sell page in a real headless browser (Debian's Chromium driven by Selenium) against the stack.

The app is served by uvicorn in this process, mounted as Airflow's API server mounts plugin apps; the
browser carries a token from Airflow's own generator in the UI's ``_token`` cookie, as the Airflow UI's
frame does. Skips, saying why, where Chromium, ChromeDriver or Selenium is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from api_helpers import airflow_api_app, dag_run, token
from scenarios import synced_book

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dags")]

SCREENSHOT = os.environ.get("COSELL_PAGE_SCREENSHOT", "/tmp/cosell_page.png")
HUBSPOT_VALUE = "HubSpot: pricing call on Friday"
PC_VALUE = "Partner Central: architecture workshop first"


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip(
            "no headless browser: Chromium and ChromeDriver not found on PATH "
            "(install Debian's packages: apt-get install -y chromium chromium-driver)"
        )
    return chromium, driver


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium through the system's ChromeDriver (Selenium never downloads one)."""
    chromium, driver_path = _browser_paths()
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (requirements.txt)"
    )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def served_api(airflow_db: None) -> Iterator[str]:
    """The app on a free local port (uvicorn in a thread); yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(airflow_api_app(), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _open_conflict(stack: Any, oid: str) -> str:
    """A pending conflict on the opportunity's next steps, opened as the reconcile run opens them."""
    from cosell_sync.config import load_config
    from cosell_sync.conflict_store import ConflictStore

    deal_id = stack.deal_by_opportunity(oid)["id"]
    store = ConflictStore(stack.aws("dynamodb"), load_config().storage.state_table, "AWS")
    (created,) = store.open(
        [
            {
                "opportunity_id": oid,
                "deal_id": deal_id,
                "field": "next_steps",
                "conflict_type": "SIMULTANEOUS_UPDATE",
                "hubspot_value": HUBSPOT_VALUE,
                "partner_central_value": PC_VALUE,
                "hubspot_timestamp": "2026-02-18T10:00:00.000000Z",
                "partner_central_timestamp": "2026-02-18T10:00:02.000000Z",
            }
        ],
        run_id="manual__page_test",
    )
    return created["conflict_id"]


def test_the_page_shows_a_pending_conflict_the_audit_trail_and_runs_and_resolves(
    sync_stack: Any, served_api: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    oid = synced_book(sync_stack, opportunities=3)[0]
    conflict_id = _open_conflict(sync_stack, oid)
    wait = WebDriverWait(browser, 30)

    # Without the cookie the page is refused; with Airflow's token in it, it loads.
    browser.get(f"{served_api}/cosell/ui")
    assert "Not authenticated" in browser.page_source
    browser.add_cookie({"name": "_token", "value": token(role="admin", username="page-user"), "path": "/"})
    browser.get(f"{served_api}/cosell/ui?record={oid}")

    row = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-conflict-id="{conflict_id}"]'))
    )
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert conflict_id in cells[0]
    assert "SIMULTANEOUS_UPDATE" in cells[0]
    assert oid in cells[1]
    assert cells[2] == "next_steps"
    assert HUBSPOT_VALUE in cells[3]
    assert "2026-02-18T10:00:00" in cells[3]
    assert PC_VALUE in cells[4]
    assert "2026-02-18T10:00:02" in cells[4]
    # the audit trail of the record in the address, and the initial load in the runs table
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#audit tbody tr"))
    assert "CREATE_DEAL" in browser.find_element(By.ID, "audit").text
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#runs tbody tr"))
    assert "success" in browser.find_element(By.ID, "runs").text

    # Resolve with HubSpot's value: confirm, and the page names the queued run
    browser.find_element(
        By.CSS_SELECTOR, f'tr[data-conflict-id="{conflict_id}"] button[data-resolution="USE_HUBSPOT_VALUE"]'
    ).click()
    wait.until(ec.alert_is_present()).accept()
    wait.until(lambda d: "queued" in d.find_element(By.ID, "conflicts-status").text)
    run_id = row.get_attribute("data-run-id")
    assert run_id
    assert run_id in browser.find_element(By.ID, "conflicts-status").text
    run = dag_run("cosell_resolve_conflict", run_id)
    assert run is not None
    assert run.conf["conflict_id"] == conflict_id
    assert run.conf["resolution"] == "USE_HUBSPOT_VALUE"
    assert run.triggering_user_name == "page-user"

    # A dry-run rollback of the record to the time of an audit entry
    entry_time = browser.find_element(By.CSS_SELECTOR, "#audit tbody tr td").text
    browser.find_element(By.CSS_SELECTOR, "#audit tbody tr button").click()
    wait.until(lambda d: "queued" in d.find_element(By.ID, "audit-status").text)
    browser.save_screenshot(SCREENSHOT)
    rollback_id = browser.find_element(By.CSS_SELECTOR, "#audit-status a").text
    run = dag_run("cosell_rollback", rollback_id)
    assert run is not None
    assert run.conf == {
        "opportunity_id": oid,
        "target_timestamp": entry_time,
        "systems": "both",
        "dry_run": True,
    }
