"""A model's quality card: what ``classroom evaluate`` measured, keyed by the checkpoint's digest.

The model server names every event's model ``<method>-<recogniser>@<digest of model.pt>``; the
dashboard finds the card with that digest and shows, beside the numbers the model produced,
how often it is right (``dashboards/quality.py``). ``classroom evaluate --checkpoint X`` writes
``<out>/model.quality.json``; the committed checkpoints keep theirs beside ``model.pt``.

    python -m models.evaluation.card RESULTS_JSON CHECKPOINT OUT_JSON
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from models.serving.networks import file_digest


def quality_card(results: dict[str, Any], checkpoint: Path, *, date: str | None = None) -> dict[str, Any]:
    """The card of ``checkpoint`` from ``classroom evaluate``'s results (the method it was evaluated as)."""
    methods = results.get("methods") or {}
    entries = methods.values() if isinstance(methods, dict) else methods
    digest = file_digest(checkpoint)
    chosen = [m for m in entries if m.get("top1") is not None]
    if len(chosen) != 1:
        raise ValueError(f"the results hold {len(chosen)} evaluated methods; a card is for one checkpoint")
    entry = chosen[0]
    return {
        "digest": digest,
        "method": entry["method"],
        "data": results["data"],
        "test_samples": results["test_samples"],
        "top1": entry["top1"],
        "macro_f1": entry["macro_f1"],
        "per_class_recall": entry.get("per_class_recall"),
        "robustness": (results.get("robustness") or {}).get(entry["method"]),
        "command": results.get("command"),
        "date": date or dt.date.today().isoformat(),
        "note": "simulated students never seen in training (SmartClass-Sim); not measured on real classrooms",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.evaluation.card", description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--date", help="the evaluation's date (default today)")
    args = parser.parse_args(argv)
    try:
        card = quality_card(json.loads(args.results.read_text()), args.checkpoint, date=args.date)
    except (OSError, ValueError, KeyError) as exc:
        print(f"model card: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {args.out} for {card['method']}@{card['digest']}: top-1 {card['top1']:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
