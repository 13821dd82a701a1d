"""Recognition reads keypoints normalised exactly as training fed them (crop pixels / crop size)."""

from types import SimpleNamespace

import numpy as np
import pytest

from models.data.crops import crop_geometry
from services.common.errors import BadInput
from services.common.pb.classroom.v1 import observations_pb2
from services.common.seats import normalise_keypoints
from services.recognition.service import RecognitionService

# Seat boxes of a simulated 640x360 classroom are rarely square (these two are from seed 1).
NOT_SQUARE = [(349.1, 70.7, 452.8, 203.1), (428.6, 107.7, 618.2, 274.3)]


@pytest.mark.parametrize("box", NOT_SQUARE)
def test_round_trip_through_analysis_pixels_gives_crop_over_size(box) -> None:
    size = 64
    crop_points = np.random.default_rng(0).uniform(0, size, (1, 17, 3))
    image = crop_geometry(np.array([box]), crop_size=size).crop_to_image(crop_points)[0]
    out = normalise_keypoints(image, np.array(box))
    np.testing.assert_allclose(out[:, :2], crop_points[0, :, :2] / size, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 2], crop_points[0, :, 2], rtol=1e-6)


def test_the_recognition_service_normalises_to_the_crop_square() -> None:
    """The service used to divide x by the box width and y by its height: a stretched skeleton."""
    box, size, dim = NOT_SQUARE[0], 64, 4
    crop_points = np.random.default_rng(1).uniform(0, size, (1, 17, 3))
    image = crop_geometry(np.array([box]), crop_size=size).crop_to_image(crop_points)[0]
    student = observations_pb2.StudentObservation(
        student_id="S1",
        seat_id="r1c2",
        box=observations_pb2.Box(x0=box[0], y0=box[1], x1=box[2], y1=box[3]),
        keypoints=[observations_pb2.Keypoint(x=x, y=y, confidence=c) for x, y, c in image],
        node_features=np.zeros((17, dim), "<f2").tobytes(),
        feature_dim=dim,
    )
    keypoints, features = RecognitionService._arrays(SimpleNamespace(feature_dim=dim), student)
    np.testing.assert_allclose(keypoints[:, :2], crop_points[0, :, :2] / size, rtol=1e-4, atol=1e-5)
    assert features.shape == (17, dim)


def test_one_box_and_batches_of_boxes() -> None:
    kp = np.array([[110.0, 220.0, 0.9], [130.0, 260.0, 0.5]], np.float32)
    one = normalise_keypoints(kp, np.array([100.0, 200.0, 140.0, 280.0]))
    # an 40x80 box -> its 80x80 square starts at x = 80: (110 + 0.5 - 80) / 80
    np.testing.assert_allclose(one[0], [30.5 / 80, 20.5 / 80, 0.9], rtol=1e-6)
    batch = normalise_keypoints(np.stack([kp, kp]), np.array([[100.0, 200.0, 140.0, 280.0]] * 2))
    np.testing.assert_allclose(batch[1], one, rtol=1e-6)


def test_empty_box_is_refused() -> None:
    with pytest.raises(BadInput, match="x1 > x0"):
        normalise_keypoints(np.zeros((17, 3)), np.array([10.0, 10.0, 10.0, 20.0]))
