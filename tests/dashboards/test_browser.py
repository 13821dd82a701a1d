"""End to end in headless Chromium: `streamlit run` on a free port, log in, open a session, and check
that one student's numbers on the page equal what the database holds; then, on a session that is
still recording: the login survives a reload, times are in the campus's zone, the session is
marked live and redraws itself as events arrive, the model's measured quality is named,
low-confidence events are marked, selecting a cell of the student x time view shows that
second's top five and attention, and the event CSV has its context columns and neutralised cells;
and on every other page (sessions, one student, alerts): the model and its quality and the
campus's zone are named, low-confidence events are counted and their rows ticked, each table's
CSV starts with session, course, date and model and has units in its headers, and the sessions
list redraws itself while a session in it is live.

Needs the Debian packages chromium and chromium-driver (``make browser``). Screenshots go to
the test's temporary folder, and also to $DASHBOARD_SCREENSHOT_DIR when it is set (that is
how docs/images/dashboard-*.png were made).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from sqlmodel import Session

from dashboards import queries
from dashboards.auth import Role, Viewer
from dashboards.cli import serve_ready
from dashboards.database import open_engine
from dashboards.quality import load_cards
from dashboards.tools.semester import SemesterPlan, generate_semester
from dashboards.views.common import percent
from models.serving.committed import DEFAULT_CHECKPOINT
from models.serving.inference import file_digest
from services.common.db.crud import record_events
from services.common.db.models import BehaviourEvent
from services.common.engagement import EngagementMapping
from services.common.vocabulary import BEHAVIOURS, NUM_KEYPOINTS

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ADMIN, PASSWORD = "demo-admin", "browser-test-password"
PLAN = SemesterPlan(
    rooms=2, weeks=1, days_per_week=2, slots_per_day=2, students_min=20, students_max=30, population=80
)

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]


def _served(database_url: str) -> Iterator[tuple[str, str]]:
    """Serve the dashboard on ``database_url`` until the test ends: (base URL, database URL)."""
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
def dashboard(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, database URL) of a dashboard served by `streamlit run` on generated data."""
    database_url = f"sqlite:///{tmp_path / 'browser.db'}"
    generate_semester(database_url, PLAN)
    yield from _served(database_url)


LIVE_SESSION, CAMPUS_ZONE = "live-session", "Europe/Berlin"
LIVE_STUDENTS = ("live-a", "=1+1", "live-c")  # live-a: every event low-confidence; =1+1: formula-like id
# live-d was there first: 96 events on the phone, every one low-confidence, before the others came;
# its 6.4 minutes make an alert of the student and one of the class
ALERT_STUDENT, ALERT_SECONDS = "live-d", 384
LOW_STUDENTS = ("live-a", ALERT_STUDENT)


