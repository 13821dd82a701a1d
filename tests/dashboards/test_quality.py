"""Every page says which model made its numbers and how often that model is right."""

from __future__ import annotations

import json

from dashboards.quality import load_cards, quality_sentence, version_digest
from models.evaluation.card import quality_card
from models.serving.committed import DEFAULT_CHECKPOINT
from models.serving.networks import file_digest


def test_the_served_checkpoint_has_a_card_that_matches_its_events():
    digest = file_digest(DEFAULT_CHECKPOINT)
    cards = load_cards()
    assert digest in cards  # events of the served model carry this digest in their model version
    measured, sentence = quality_sentence(f"proposed-mstgcn@{digest}", cards)
    assert measured and f"right on {cards[digest].top1:.0f} %" in sentence and "estimates" in sentence


def test_an_unmeasured_model_is_said_to_be_unmeasured(tmp_path):
    measured, sentence = quality_sentence("proposed-mstgcn@0123456789ab", load_cards())
    assert not measured and "is unknown" in sentence


def test_versions_name_their_checkpoint_digest():
    assert version_digest("proposed-mstgcn@92bbe391ab31") == "92bbe391ab31"
    assert version_digest("proposed-dcanet@92bbe391ab31+occupancy@aaaa") == "92bbe391ab31"
    assert version_digest("proposed-mstgcn@92bbe391ab31 (untrained)") == "92bbe391ab31"
    assert version_digest("untrained-proposed") is None


def test_evaluate_results_become_a_card_the_dashboard_reads(tmp_path):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    results = {
        "data": "sim:crowd",
        "test_samples": 1191,
        "command": "classroom evaluate ...",
        "methods": {"proposed": {"method": "proposed", "top1": 80.0, "macro_f1": 79.9}},
        "robustness": {"proposed": {"normal": 82.5}},
    }
    card = quality_card(results, checkpoint, date="2026-12-07")
    assert card["digest"] == file_digest(checkpoint) and card["robustness"] == {"normal": 82.5}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.quality.json").write_text(json.dumps(card))
    cards = load_cards((tmp_path,))
    assert cards[card["digest"]].top1 == 80.0
