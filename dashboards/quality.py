"""How far to trust a page's numbers: the quality card of the model that produced its events.

Events name their model (``proposed-mstgcn@<digest>``); ``classroom evaluate`` writes a card
per checkpoint (``models/evaluation/card.py``: top-1, macro-F1, on which data, when), and the
committed checkpoints keep theirs beside ``model.pt``. Every page says, next to its numbers,
which model made them and how often that model is right, or that nobody has measured it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from models.serving.committed import CHECKPOINTS as COMMITTED_CARDS  # a path module: no torch


@dataclass(frozen=True)
class Card:
    digest: str
    method: str
    data: str
    test_samples: int
    top1: float
    macro_f1: float
    date: str

    def sentence(self, version: str) -> str:
        return (
            f"Model {version}: right on {self.top1:.0f} % of the behaviour windows of {self.test_samples:,} "
            f"simulated students it never saw in training (macro-F1 {self.macro_f1:.0f} %, {self.data} test "
            f"split, {self.date}; not measured on real classrooms). Read the counts below as estimates: about "
            f"{100 - self.top1:.0f} in 100 events name the wrong behaviour."
        )


def version_digest(model_version: str) -> str | None:
    """The checkpoint digest in a model version (``method-recogniser@digest[+occupancy@...]``)."""
    if "@" not in model_version:
        return None
    return model_version.split("@", 1)[1].split("+", 1)[0].split(" ", 1)[0] or None


@cache
def load_cards(extra: tuple[Path, ...] = ()) -> dict[str, Card]:
    """Every card under the committed checkpoints and in ``extra`` (files or folders), by digest."""
    paths = list(COMMITTED_CARDS.glob("*/model.quality.json"))
    for place in extra:
        paths += list(place.glob("**/model.quality.json")) if place.is_dir() else [place]
    cards: dict[str, Card] = {}
    for path in paths:
        try:
            raw = json.loads(path.read_text())
            card = Card(
                digest=str(raw["digest"]),
                method=str(raw["method"]),
                data=str(raw["data"]),
                test_samples=int(raw["test_samples"]),
                top1=float(raw["top1"]),
                macro_f1=float(raw["macro_f1"]),
                date=str(raw.get("date", "")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a card that cannot be read is no card: the page says the model is unmeasured
        cards[card.digest] = card
    return cards


def quality_sentence(model_version: str, cards: dict[str, Card]) -> tuple[bool, str]:
    """(measured, what to show) for one trained model version."""
    digest = version_digest(model_version)
    card = cards.get(digest) if digest else None
    if card is not None:
        return True, card.sentence(model_version)
    return False, (
        f"Model {model_version}: no evaluation of this model was found, so how often its events are right "
        "is unknown (classroom evaluate --checkpoint ... writes one; DASHBOARD_MODEL_CARDS says where to look)."
    )