def live_events(
    room: str,
    course: str,
    start: datetime,
    seconds: int,
    model: str,
    students: tuple[str, ...] = LIVE_STUDENTS,
) -> list[BehaviourEvent]:
    """4 s events of ``students`` with top five and attention, as the store writes them."""
    events = []
    for student in students:
        for k in range(seconds // 4):
            begin = start + timedelta(seconds=4 * k)
            label = "phone_usage" if student == ALERT_STUDENT else BEHAVIOURS[(k // 5) % 3 + 4]
            confidence = 0.3 if student in LOW_STUDENTS else 0.9
            top5 = [[label, confidence], *[[b, (1 - confidence) / 4] for b in BEHAVIOURS[:4]]]
            attention = {
                "keypoints": [round((i + 1) / 153, 5) for i in range(NUM_KEYPOINTS)],  # sums to 1
                "frames": [round(1 / 32, 5)] * 32,
                "top_keypoints": ["right_wrist"],
            }
            events.append(
                BehaviourEvent(
                    event_id=f"{LIVE_SESSION}:{student}:{begin.timestamp()}",
                    created_at=begin + timedelta(seconds=4),
                    session_id=LIVE_SESSION,
                    classroom_id=room,
                    course_id=course,
                    camera_id="front",
                    student_id=student,
                    seat_id="",
                    window_start=begin - timedelta(seconds=4),
                    window_end=begin + timedelta(seconds=4),
                    segment_start=begin,
                    segment_end=begin + timedelta(seconds=4),
                    label=label,
                    confidence=confidence,
                    top5=json.dumps(top5),
                    attention=json.dumps(attention),
                    model_version=model,
                    model_trained=True,
                )
            )
    return events


def add_live_events(
    database_url: str, start: datetime, seconds: int, students: tuple[str, ...] = LIVE_STUDENTS
) -> int:
    engine = open_engine(database_url)
    try:
        viewer = Viewer(ADMIN, Role.ADMIN)
        mapping, filters = EngagementMapping(), queries.SessionFilter()
        some = queries.list_sessions(engine, viewer, mapping, filters, limit=1).rows[0]
        model = (
            f"proposed-mstgcn@{file_digest(DEFAULT_CHECKPOINT)}"  # the served checkpoint, which has a card
        )
        events = live_events(some.classroom_id, some.course_id, start, seconds, model, students)
        with Session(engine) as session:
            record_events(session=session, events=events)
            session.commit()
    finally:
        engine.dispose()
    return len(events)


@pytest.fixture()
def live_dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """(base URL, database URL): generated data plus a session recording now, campus zone Berlin."""
    database_url = f"sqlite:///{tmp_path / 'live.db'}"
    generate_semester(database_url, PLAN)
    start = datetime.now(UTC) - timedelta(seconds=120)
    add_live_events(database_url, start - timedelta(seconds=ALERT_SECONDS), ALERT_SECONDS, (ALERT_STUDENT,))
    add_live_events(database_url, start, 120)
    for name, value in {
        "DASHBOARD_DISPLAY_TIMEZONE": CAMPUS_ZONE,
        "DASHBOARD_LIVE_WITHIN_SECONDS": "3600",  # a slow machine must not see it finish mid-test
        "DASHBOARD_LIVE_REFRESH_SECONDS": "3",
        "DASHBOARD_LOGIN_SECRET": "browser-test-signing-key",
    }.items():
        monkeypatch.setenv(name, value)
    yield from _served(database_url)


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
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
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


def _log_in(driver, base_url: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(base_url)
    username = _wait_for(
        driver, lambda d: d.find_element(By.CSS_SELECTOR, 'input[aria-label="Username"]'), "login form"
    )
    username.send_keys(ADMIN)
    driver.find_element(By.CSS_SELECTOR, 'input[aria-label="Password"]').send_keys(PASSWORD, Keys.ENTER)


def _body(driver) -> str:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def _button(driver, label: str):  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    return _wait_for(
        driver,
        lambda d: next(b for b in d.find_elements(By.CSS_SELECTOR, "button") if b.text.strip() == label),
        f"the {label!r} button",
    )


def _page_text(driver, title: str, *needed: str, what: str, timeout: float = 30.0) -> str:  # type: ignore[no-untyped-def]
    """The page's text, read once, when its title is ``title`` and it holds every one of ``needed``.

    One reading that holds them all: a live page redraws itself every few seconds, and a reading
    taken while it does can miss the elements not yet drawn again."""
    last = [""]

    def complete(d) -> str | None:  # type: ignore[no-untyped-def]
        last[0] = text = _body(d)
        return text if _title(d) == title and all(n in text for n in needed) else None

    try:
        return _wait_for(driver, complete, what, timeout)  # type: ignore[no-any-return]
    except AssertionError:
        missing = [n for n in needed if n not in last[0]]
        raise AssertionError(f"timed out waiting for {what}: the page lacks {missing}") from None


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


def _click(driver, find, what: str) -> None:  # type: ignore[no-untyped-def]
    """Click what ``find`` returns, again if a redraw of the live page replaced it meanwhile."""
    from selenium.webdriver.common.action_chains import ActionChains

    def clicked(d) -> bool:  # type: ignore[no-untyped-def]
        element = find(d)
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        ActionChains(d).move_to_element(element).click().perform()
        return True

    _wait_for(driver, clicked, what)


def _select_cell_of(driver, student: str) -> None:  # type: ignore[no-untyped-def]
    """Click a cell of ``student`` in the student x time view until the page explains its event.

    The click goes to the cell's own element (Vega's svg renderer finds the datum from it), so a
    redraw that moves cells cannot redirect it; one that lands while the live page redraws can be
    lost, so it is repeated every few seconds."""
    from selenium.webdriver.common.by import By

    last_click = [0.0]

    def explained(d) -> bool:  # type: ignore[no-untyped-def]
        text = _body(d)
        if f"student {student}" in text and "Attention over keypoints" in text:
            return True
        if time.monotonic() - last_click[0] > 4:
            cell = next(
                p
                for p in d.find_elements(By.CSS_SELECTOR, "svg g.mark-rect path")
                if f"student: {student}" in (p.get_attribute("aria-label") or "")
            )
            d.execute_script(
                "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true, view: window}))", cell
            )
            last_click[0] = time.monotonic()
        return False

    _wait_for(driver, explained, f"the event of a cell of {student} in the student x time view", 60)


def _download(driver, label: str, downloads: Path, pattern: str) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    """Click the download button ``label`` and read the CSV it saves (named like ``pattern``).

    A click that lands while a live page redraws itself can ask for the file of the drawing that
    was just replaced, which is gone; the click is then repeated."""
    before = set(downloads.glob(pattern))
    last_click = [0.0]

    def saved(d) -> list[Path]:  # type: ignore[no-untyped-def]
        found = [p for p in downloads.glob(pattern) if p not in before and p.stat().st_size > 0]
        if not found and time.monotonic() - last_click[0] > 8:
            _click(d, lambda d: _button(d, label), f"the {label!r} button")
            last_click[0] = time.monotonic()
        return found

    files = _wait_for(driver, saved, f"the downloaded {pattern}", 60)
    return list(csv.DictReader(files[0].read_text().splitlines()))


def _low_confidence_legend(text: str) -> tuple[int, int]:
    """(low, events) from the page's legend: 'Low confidence: 126 of 186 events ...'."""
    found = re.search(r"Low confidence: ([\d,]+) of ([\d,]+) events", text)
    assert found, "no low-confidence legend on the page"
    return int(found[1].replace(",", "")), int(found[2].replace(",", ""))


def _trust_marks() -> tuple[str, ...]:
    """What every page shows: the model and its card's top-1, the campus's zone, the legend of the
    low-confidence columns."""
    served = load_cards()[file_digest(DEFAULT_CHECKPOINT)]
    return (
        "Model proposed-mstgcn@",
        f"right on {served.top1:.0f} %",
        f"Times are in {CAMPUS_ZONE}",
        "Low confidence:",
        "DASHBOARD_LOW_CONFIDENCE_BELOW",
        "mostly low-confidence",
        "Download CSV",
    )


CONTEXT = ["session", "course", "date", "model"]


def test_a_live_session_earns_trust(live_dashboard, browser, tmp_path):
    from selenium.webdriver.common.by import By

    base_url, database_url = live_dashboard
    _log_in(browser, f"{base_url}/?page=session&session={LIVE_SESSION}")
    _wait_for(browser, lambda d: _title(d) == "One session" and "Live" in _body(d), "the live session")

    browser.refresh()  # the login survives a reload; the URL keeps the route
    served = load_cards()[file_digest(DEFAULT_CHECKPOINT)]
    _page_text(
        browser,
        "One session",
        "Live",
        f"Times are in {CAMPUS_ZONE}",
        f"({CAMPUS_ZONE})",
        "Model proposed-mstgcn@",
        f"right on {served.top1:.0f} %",  # its card's top-1
        "Low confidence: 126 of 186 events",  # every event of live-a (30) and live-d (96)
        what="the session after a reload",
    )
    assert not browser.find_elements(By.CSS_SELECTOR, 'input[aria-label="Password"]')

    start = datetime.now(UTC)
    added = add_live_events(database_url, start, 8)
    _wait_for(browser, lambda d: f"of {186 + added} events" in _body(d), "the page redrawing itself", 30)

    _select_cell_of(browser, "live-a")
    _page_text(
        browser,
        "One session",
        "Top five",
        "Attention over the window's frames",
        "Low confidence: the model gave this label 30 %",
        what="the event of live-a explained",
    )
    _screenshot(browser, tmp_path, "dashboard-live-session.png")

    rows = _download(
        browser, "Download CSV (every event)", tmp_path / "downloads", f"session-{LIVE_SESSION}-events*.csv"
    )
    assert list(rows[0])[:4] == ["session", "course", "date", "model"]
    # a formula-like id is neutralised
    assert {r["student"] for r in rows} == {"live-a", "'=1+1", "live-c", "live-d"}
    assert {r["low confidence (below 0.5)"] for r in rows if r["student"] == "live-a"} == {"True"}
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')

    # a button on the live page that opens another page opens it, though only the live part reran
    _click(browser, lambda d: _button(d, "Open this student across sessions"), "the student's button")
    _wait_for(browser, lambda d: _title(d) == "One student", "the student's page")


def test_every_other_page_earns_trust_too(live_dashboard, browser, tmp_path):
    from selenium.webdriver.common.by import By

    base_url, database_url = live_dashboard
    downloads = tmp_path / "downloads"
    trust_marks = _trust_marks()

    # the sessions list: the live session is marked, and the list redraws itself as events arrive
    _log_in(browser, f"{base_url}/?page=sessions")
    text = _page_text(
        browser,
        "Sessions",
        "1 live",
        "this list redraws itself every 3 s",
        *trust_marks,
        what="the sessions list",
    )
    low, events = _low_confidence_legend(text)
    assert low == 126  # the semester's confidences are 0.55 or more: only live-a's and live-d's are low
    added = add_live_events(database_url, datetime.now(UTC), 8)
    _wait_for(
        browser, lambda d: f"of {events + added:,} events" in _body(d), "the sessions list redrawing itself"
    )
    _screenshot(browser, tmp_path, "dashboard-sessions-live.png")
    rows = _download(browser, "Download CSV", downloads, "sessions-*.csv")
    assert list(rows[0])[:4] == CONTEXT
    assert {f"start ({CAMPUS_ZONE})", "mean engagement (%)", "low-confidence events (%)"} <= set(rows[0])
    live = next(r for r in rows if r["session"] == LIVE_SESSION)
    assert (live["status"], live["mostly low-confidence"]) == ("live", "True")
    assert live["model"].startswith("proposed-mstgcn@") and re.fullmatch(r"\d{4}-\d{2}-\d{2}", live["date"])
    assert {r["mostly low-confidence"] for r in rows if r["session"] != LIVE_SESSION} == {"False"}
    float(live["mean engagement (%)"])  # a plain number
    # opening a session from a list that redraws itself opens it (the most recent: the live one)
    _click(browser, lambda d: _button(d, "Open session"), "the Open session button")
    _wait_for(browser, lambda d: _title(d) == "One session" and "Live" in _body(d), "the live session's page")

    # one student: every event of live-a is low-confidence, so its one session is ticked
    browser.get(f"{base_url}/?page=student&student=live-a")
    text = _page_text(browser, "One student", "of student live-a", *trust_marks, what="live-a's page")
    low, events = _low_confidence_legend(text)
    assert low == events > 30
    rows = _download(browser, "Download CSV", downloads, "student-live-a-sessions-*.csv")
    assert list(rows[0])[:4] == CONTEXT and {r["session"] for r in rows} == {LIVE_SESSION}
    assert (rows[0]["low-confidence events (%)"], rows[0]["mostly low-confidence"]) == ("100.0000", "True")

    # alerts: live-d's 6.4 minutes on the phone alert the student and the class, built on guesses
    browser.get(f"{base_url}/?page=alerts")
    _page_text(browser, "Alerts", "in these alerts' windows", *trust_marks, what="the alerts page")
    rows = _download(browser, "Download CSV", downloads, "alerts-*.csv")
    assert list(rows[0])[:4] == CONTEXT and {r["session"] for r in rows} == {LIVE_SESSION}
    assert {r["who"] for r in rows} >= {"whole class", ALERT_STUDENT}
    assert {r["mostly low-confidence"] for r in rows} == {"True"}
    assert {f"from ({CAMPUS_ZONE})", "mean engagement (%)", "minutes"} <= set(rows[0])
    _screenshot(browser, tmp_path, "dashboard-alerts.png")
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
