"""What every page shares: the request context, navigation, banners, time formatting, CSV export.

A page is a function ``render(ctx: PageContext) -> None``; app.py builds the context once
per run (settings, engine, viewer, mapping) and catches what a page raises, so a failure
becomes a message, never a stack trace in the browser.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashboards.auth import Viewer
from dashboards.config import DashboardSettings
from dashboards.database import describe_failure
from dashboards.quality import load_cards, quality_sentence
from dashboards.queries import SYNTHETIC_PREFIX, ConfidenceCount, SessionNotAccessible
from services.common.engagement import EngagementMapping

PAGES: dict[str, str] = {
    "sessions": "Sessions",
    "session": "One session",
    "student": "One student",
    "alerts": "Alerts",
}
ROUTE_KEYS = ("page", "session", "student")
NAV_KEY = "nav_page"
_NAV_GENERATION = "nav_generation"
log = logging.getLogger("dashboards.app")


@dataclass(frozen=True)
class PageContext:
    settings: DashboardSettings
    engine: Engine
    viewer: Viewer
    mapping: EngagementMapping

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.display_timezone)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def when(self, moment: datetime, fmt: str = "%a %d %b %Y %H:%M") -> str:
        return self.local(moment).strftime(fmt)

    def is_live(self, ended_at: datetime, now: datetime | None = None) -> bool:
        """A session is live while its newest event is at most DASHBOARD_LIVE_WITHIN_SECONDS old."""
        age = (now or datetime.now(UTC)) - ended_at
        return age <= timedelta(seconds=self.settings.live_within_seconds)

    def zone_caption(self) -> str:
        return f"Times are in **{plain(self.settings.display_timezone)}**, the campus's time zone (`DASHBOARD_DISPLAY_TIMEZONE`)."


@contextmanager
def failures_as_messages(settings: DashboardSettings) -> Iterator[None]:
    """Whatever a page raises becomes a message on it; the stack trace goes to the server's log only.
    (Streamlit's rerun and stop are BaseExceptions and pass through.)"""
    try:
        yield
    except SessionNotAccessible as exc:
        st.error(plain(exc))
    except SQLAlchemyError as exc:
        log.exception("database error")
        st.error(f"{plain(describe_failure(settings.database_url, exc))} Try again in a moment.")
    except Exception as exc:
        log.exception("page failed")
        st.error(f"This page failed ({type(exc).__name__}); the details are in the dashboard's log.")


# --- navigation: st.session_state["route"] is the truth; the URL mirrors it -------------------


def current_route() -> dict[str, str]:
    """The route of this browser session; the first run takes it from the URL's query parameters."""
    if "route" not in st.session_state:
        params = st.query_params
        route = {k: str(params[k]) for k in ROUTE_KEYS if params.get(k)}
        if route.get("page") not in PAGES:
            route["page"] = "session" if route.get("session") else "sessions"
        st.session_state["route"] = route
    return dict(st.session_state["route"])


def nav_key() -> str:
    """The key of the sidebar's page radio: each switch of page by a button starts a new one.

    Why not move the radio in place: while a live page redraws itself on a timer, a redraw that
    the browser asked for before it had shown the switch carries the radio's old page, which
    Streamlit then takes as the user's choice and so undoes the switch. A radio under a new key
    has no old value in the browser."""
    generation = int(st.session_state.get(_NAV_GENERATION, 0))
    return f"{NAV_KEY}_{generation}" if generation else NAV_KEY


def go(page: str, **ids: str) -> None:
    """Switch page (in a button's on_click) or change the ids of the current page; other ids are kept."""
    route = current_route()
    route.update({k: v for k, v in ids.items() if v})
    if route["page"] != page:
        # the sidebar's radio reads its value from here; only a callback (which runs before the
        # radio exists in this run) may move it, and only callbacks switch pages
        st.session_state[_NAV_GENERATION] = int(st.session_state.get(_NAV_GENERATION, 0)) + 1
        st.session_state[nav_key()] = page
    route["page"] = page
    st.session_state["route"] = route


def open_button(
    label: str,
    *,
    page: str,
    id_name: str,
    choice_key: str,
    key: str,
    resolve: Callable[[Any], str] | None = None,
) -> None:
    """A button opening ``page`` for what the select box ``choice_key`` holds when it is clicked.

    The value is read in the callback, not bound when the button is drawn, so a choice and a
    click that arrive together open what was chosen.
    """

    def open_chosen() -> None:
        value = st.session_state.get(choice_key)
        if value is not None:
            go(page, **{id_name: resolve(value) if resolve else str(value)})

    st.button(label, on_click=open_chosen, key=key)


def mirror_route_in_url(route: dict[str, str]) -> None:
    wanted = {k: route[k] for k in ROUTE_KEYS if route.get(k)}
    if dict(st.query_params) != wanted:
        st.query_params.from_dict(wanted)


# --- text from the database or the URL, shown where Streamlit reads markdown ---------------

_MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|<>~$:=")


def plain(text: object) -> str:
    """``text`` with every markdown character escaped, so an id or a name in a URL or in the
    database shows as typed and can never become a link, an image or a formula."""
    return "".join(f"\\{c}" if c in _MARKDOWN_SPECIALS else c for c in str(text))


# --- what the numbers are ------------------------------------------------------------------


def mapping_caption(mapping: EngagementMapping) -> str:
    return (
        f"Engagement mapping **{plain(mapping.name)}** (digest `{mapping.digest}`): engaged when a "
        f"behaviour's weight ≥ {mapping.engaged_threshold:g}; alert when engagement < "
        f"{mapping.alert_below:g} for ≥ {mapping.alert_minutes} min. See docs/engagement.md."
    )


def model_banner(versions: Iterable[tuple[str, bool]], ctx: PageContext | None = None) -> None:
    """Which model made the page's numbers and how often it is right; plainly, when the numbers do
    not come from a trained recogniser."""
    versions = set(versions)
    extra = tuple(Path(p.strip()) for p in (ctx.settings.model_cards if ctx else "").split(",") if p.strip())
    cards = load_cards(extra)
    for version in sorted(v for v, trained in versions if trained and not v.startswith(SYNTHETIC_PREFIX)):
        measured, sentence = quality_sentence(version, cards)
        if measured:
            st.info(plain(sentence), icon=":material/fact_check:")
        else:
            st.warning(plain(sentence), icon=":material/help:")
    synthetic = sorted(v for v, _ in versions if v.startswith(SYNTHETIC_PREFIX))
    untrained = sorted(v for v, trained in versions if not trained and not v.startswith(SYNTHETIC_PREFIX))
    if synthetic:
        st.warning(
            f"Synthetic data ({plain(', '.join(synthetic))}): these events were generated by "
            "`classroom dashboard generate-semester`, not recognised from any camera. "
            "No real student's behaviour is shown.",
            icon=":material/science:",
        )
    if untrained:
        st.error(
            f"Untrained model ({plain(', '.join(untrained))}): these events come from a checkpoint that was "
            "never trained. Their labels are not behaviour recognition; they only show that the pipeline "
            "runs.",
            icon=":material/warning:",
        )


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


# --- low confidence: the same threshold, columns and legend on every page ----------------------

LOW_SHARE = "low-confidence events (%)"
MOSTLY_LOW = "mostly low-confidence"
MOSTLY = 0.5  # a row is marked when at least half of the events behind it are low-confidence


def low_confidence_columns(shares: Sequence[float | None]) -> dict[str, list[object]]:
    """A table's two low-confidence columns from each row's share (0..1) of low-confidence events:
    the share in %, and whether the row is built mostly from them."""
    return {
        LOW_SHARE: [None if s is None else round(100 * s, 1) for s in shares],
        MOSTLY_LOW: [s is not None and s >= MOSTLY for s in shares],
    }


def low_confidence_caption(
    ctx: PageContext, counts: Iterable[ConfidenceCount], *, behind: str, elsewhere: str = ""
) -> None:
    """The legend of the low-confidence columns, with how many of the events ``behind`` the page's
    numbers are low-confidence; ``elsewhere`` names where else the page marks them."""
    counts = list(counts)
    low, events = sum(c.low for c in counts), sum(c.events for c in counts)
    st.caption(
        f"Low confidence: {low:,} of {events:,} events ({percent(low / events if events else None)}) "
        f"{behind} name their behaviour with a confidence below {ctx.settings.low_confidence_below:g} "
        f"(`DASHBOARD_LOW_CONFIDENCE_BELOW`). *{LOW_SHARE}* is each row's share of them; a row where it "
        f"is at least {percent(MOSTLY)} is ticked *{MOSTLY_LOW}*: read its numbers as guesses.{elsewhere}"
    )


def low_confidence_config() -> dict[str, Any]:
    """How st.dataframe shows the low-confidence columns."""
    return {
        LOW_SHARE: st.column_config.NumberColumn(LOW_SHARE, format="%.1f"),
        MOSTLY_LOW: st.column_config.CheckboxColumn(
            MOSTLY_LOW, help=f"at least {percent(MOSTLY)} of the events behind this row are low-confidence"
        ),
    }


# --- tables ----------------------------------------------------------------------------------


def marked_table(frame: Any, key: str, columns: dict[str, Any] | None = None) -> None:
    """A full-width table without its index whose low-confidence columns show as on every page;
    ``columns``: the page's own column settings besides them."""
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={**(columns or {}), **low_confidence_config()},
        key=key,
    )


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV for spreadsheets; text cells that a spreadsheet would run as a formula are quoted with '."""
    safe = frame.copy()
    for column in safe.columns:
        # text columns are object or (pandas 3) str dtype: test for "not numbers", not for object
        if not (
            pd.api.types.is_numeric_dtype(safe[column]) or pd.api.types.is_datetime64_any_dtype(safe[column])
        ):
            safe[column] = (
                safe[column]
                .astype(object)
                .map(lambda v: f"'{v}" if isinstance(v, str) and v.startswith(_FORMULA_STARTS) else v)
            )
    buffer = io.StringIO()
    safe.to_csv(buffer, index=False, float_format="%.4f")
    return buffer.getvalue().encode("utf-8")


def download_csv(
    frame: pd.DataFrame, *, label: str, file_name: str, key: str, **context: str | Sequence[str]
) -> None:
    """A CSV download of ``frame`` with ``context`` columns first (session, course, date, model, each
    one value or one per row; a column of ``frame`` of the same name gives way): a file that leaves
    the dashboard still says what it is about."""
    out = frame.drop(columns=[c for c in context if c in frame.columns])
    for position, (name, value) in enumerate(context.items()):
        out.insert(position, name, value if isinstance(value, str) else list(value))
    st.download_button(
        label, data=csv_bytes(out), file_name=file_name, mime="text/csv", key=key, on_click="ignore"
    )


def sort_frame(frame: pd.DataFrame, column: str, descending: bool) -> pd.DataFrame:
    """Sort with missing values last whichever the direction (a student never seen sorts last)."""
    return frame.sort_values(column, ascending=not descending, na_position="last", kind="stable").reset_index(
        drop=True
    )
