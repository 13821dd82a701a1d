"""The page benchmark's choice of cases: the heaviest alert range the page answers, and refusals flagged."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from dashboards.auth import Role
from dashboards.queries import CLASS_SESSION, MAX_ALERT_SESSIONS
from dashboards.tools import bench
from dashboards.tools.semester import SemesterPlan, generate_semester


def test_the_widest_alert_range_stays_within_the_pages_limit(hand_db, monkeypatch):
    _, engine = hand_db  # sessions on 3, 4 and 5 March 2025, one a day
    assert bench._widest_alert_days(engine, None, "UTC") == (date(2025, 3, 3), date(2025, 3, 5), 3)
    assert bench._widest_alert_days(engine, ["PHYS"], "UTC") == (date(2025, 3, 4), date(2025, 3, 4), 1)
    assert bench._widest_alert_days(engine, ["nothing"], "UTC") is None
    monkeypatch.setattr(bench, "MAX_ALERT_SESSIONS", 2)
    assert bench._widest_alert_days(engine, None, "UTC") == (date(2025, 3, 4), date(2025, 3, 5), 2)
    monkeypatch.setattr(bench, "MAX_ALERT_SESSIONS", 0)
    assert bench._widest_alert_days(engine, None, "UTC") is None


def test_days_are_counted_in_the_display_time_zone(hand_db):
    _, engine = hand_db  # every session starts at 09:00 UTC: 23:00 the same day in Kiritimati (UTC+14)
    assert bench._widest_alert_days(engine, None, "Pacific/Kiritimati") == (
        date(2025, 3, 3),
        date(2025, 3, 5),
        3,
    )
    # 09:00 UTC is 23:00 the day before in Honolulu (UTC-10)
    assert bench._widest_alert_days(engine, None, "Pacific/Honolulu") == (
        date(2025, 3, 2),
        date(2025, 3, 4),
        3,
    )


@pytest.mark.slow
def test_a_range_the_alerts_page_refuses_is_reported_not_timed(tmp_path):
    from dashboards.database import open_engine

    url = f"sqlite:///{tmp_path / 'wide.db'}"
    # 50 rooms x 5 slots x 2 days = 500 sessions, more than the alerts page takes at once
    plan = SemesterPlan(
        rooms=50, weeks=1, days_per_week=2, slots_per_day=5, students_min=1, students_max=1, population=50
    )
    generate_semester(url, plan)
    engine = open_engine(url)
    with engine.connect() as connection:
        # a session whose only student was absent has no events, so it is not stored
        per_day = dict(
            connection.execute(
                select(func.date(CLASS_SESSION.c.started_at), func.count()).group_by(
                    func.date(CLASS_SESSION.c.started_at)
                )
            ).all()
        )
    assert sum(per_day.values()) > MAX_ALERT_SESSIONS >= per_day["2025-09-02"]
    with bench._temporary_user(engine, "bench-admin", Role.ADMIN):
        refused = bench.PageCase(
            "alerts (both days)", {"page": "alerts"}, {"alerts_dates": (date(2025, 9, 1), date(2025, 9, 2))}
        )
        _, problems = bench._time_case(url, "bench-admin", refused, repeats=1)
        widest = [c for c in bench.page_cases(engine, course_ids=None) if c.name.startswith("alerts (widest")]
        _, widest_problems = bench._time_case(url, "bench-admin", widest[0], repeats=1)
    engine.dispose()
    assert problems and f"select {sum(per_day.values())} sessions" in problems[0]
    assert widest[0].name == f"alerts (widest, {per_day['2025-09-02']} sessions)" and widest_problems == ()
