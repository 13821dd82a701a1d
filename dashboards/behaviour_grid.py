"""The student x time view of a session: events binned into cells of whole seconds.

A session of 40 students and 90 minutes holds up to a few hundred thousand events at the
recogniser's window rate, far more than a chart can draw; the view therefore cuts the
session into at most ``MAX_COLUMNS`` columns of equal whole seconds and gives each
(student, column) cell the behaviour that covers most of its observed seconds. An event
that spans several columns counts in each for the seconds it overlaps.

A cell's confidence is the time-weighted mean confidence of the events of its behaviour in
it; a cell is low-confidence when that is below the configured threshold
(DASHBOARD_LOW_CONFIDENCE_BELOW). Selecting a cell names a student and a second; the event
that covers that second explains itself (top five, attention) through queries.event_at.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from services.common.vocabulary import BEHAVIOUR_INDEX

MAX_COLUMNS = 240
CELL_COLUMNS = ["student", "column", "start", "end", "behaviour", "seconds", "confidence", "low"]


def column_seconds(duration: timedelta, max_columns: int = MAX_COLUMNS) -> int:
    """The width of one column: whole seconds, at least 1, so a session fits in ``max_columns``."""
    return max(1, math.ceil(duration.total_seconds() / max_columns))


def _pieces(spans: pd.DataFrame, origin: datetime, width: int) -> pd.DataFrame:
    """One row per (event, column it overlaps), with the seconds of the overlap."""
    start = (spans["start"] - pd.Timestamp(origin)).dt.total_seconds().to_numpy()
    end = np.maximum((spans["end"] - pd.Timestamp(origin)).dt.total_seconds().to_numpy(), start)
    first = np.floor(start / width).astype(np.int64)
    last = np.maximum(first, np.ceil(end / width).astype(np.int64) - 1)
    counts = last - first + 1
    pieces = spans.loc[spans.index.repeat(counts)].reset_index(drop=True)
    offsets = np.arange(len(pieces)) - np.repeat(np.cumsum(counts) - counts, counts)
    column = np.repeat(first, counts) + offsets
    overlap = np.minimum(np.repeat(end, counts), (column + 1) * width) - np.maximum(
        np.repeat(start, counts), column * width
    )
    pieces["column"] = column
    pieces["seconds"] = np.maximum(overlap, 1e-3)  # an instant still counts, barely
    return pieces


def grid_cells(spans: pd.DataFrame, *, origin: datetime, width: int, low_below: float) -> pd.DataFrame:
    """Cells of the student x time view from event spans (student, start, end, behaviour, confidence).

    Ties between behaviours go to the one earlier in the paper's label order, so the result
    does not depend on the order of the events."""
    if spans.empty:
        return pd.DataFrame(columns=CELL_COLUMNS)
    pieces = _pieces(spans, origin, width)
    pieces["weighted"] = pieces["confidence"] * pieces["seconds"]
    per_label = (
        pieces.groupby(["student", "column", "behaviour"], as_index=False)[["seconds", "weighted"]]
        .sum()
        .assign(order=lambda f: f["behaviour"].map(BEHAVIOUR_INDEX).fillna(len(BEHAVIOUR_INDEX)))
        .sort_values(["student", "column", "seconds", "order"], ascending=[True, True, False, True])
    )
    observed = per_label.groupby(["student", "column"])["seconds"].sum()
    cells = per_label.drop_duplicates(["student", "column"]).reset_index(drop=True)
    cells["confidence"] = cells["weighted"] / cells["seconds"]
    cells["seconds"] = observed.loc[list(zip(cells["student"], cells["column"], strict=True))].to_numpy()
    cells["start"] = pd.Timestamp(origin) + pd.to_timedelta(cells["column"] * width, unit="s")
    cells["end"] = cells["start"] + pd.Timedelta(seconds=width)
    cells["low"] = cells["confidence"] < low_below
    return cells[CELL_COLUMNS]


def low_confidence_share(spans: pd.DataFrame, low_below: float) -> pd.Series:
    """Per student, the share of their events (0..1) whose confidence is below ``low_below``."""
    if spans.empty:
        return pd.Series(dtype=float)
    return (spans["confidence"] < low_below).groupby(spans["student"]).mean()
