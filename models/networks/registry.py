"""Registry of architectures and of the paper's methods (timm style: ``create_model(name, ...)``).

Two kinds of names:
- components: ``dcanet``, ``concat_fusion``, ``attention_fusion``, ``multimodal_cnn_fusion``,
  ``keypoint_hrnet``, ``node_encoder``, ``mstgcn``, ``stgcn``, ``gcn``; ``create_model`` returns
  the bare module.
- methods (``METHODS``): the proposed model, the baselines of section 4.2.1, the rows of
  Table 4 and the removals of Table 6; ``create_model`` returns a ``ClassroomPipeline`` whose
  ``config`` holds the full resolved configuration (the checkpoint stores it, so a checkpoint
  rebuilds its own architecture). ``classroom train --method NAME`` and ``classroom evaluate``
  take these names.

Configuration overrides: nested dicts merge into the method's configuration
(``create_model("proposed", fusion={"channels": 24})``); the flat keys ``crop_size``,
``feature_dim`` and ``enhancement`` are shortcuts.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.networks.checkpoint import CheckpointMismatch, load_checkpoint
from models.networks.dcanet import DCANet
from models.networks.fusion_baselines import AttentionFusion, ConcatFusion, MultiModalCNNFusion
from models.networks.keypoints import KeypointNet
from models.networks.mstgcn import MSTGCN
from models.networks.pipeline import MODALITIES, ClassroomPipeline, IdentityEnhancement
from models.networks.roi import NodeEncoder
from models.networks.stgcn import GCN, STGCN

_COMPONENTS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    _COMPONENTS[fn.__name__] = fn
    return fn


@register_model
def dcanet(**cfg: Any) -> nn.Module:
    return DCANet(**cfg)


@register_model
def concat_fusion(**cfg: Any) -> nn.Module:
    return ConcatFusion(**cfg)


@register_model
def attention_fusion(**cfg: Any) -> nn.Module:
    return AttentionFusion(**cfg)


@register_model
def multimodal_cnn_fusion(**cfg: Any) -> nn.Module:
    return MultiModalCNNFusion(**cfg)


@register_model
def keypoint_hrnet(**cfg: Any) -> nn.Module:
    return KeypointNet(**cfg)


@register_model
def node_encoder(**cfg: Any) -> nn.Module:
    return NodeEncoder(**cfg)


@register_model
def mstgcn(**cfg: Any) -> nn.Module:
    return MSTGCN(**cfg)


@register_model
def stgcn(**cfg: Any) -> nn.Module:
    return STGCN(**cfg)


@register_model
def gcn(**cfg: Any) -> nn.Module:
    return GCN(**cfg)


@dataclass(frozen=True)
class MethodSpec:
    description: str
    paper_row: str
    enhancement: str
    fusion: dict[str, Any]
    recognition: dict[str, Any]
    roi_deformable: bool = True
    loss: dict[str, Any] = field(default_factory=dict)
    modalities: tuple[str, ...] = MODALITIES


_FULL_FUSION = {"name": "dcanet", "deformable": True}
_FULL_RECOGNITION = {"name": "mstgcn", "dilations": [1, 2, 4]}

METHODS: dict[str, MethodSpec] = {
    "proposed": MethodSpec(
        "MSWGF enhancement + DCA-Net + MST-GCN, adaptive loss weights",
        "Table 3 'Proposed Method'; Table 4 last row; Table 6 'Full Model'",
        "mswgf",
        _FULL_FUSION,
        _FULL_RECOGNITION,
    ),
    "retinex_concat_gcn": MethodSpec(
        "single-scale Retinex + simple concatenation + GCN",
        "Table 3 row 1",
        "retinex",
        {"name": "concat_fusion"},
        {"name": "gcn"},
        roi_deformable=False,
    ),
    "cnn_attention_gcn": MethodSpec(
        "CNN + conventional attention (SE + spatial) + GCN",
        "Table 3 row 2",
        "conventional",
        {"name": "attention_fusion"},
        {"name": "gcn"},
        roi_deformable=False,
    ),
    "multimodal_cnn_stgcn": MethodSpec(
        "multi-modal CNN (one stem per modality, concatenated) + ST-GCN",
        "Table 3 row 3 (the strongest baseline of 4.2.3)",
        "conventional",
        {"name": "multimodal_cnn_fusion"},
        {"name": "stgcn"},
        roi_deformable=False,
    ),
    "table4_baseline": MethodSpec(
        "conventional enhancement + simple concatenation + standard ST-GCN",
        "Table 4 'Baseline Model'",
        "conventional",
        {"name": "concat_fusion"},
        {"name": "stgcn"},
        roi_deformable=False,
    ),
    "table4_mswgf": MethodSpec(
        "Table 4 baseline with MSWGF enhancement",
        "Table 4 row 2",
        "mswgf",
        {"name": "concat_fusion"},
        {"name": "stgcn"},
        roi_deformable=False,
    ),
    "table4_mswgf_dcanet": MethodSpec(
        "MSWGF + DCA-Net + standard ST-GCN",
        "Table 4 row 3 (row 4 is 'proposed')",
        "mswgf",
        _FULL_FUSION,
        {"name": "stgcn"},
    ),
    "no_multiscale_weights": MethodSpec(
        "proposed with a single fixed-scale guided-filter Retinex",
        "Table 6 'Without Multi-Scale Weights'",
        "single_scale_gf",
        _FULL_FUSION,
        _FULL_RECOGNITION,
    ),
    "no_deformable": MethodSpec(
        "proposed with plain 3x3 conv alignment instead of deformable conv",
        "Table 6 'Without Deformable Convolution'",
        "mswgf",
        {"name": "dcanet", "deformable": False},
        _FULL_RECOGNITION,
    ),
    "no_multidilation": MethodSpec(
        "proposed with dilation 1 in all three temporal branches (same parameters, no multi-scale)",
        "Table 6 'Without Multi-Dilation Convolution'",
        "mswgf",
        _FULL_FUSION,
        {"name": "mstgcn", "dilations": [1, 1, 1]},
    ),
    "rgb_only": MethodSpec(
        "proposed with depth and thermal withheld (their crop channels zeroed): what the two cameras add",
        "ablation of the staged recipe (not a paper row)",
        "mswgf",
        _FULL_FUSION,
        _FULL_RECOGNITION,
        modalities=("rgb",),
    ),
    "no_adaptive_loss": MethodSpec(
        "proposed trained with fixed equal loss weights",
        "Table 6 'Without Adaptive Loss Weights'",
        "mswgf",
        _FULL_FUSION,
        _FULL_RECOGNITION,
        loss={"adaptive": False},
    ),
}

# model sizes shared by every method (the preset of `classroom train` may override them)
DEFAULT_SIZES: dict[str, Any] = {
    "crop_size": 96,
    "fusion_channels": 16,
    "feature_dim": 32,
    "keypoints": {"widths": [16, 32], "stages": 2, "blocks": 1},
    "recognition_channels": [32, 32, 48],
}


def list_models() -> list[str]:
    return sorted(_COMPONENTS) + sorted(METHODS)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def method_config(method: str, **overrides: Any) -> dict[str, Any]:
    """The full configuration of a method, with overrides applied."""
    if method not in METHODS:
        raise KeyError(f"unknown method {method!r}; known: {', '.join(sorted(METHODS))}")
    spec = METHODS[method]
    sizes = _merge(DEFAULT_SIZES, {k: overrides.pop(k) for k in list(overrides) if k in DEFAULT_SIZES})
    config: dict[str, Any] = {
        "method": method,
        "crop_size": sizes["crop_size"],
        "enhancement": spec.enhancement,
        "fusion": {"channels": sizes["fusion_channels"], **spec.fusion},
        "keypoints": dict(sizes["keypoints"]),
        "node_encoder": {"feature_dim": sizes["feature_dim"], "deformable": spec.roi_deformable},
        "recognition": {"channels": list(sizes["recognition_channels"]), **spec.recognition},
        "loss": dict(spec.loss),
        "modalities": list(spec.modalities),
    }
    return _merge(config, overrides)


def build_enhancement(name: str) -> nn.Module:
    """The torch enhancement of section 3.2 named ``name`` (from models/networks/enhancement.py)."""
    if name == "identity":
        return IdentityEnhancement()
    # imported here: the torch section 3.2 (OpenCV kernels, the enhancement service's constants) is
    # needed only by the methods that learn it, so a served network builds from torch alone
    from models.networks.enhancement import create_enhancement

    return create_enhancement(name)


def build_pipeline(config: dict[str, Any]) -> ClassroomPipeline:
    fusion_cfg = dict(config["fusion"])
    fusion = _COMPONENTS[fusion_cfg.pop("name")](**fusion_cfg)
    kp_cfg = dict(config["keypoints"])
    kp_cfg["widths"] = tuple(kp_cfg["widths"])
    fused_channels: int = fusion.out_channels  # type: ignore[assignment]  # every fusion network sets it
    keypoints = KeypointNet(in_channels=fused_channels, **kp_cfg)
    nodes = NodeEncoder(in_channels=fused_channels, **config["node_encoder"])
    rec_cfg = dict(config["recognition"])
    name = rec_cfg.pop("name")
    rec_cfg["channels"] = tuple(rec_cfg["channels"])
    if "dilations" in rec_cfg:
        rec_cfg["dilations"] = tuple(rec_cfg["dilations"])
    recognition = _COMPONENTS[name](feature_dim=nodes.feature_dim, **rec_cfg)
    pipeline = ClassroomPipeline(
        fusion,
        keypoints,
        nodes,
        recognition,
        build_enhancement(config["enhancement"]),
        config["crop_size"],
        tuple(config.get("modalities", MODALITIES)),
    )
    pipeline.method = config["method"]
    pipeline.config = copy.deepcopy(config)
    return pipeline


def create_model(name: str, *, checkpoint: str | Path | dict | None = None, **cfg: Any) -> nn.Module:
    """Build a component or a method by name; with ``checkpoint``, rebuild from it and load its weights."""
    if name in _COMPONENTS:
        model = _COMPONENTS[name](**cfg)
        if checkpoint is not None:
            state = (
                checkpoint
                if isinstance(checkpoint, dict)
                else torch.load(checkpoint, map_location="cpu", weights_only=True)
            )
            model.load_state_dict(state.get("state_dict", state))
        return model
    if checkpoint is None:
        return build_pipeline(method_config(name, **cfg))
    data = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    if data["method"] != name:
        raise ValueError(f"checkpoint holds method {data['method']!r}, not {name!r}")
    config = _merge(data["config"], cfg)
    pipeline = build_pipeline(config)
    state = data["state_dict"]
    if not any(k.startswith("enhancement.") for k in pipeline.state_dict()):
        # built without the torch enhancement (serving): its learned values live in enhancement.json
        state = {k: v for k, v in state.items() if not k.startswith("enhancement.")}
    try:
        pipeline.load_state_dict(state)
    except RuntimeError as exc:  # torch's message lists every key: keep the first line of it
        first = str(exc).strip().splitlines()[0]
        raise CheckpointMismatch(
            f"checkpoint of {name!r} does not fit the architecture its own config describes ({first}); "
            "it was written by another version: retrain it"
        ) from exc
    return pipeline
