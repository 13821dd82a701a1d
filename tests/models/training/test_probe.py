"""The probe's keypoint sources: the annotation's points put in where asked, nothing else changed."""

from __future__ import annotations

import pytest
import torch

from models.training.probe import exact_keypoints


def batch_and_prediction():
    crops = torch.zeros(1, 2, 6, 32, 32)
    truth = torch.zeros(1, 2, 17, 3)
    truth[..., 0], truth[..., 1] = 16.0, 8.0
    truth[..., 2] = 1.0
    truth[0, :, 16, 2] = 0.0  # chest not annotated
    occluded = torch.zeros(1, 2, 17, dtype=torch.bool)
    occluded[0, :, 14] = True  # left hand hidden
    predicted = torch.full((1, 2, 17, 3), 0.25)
    return {"crops": crops, "keypoints": truth, "occluded": occluded}, predicted


def test_exact_puts_every_point_in_with_confidence_seen():
    batch, predicted = batch_and_prediction()
    out = exact_keypoints(predicted, batch, "exact")
    assert out[0, 0, 0].tolist() == [0.5, 0.25, 1.0]
    assert out[0, 0, 14].tolist() == [0.5, 0.25, 0.0]  # hidden: exact position, not seen
    assert out[0, 0, 16, 2] == 0.0


@pytest.mark.parametrize(("which", "replaced", "kept"), [("exact-seen", 0, 14), ("exact-hidden", 14, 0)])
def test_exact_seen_and_hidden_replace_their_positions_only(which, replaced, kept):
    batch, predicted = batch_and_prediction()
    out = exact_keypoints(predicted, batch, which)
    assert out[0, 1, replaced, :2].tolist() == [0.5, 0.25]
    assert out[0, 1, kept].tolist() == [0.25, 0.25, 0.25]
    assert out[..., 2].eq(0.25).all()  # confidence stays the front end's
    assert out[0, 1, 16].tolist() == [0.25, 0.25, 0.25]  # not annotated: untouched


def test_seen_flags_replace_the_confidence_only_and_with_the_seen_positions():
    batch, predicted = batch_and_prediction()
    flags = exact_keypoints(predicted, batch, "seen-flags")
    assert flags[..., :2].eq(0.25).all()  # the front end's positions
    assert flags[0, 0, 0, 2] == 1.0 and flags[0, 0, 14, 2] == 0.0 and flags[0, 0, 16, 2] == 0.0
    both = exact_keypoints(predicted, batch, "exact-seen-flags")
    assert both[0, 0, 0].tolist() == [0.5, 0.25, 1.0]  # seen: exact position, flag
    assert both[0, 0, 14].tolist() == [0.25, 0.25, 0.0]  # hidden: the front end's position, flag


def test_the_command_offers_every_source():
    from models.tools.probe import KEYPOINT_SOURCES as offered
    from models.training.probe import KEYPOINT_SOURCES

    assert offered == KEYPOINT_SOURCES
