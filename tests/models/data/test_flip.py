"""Horizontal-flip augmentation: mirrored crops, keypoints mirrored and swapped left/right, only where asked."""

import torch

from models.data.windows import flip_batch, flip_frames
from services.common.vocabulary import KEYPOINT_INDEX, NUM_KEYPOINTS

S = 16


def _batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    keypoints = torch.rand(2, 3, NUM_KEYPOINTS, 3, generator=generator) * S
    keypoints[..., 2] = (keypoints[..., 2] > S / 2).float()
    return {
        "crops": torch.rand(2, 3, 6, S, S, generator=generator),
        "reference": torch.rand(2, 3, 3, S, S, generator=generator),
        "keypoints": keypoints,
        "label": torch.tensor([1, 4]),
        "occupied": torch.ones(2, 3),
        "occluded": torch.zeros(2, 3, NUM_KEYPOINTS, dtype=torch.bool),
    }


def test_a_bright_pixel_and_the_wrist_on_it_move_together() -> None:
    batch = _batch()
    batch["crops"].zero_()
    u, v = 3, 7
    batch["crops"][0, 1, 0, v, u] = 1.0  # one bright pixel, frame 1 of window 0
    left, right = KEYPOINT_INDEX["left_wrist"], KEYPOINT_INDEX["right_wrist"]
    batch["keypoints"][0, 1, left] = torch.tensor([u + 0.5, v + 0.5, 1.0])  # on its centre
    batch["keypoints"][0, 1, right] = torch.tensor([12.25, 2.0, 0.0])
    batch["occluded"][0, 1, left] = True  # the left wrist is hidden: after the flip the right one is
    out = flip_batch(batch, torch.tensor([True, False]))
    assert out["occluded"][0, 1, right] and not out["occluded"][0, 1, left]
    assert out["occluded"][0].sum() == 1
    assert out["crops"][0, 1, 0, v, S - 1 - u] == 1.0 and out["crops"][0, 1, 0].sum() == 1.0
    # The point on the bright pixel's centre is now the right wrist, on the mirrored pixel's centre.
    assert out["keypoints"][0, 1, right].tolist() == [S - 1 - u + 0.5, v + 0.5, 1.0]
    assert out["keypoints"][0, 1, left].tolist() == [S - 12.25, 2.0, 0.0]
    nose = KEYPOINT_INDEX["nose"]
    assert out["keypoints"][0, 1, nose, 0] == S - batch["keypoints"][0, 1, nose, 0]
    assert torch.equal(out["reference"][0], batch["reference"][0].flip(-1))


def test_only_the_chosen_windows_change_and_twice_is_identity() -> None:
    batch = _batch()
    out = flip_batch(batch, torch.tensor([False, True]))
    for key in ("crops", "reference", "keypoints"):
        assert torch.equal(out[key][0], batch[key][0])
        assert not torch.equal(out[key][1], batch[key][1])
    assert torch.equal(out["label"], batch["label"]) and torch.equal(out["occupied"], batch["occupied"])
    back = flip_batch(out, torch.tensor([False, True]))
    for key in ("crops", "reference", "occluded"):
        assert torch.equal(back[key], batch[key])
    assert torch.allclose(back["keypoints"], batch["keypoints"], atol=1e-6)
    assert flip_batch(batch, torch.tensor([False, False])) is batch


def test_single_frames_flip_as_the_frames_of_a_window_do() -> None:
    """Stage a's flip of single frames gives what flipping the windows they come from gives."""
    batch = _batch()
    flip = torch.tensor([True, False])
    windows = flip_batch(batch, flip)
    crops, keypoints = batch["crops"][:, 1], batch["keypoints"][:, 1]  # frame 1 of each window
    out_crops, out_keypoints = flip_frames(crops, keypoints, flip)
    assert torch.equal(out_crops, windows["crops"][:, 1])
    assert torch.equal(out_keypoints, windows["keypoints"][:, 1])
    assert flip_frames(crops, keypoints, torch.tensor([False, False]))[0] is crops
