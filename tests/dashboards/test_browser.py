"""End to end in headless Chromium: `streamlit run` on a free port, log in, open a session, and check
that one student's numbers on the page equal what the database holds.

Needs the Debian packages chromium and chromium-driver (``make browser``). Screenshots go to
the test's temporary folder, and also to $DASHBOARD_SCREENSHOT_DIR when it is set (that is
how docs/images/dashboard-*.png were made).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from dashboards import queries
from dashboards.auth import Role, Viewer
from dashboards.cli import serve_ready
from dashboards.database import open_engine
from dashboards.semester import SemesterPlan, generate_semester
from dashboards.views.common import percent
from services.common.engagement import EngagementMapping

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ADMIN, PASSWORD = "demo-admin", "browser-test-password"
PLAN = SemesterPlan(
    rooms=2, weeks=1, days_per_week=2, slots_per_day=2, students_min=20, students_max=30, population=80
)

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture()
def dashboard(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, database URL) of a dashboard served by `streamlit run` on generated data."""
    database_url = f"sqlite:///{tmp_path / 'browser.db'}"
    generate_semester(database_url, PLAN)
    process, port = serve_ready(database_url, 0, demo_admin=(ADMIN, PASSWORD))
    try:
        yield f"http://127.0.0.1:{port}", database_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except Exception:
            process.kill()


@pytest.fixture()
def browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(
            "Chromium is not installed: run `make browser` (Debian packages chromium, chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,2000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for(driver, condition, what: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = condition(driver)
        except Exception:  # elements come and go while Streamlit redraws
            found = None
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _metrics(driver) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    shown = []
    for metric in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'):
        label = metric.find_element(By.CSS_SELECTOR, '[data-testid="stMetricLabel"]').text.strip()
        value = metric.find_element(By.CSS_SELECTOR, '[data-testid="stMetricValue"]').text.strip()
        shown.append((label, value))
    return shown


def _title(driver) -> str:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    titles = driver.find_elements(By.CSS_SELECTOR, "h1")
    return titles[0].text.strip() if titles else ""


def _screenshot(driver, tmp_path: Path, name: str) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    driver.save_screenshot(str(path))
    if os.environ.get("DASHBOARD_SCREENSHOT_DIR"):
        shutil.copy(path, Path(os.environ["DASHBOARD_SCREENSHOT_DIR"]) / name)
    return path


def test_log_in_open_a_session_and_check_a_students_numbers(dashboard, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base_url, database_url = dashboard
    browser.get(base_url)
    username = _wait_for(
        browser, lambda d: d.find_element(By.CSS_SELECTOR, 'input[aria-label="Username"]'), "login form"
    )
    username.send_keys(ADMIN)
    browser.find_element(By.CSS_SELECTOR, 'input[aria-label="Password"]').send_keys(PASSWORD, Keys.ENTER)
    _wait_for(browser, lambda d: _title(d) == "Sessions" and len(_metrics(d)) >= 3, "the Sessions page")
    assert ("Sessions matching", str(PLAN.n_sessions)) in _metrics(browser)
    _screenshot(browser, tmp_path, "dashboard-sessions.png")

    open_button = _wait_for(
        browser,
        lambda d: next(
            b for b in d.find_elements(By.CSS_SELECTOR, "button") if b.text.strip() == "Open session"
        ),
        "the Open session button",
    )
    open_button.click()
    _wait_for(
        browser,
        lambda d: _title(d) == "One session" and "student" in parse_qs(urlparse(d.current_url).query),
        "the session page with a student in its URL",
    )
    _wait_for(browser, lambda d: len(_metrics(d)) >= 10, "the session's and the student's numbers")
    route = parse_qs(urlparse(browser.current_url).query)
    session_id, student_id = route["session"][0], route["student"][0]

    engine = open_engine(database_url)
    try:
        viewer, mapping = Viewer(ADMIN, Role.ADMIN), EngagementMapping()
        rows = {r.student_id: r for r in queries.student_table(engine, viewer, mapping, session_id)}
        newest = queries.list_sessions(engine, viewer, mapping, queries.SessionFilter(), limit=1).rows[0]
    finally:
        engine.dispose()
    assert session_id == newest.session_id  # the list's default choice: the most recent session
    student = rows[student_id]
    shown = dict(_metrics(browser)[5:10])  # the first five are the class's
    assert shown == {
        "Engagement": percent(student.engagement),
        "Engaged share": percent(student.engaged_share),
        "Hand raises": str(student.hand_raises),
        "Phone minutes": f"{student.phone_minutes:.1f}",
        "Observed minutes": f"{student.observed_minutes:.1f}",
    }
    assert dict(_metrics(browser)[:5])["Students present"] == str(len(rows))
    page_text = browser.find_element(By.TAG_NAME, "body").text
    assert "Synthetic data" in page_text and mapping.digest in page_text
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stImage"]')  # no image of a student
    shot = _screenshot(browser, tmp_path, "dashboard-session.png")
    assert shot.stat().st_size > 10_000
