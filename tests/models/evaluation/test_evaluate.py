"""The evaluation: the scores against hand-computed values, the report, finding checkpoints.

A run end to end is tests/models/tools/test_evaluate_cli.py's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.evaluation.evaluate import frame_quality, keypoint_errors, recognition_metrics, render_markdown


def test_recognition_metrics_by_hand():
    # 3 classes, 5 samples: truth 0 0 1 1 2; predicted 0 1 1 1 0; second guesses 1 0 0 2 2
    probabilities = np.array(
        [
            [0.6, 0.3, 0.1],
            [0.4, 0.5, 0.1],
            [0.3, 0.6, 0.1],
            [0.1, 0.6, 0.3],
            [0.5, 0.1, 0.4],
        ]
    )
    labels = np.array([0, 0, 1, 1, 2])
    scores = recognition_metrics(probabilities, labels, 3)
    assert scores["top1"] == pytest.approx(60.0)
    # top-2 would hold every label; top-5 is capped at the number of classes
    assert scores["top5"] == pytest.approx(100.0)
    # class 0: tp 1, fp 1, fn 1 -> F1 0.5; class 1: tp 2, fp 1, fn 0 -> 0.8; class 2: tp 0 -> 0
    assert scores["per_class_f1"] == pytest.approx([0.5, 0.8, 0.0])
    assert scores["macro_f1"] == pytest.approx(100 * (0.5 + 0.8 + 0.0) / 3)
    assert scores["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_a_class_absent_from_truth_and_predictions_does_not_count():
    probabilities = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]])
    scores = recognition_metrics(probabilities, np.array([0, 1]), 3)
    assert math.isnan(scores["per_class_f1"][2])
    assert scores["macro_f1"] == pytest.approx(100.0)


def test_keypoint_errors_by_hand():
    from services.common.vocabulary import KEYPOINT_INDEX

    error_sum, count = np.zeros(17), np.zeros(17)
    error_sum[KEYPOINT_INDEX["left_wrist"]], count[KEYPOINT_INDEX["left_wrist"]] = 12.0, 2
    error_sum[KEYPOINT_INDEX["right_wrist"]], count[KEYPOINT_INDEX["right_wrist"]] = 3.0, 1
    error_sum[KEYPOINT_INDEX["nose"]], count[KEYPOINT_INDEX["nose"]] = 1.0, 1
    errors = keypoint_errors(error_sum, count)
    assert errors["wrists"] == pytest.approx(5.0)  # (12 + 3) / 3 points, not the mean of two means
    assert errors["head"] == pytest.approx(1.0)
    assert errors["all"] == pytest.approx(4.0)
    assert math.isnan(errors["hands"])  # no visible hand: unknown, not 0


def test_frame_quality_of_a_perfect_enhancement():
    rng = np.random.default_rng(0)
    reference = rng.random((3, 32, 32)).astype(np.float32)
    crop = np.concatenate([reference, rng.random((3, 32, 32)).astype(np.float32)])
    fused = rng.random((8, 8, 8)).astype(np.float32)
    q = frame_quality(reference, reference, fused, crop)
    assert q["psnr"] == math.inf and q["ssim"] == pytest.approx(1.0)
    assert 0.0 <= q["mi"] <= 1.0 and -1.0 <= q["epi"] <= 1.0
    worse = frame_quality(np.clip(reference * 0.5, 0, 1), reference, fused, crop)
    assert worse["psnr"] < 20 and worse["ssim"] < 1.0


def test_markdown_lists_missing_methods_as_missing():
    result = {
        "psnr": 20.0,
        "ssim": 0.8,
        "mi": 0.3,
        "epi": 0.2,
        "top1": 50.0,
        "top5": 90.0,
        "macro_f1": 48.0,
        "fps": 12.0,
        "per_class_f1": {"hand_raising": 0.5},
        "checkpoint": "x/model.pt",
        "trained_on": "sim",
        "training": {},
    }
    report = {
        "data": "sim:small",
        "test_samples": 10,
        "command": "classroom evaluate",
        "device": "CPU",
        "fps_students": 20,
        "quality_note": "n",
        "methods": {"proposed": result},
        "robustness": {"proposed": {"normal": 60.0, "low_light": 50.0}},
    }
    text = render_markdown(report)
    assert "| `proposed` | 20.00 | 0.800 | 0.300 | 0.200 | 50.00 | 90.00 | 48.00 | 12.0 |" in text
    assert "| `retinex_concat_gcn` | missing |" in text
    assert "50.00 (-10.00)" in text and "| missing |" in text


def test_a_checkpoint_named_explicitly_and_found_under_runs_counts_once(tmp_path):
    from models.evaluation.evaluate import find_checkpoints

    run = tmp_path / "runs" / "proposed"
    run.mkdir(parents=True)
    (run / "model.pt").write_bytes(b"x")
    other = tmp_path / "other.pt"
    other.write_bytes(b"y")
    found = find_checkpoints(
        tmp_path / "runs", [run / "model.pt", other, tmp_path / "runs/../runs/proposed/model.pt"]
    )
    assert found == [run / "model.pt", other]


def test_robustness_compares_the_proposed_method_with_the_strongest_baseline():
    from models.evaluation.evaluate import robustness_methods

    top1 = {"proposed": 41.7, "retinex_concat_gcn": 35.8, "cnn_attention_gcn": 37.5, "no_deformable": 50.0}
    assert robustness_methods(top1) == ["proposed", "cnn_attention_gcn"]
    assert robustness_methods({"retinex_concat_gcn": 30.0, "multimodal_cnn_stgcn": 30.0}) == [
        "retinex_concat_gcn"
    ]
    assert robustness_methods({"proposed": 40.0}) == ["proposed"]


def test_training_summary_of_both_recipes():
    from models.evaluation.evaluate import _training_summary

    paper = {"epochs_run": 12, "best_epoch": 9, "best_val_accuracy": 0.4, "history": []}
    assert _training_summary(paper) == {"epochs_run": 12, "best_epoch": 9, "best_val_accuracy": 0.4}
    staged = {
        "recipe": "staged",
        "stage": "finetune",
        "stages": {
            "front_end": {"steps": 5000},
            "recogniser": {"epochs": 20, "best_epoch": 17, "best_val_accuracy": 0.70},
            "finetune": {"epochs": 2, "best_epoch": 0, "best_val_accuracy": 0.71},
        },
    }
    assert _training_summary(staged) == {
        "epochs_run": "a: 5000 steps, b: 20, c: 2",
        "best_epoch": 0,
        "best_val_accuracy": 0.71,
    }
