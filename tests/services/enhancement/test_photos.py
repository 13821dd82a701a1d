"""Learned section 3.2 parameters ship only when they beat the defaults on real photographs."""

from __future__ import annotations

import dataclasses
import json

import pytest

from models.serving.committed import DEFAULT_CHECKPOINT, PAPER_RECIPE_CHECKPOINT
from services.enhancement import photos
from services.enhancement.params import EnhancementParams


def test_the_photographs_are_real_and_fixed():
    pairs = photos.dim_captures()
    assert len(pairs) == len(photos.PHOTOS) * len(photos.LIGHT_LEVELS)
    for dim, clean in pairs:
        assert dim.shape == clean.shape == (360, 640, 3)
        assert dim.mean() < 0.6 * clean.mean()  # a dim capture of the photograph
    again = photos.dim_captures()
    assert all((a[0] == b[0]).all() for a, b in zip(pairs, again, strict=True))


def test_worse_parameters_are_not_shipped_and_the_report_keeps_both(tmp_path):
    worse = dataclasses.replace(EnhancementParams(), white_target=0.55, max_gain=2.0)
    report = photos.ship(tmp_path, worse)
    assert report["shipped"] == "defaults"
    assert EnhancementParams.from_json(tmp_path / "enhancement.json") == EnhancementParams()
    saved = json.loads((tmp_path / photos.REPORT_JSON).read_text())
    assert saved["candidate"]["psnr_db"] < saved["defaults"]["psnr_db"]
    assert EnhancementParams.from_dict(saved["candidate_params"]) == worse  # nothing learned is lost


def test_better_parameters_are_shipped(tmp_path, monkeypatch):
    better = dataclasses.replace(EnhancementParams(), white_target=0.9)
    real = photos.photo_quality

    def quality(params, pairs=None):
        q = real(EnhancementParams(), pairs)
        return dataclasses.replace(q, psnr_db=q.psnr_db + 1.0) if params == better else q

    monkeypatch.setattr(photos, "photo_quality", quality)
    assert photos.ship(tmp_path, better)["shipped"] == "candidate"
    assert EnhancementParams.from_json(tmp_path / "enhancement.json") == better


@pytest.mark.parametrize("a, b, wins", [((20.0, 0.8), (19.0, 0.8), True), ((20.0, 0.79), (19.0, 0.8), False)])
def test_beating_means_higher_psnr_and_no_lower_ssim(a, b, wins):
    assert photos.PhotoQuality(*a, 1).beats(photos.PhotoQuality(*b, 1)) is wins


@pytest.mark.parametrize("checkpoint", [DEFAULT_CHECKPOINT, PAPER_RECIPE_CHECKPOINT])
def test_every_committed_checkpoint_ships_what_wins_on_photographs(checkpoint):
    folder = checkpoint.parent
    report = json.loads((folder / photos.REPORT_JSON).read_text())
    shipped = EnhancementParams.from_json(folder / "enhancement.json")
    candidate = EnhancementParams.from_dict(report["candidate_params"])
    assert shipped == (candidate if report["shipped"] == "candidate" else EnhancementParams())
    assert (report["shipped"] == "candidate") == photos.PhotoQuality(**report["candidate"]).beats(
        photos.PhotoQuality(**report["defaults"])
    )
