"""Which checkpoints the model server loads: the committed defaults, explicit paths, the head."""

from __future__ import annotations

from pathlib import Path

from services.modelserver.config import (
    DEFAULT_CHECKPOINT,
    DEFAULT_OCCUPANCY_CHECKPOINT,
    ModelServerSettings,
)


def test_a_trained_recognition_checkpoint_comes_with_the_committed_occupancy_model() -> None:
    settings = ModelServerSettings()
    recognition = settings.resolved_checkpoint()
    assert recognition == DEFAULT_CHECKPOINT and DEFAULT_OCCUPANCY_CHECKPOINT.is_file()
    assert settings.resolved_occupancy_checkpoint(recognition) == DEFAULT_OCCUPANCY_CHECKPOINT


def test_head_explicit_paths_and_untrained_weights(monkeypatch) -> None:
    monkeypatch.setenv("MODELSERVER_OCCUPANCY_CHECKPOINT", "head")
    assert ModelServerSettings().resolved_occupancy_checkpoint(DEFAULT_CHECKPOINT) is None
    monkeypatch.setenv("MODELSERVER_OCCUPANCY_CHECKPOINT", "/srv/models/occ.pt")
    assert ModelServerSettings().resolved_occupancy_checkpoint(None) == Path("/srv/models/occ.pt")
    monkeypatch.delenv("MODELSERVER_OCCUPANCY_CHECKPOINT")
    # untrained recognition weights: their crop size need not match the committed model's
    untrained = ModelServerSettings(checkpoint="untrained")
    assert untrained.resolved_occupancy_checkpoint(untrained.resolved_checkpoint()) is None


def test_the_optimised_crop_stage_is_the_default_and_can_be_switched_off(monkeypatch) -> None:
    assert ModelServerSettings().optimise is True
    monkeypatch.setenv("MODELSERVER_OPTIMISE", "false")
    assert ModelServerSettings().optimise is False
