"""``classroom bench gpu`` (models/tools/bench_gpu.py): the served networks' two stages in fp32,
fp16 (bf16 on the CPU) and a compiled form, against batch size in crops, reduced to 20-student
frame sets per second on one device; then the served path (``InferenceEngine`` with input
decoding and crop extraction) when this machine has what that needs.

Imports torch and the network code only (models/serving/networks.py): a lent GPU machine has
python and torch and no package registry, so the networks' sweep must run there as it is; the
served-path table needs OpenCV, protobuf and the rest of the model server's dependencies and
says which one is missing when it cannot run.
"""

from __future__ import annotations

import copy
import platform
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import SimpleNamespace

import torch
from torch import nn

from models.data.channels import NUM_CHANNELS
from models.evaluation.timing import median_seconds
from models.serving.export import RecognitionGraph
from models.serving.networks import CropStage, ServedNetworks, load_served_networks, served_dtype
from services.common.vocabulary import HOP_FRAMES, NUM_KEYPOINTS, WINDOW_FRAMES

SWEEP_FORMS = ("fp32", "fp16", "compiled")
PRECISION_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
COMPILERS = ("auto", "inductor", "trace")
# torch.compile of the per-crop stage took 131 s for its first shape and 66 s for the next on the
# 2-vCPU guest (2026-12-07): on the CPU "auto" traces (TorchScript) instead
CPU_COMPILE_NOTE = (
    "torch.compile takes minutes on a small CPU: TorchScript trace (--compiler inductor to force)"
)


@dataclass
class SweepForm:
    """One way of running the networks: a precision and, for the compiled form, a compiler
    ("inductor": torch.compile; "trace": TorchScript; None: eager)."""

    name: str
    dtype: torch.dtype
    compiler: str | None = None
    notes: list[str] = field(default_factory=list)


def plan_form(
    form: str, device: torch.device, served_dtype: torch.dtype, compiler: str = "auto"
) -> SweepForm:
    """The precision and compiler of ``form`` (one of SWEEP_FORMS) on ``device``; the compiled
    form runs the precision the model server runs there (``served_dtype``)."""
    if form == "fp32":
        return SweepForm("fp32", torch.float32)
    if form == "fp16":
        if device.type == "cuda":
            return SweepForm("fp16", torch.float16)
        return SweepForm(
            "bf16",
            torch.bfloat16,
            notes=["fp16 is CUDA only (the CPU's half kernels are slow): bf16 instead"],
        )
    if form != "compiled":
        raise ValueError(f"unknown form {form!r}; one of {SWEEP_FORMS}")
    notes = []
    if compiler == "auto":
        compiler = "inductor" if device.type == "cuda" else "trace"
        if device.type != "cuda":
            notes.append(CPU_COMPILE_NOTE)
    if compiler not in ("inductor", "trace"):
        raise ValueError(f"unknown compiler {compiler!r}; one of {COMPILERS}")
    return SweepForm(f"{PRECISION_NAMES[served_dtype]} {compiler}", served_dtype, compiler, notes)


class StageRunner:
    """One stage in one form, called as the server calls it: host tensors to the device in the
    form's precision, the network, its outputs back to the host."""

    def __init__(
        self, module: nn.Module, form: SweepForm, device: torch.device, compile_mode: str | None = None
    ) -> None:
        self.module = module.to(device, form.dtype).eval()
        self.form, self.device, self.compile_mode = form, device, compile_mode
        self._compiled: Callable | None = None
        self._traced: dict[tuple, Callable] = {}

    def call_for(self, inputs: Sequence[torch.Tensor]) -> Callable[[], list[torch.Tensor]]:
        """A call of the stage on these host inputs; the first time a shape is seen it is compiled
        or traced here (a failed torch.compile falls back to a trace, noted on the form)."""
        network = self._network(inputs)

        def call() -> list[torch.Tensor]:
            with torch.inference_mode():
                outputs = network(*(x.to(self.device, self.form.dtype) for x in inputs))
                return [o.cpu() for o in outputs]

        return call

    def _network(self, inputs: Sequence[torch.Tensor]) -> Callable:
        if self.form.compiler == "inductor":
            try:
                if self._compiled is None:
                    self._compiled = torch.compile(self.module, mode=self.compile_mode)
                with torch.inference_mode():  # compiles for this shape now, inside the try
                    self._compiled(*(x.to(self.device, self.form.dtype) for x in inputs))
                return self._compiled
            except Exception as exc:
                self.form.notes.append(f"torch.compile failed ({_reason(exc)}): TorchScript trace instead")
                self.form.compiler = "trace"
                self.form.name = self.form.name.replace("inductor", "trace")
        if self.form.compiler == "trace":
            # one trace per shape: a trace records shapes the networks read as Python numbers
            key = tuple(x.shape for x in inputs)
            if key not in self._traced:
                with torch.inference_mode(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # jit.trace's deprecation and tracer warnings
                    self._traced[key] = torch.jit.trace(
                        self.module, tuple(x.to(self.device, self.form.dtype) for x in inputs)
                    )
            return self._traced[key]
        return self.module


def _reason(exc: Exception) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def device_skip_reason(device: str) -> str | None:
    """Why ``device`` cannot be measured on this machine, or None."""
    if device != "cpu" and not device.startswith("cuda"):
        return f"{device}: not a device this benchmark knows (cpu, cuda[:N])"
    if device.startswith("cuda") and not torch.cuda.is_available():
        return f"{device}: CUDA is not available on this machine (torch {torch.__version__})"
    return None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), ""
            )
    except OSError:
        model = ""
    return f"{model or platform.machine()}, {torch.get_num_threads()} torch thread(s)"


def _sweep_form(
    form: SweepForm,
    reference: ServedNetworks,
    device: torch.device,
    batches: Sequence[int],
    repeats: int,
    seats: int,
    compile_mode: str | None,
) -> Iterator[dict]:
    """Crops/s and windows/s of one form at each batch size, and 20-student frame sets/s: per
    frame set ``seats`` crops through the per-crop stage and, one window per student every
    HOP_FRAMES frame sets, seats / HOP_FRAMES windows through recognition, both at batch B."""
    sync = partial(torch.cuda.synchronize, device) if device.type == "cuda" else (lambda: None)
    networks = copy.deepcopy(reference.pipeline)  # each form converts its own copy
    crop_stage = StageRunner(CropStage(networks), form, device, compile_mode)
    recognition = StageRunner(RecognitionGraph(networks.recognition), form, device, compile_mode)
    crop_size, features = int(networks.crop_size), int(networks.feature_dim)
    frames = reference.window_frames or WINDOW_FRAMES
    generator = torch.Generator().manual_seed(0)
    for batch in batches:
        crops = torch.rand(batch, NUM_CHANNELS, crop_size, crop_size, generator=generator)
        window = (
            torch.rand(batch, frames, NUM_KEYPOINTS, 3, generator=generator),
            torch.randn(batch, frames, NUM_KEYPOINTS, features, generator=generator),
        )
        start = time.perf_counter()
        crop_call, window_call = crop_stage.call_for((crops,)), recognition.call_for(window)
        crop_call(), window_call()
        sync()
        first_s = time.perf_counter() - start
        crop_s, _ = median_seconds(crop_call, repeats, sync=sync)
        window_s, _ = median_seconds(window_call, repeats, sync=sync)
        frame_set_s = seats * crop_s / batch + seats / HOP_FRAMES * window_s / batch
        yield {
            "batch": batch,
            "crop_ms": crop_s * 1e3,
            "crops_per_s": batch / crop_s,
            "window_ms": window_s * 1e3,
            "windows_per_s": batch / window_s,
            "frame_sets_per_s": 1.0 / frame_set_s,
            "first_call_s": first_s,
        }


def gpu_sweep(
    *,
    checkpoint,
    device: str,
    forms: Sequence[str] = SWEEP_FORMS,
    batches: Sequence[int] = (1, 20, 60, 120, 240),
    repeats: int = 20,
    seats: int = 20,
    compiler: str = "auto",
    compile_mode: str | None = None,
    served_frame_sets: Sequence[int] = (1, 3, 6, 12),
    log: Callable[[str], None] = print,
) -> dict:
    """The sweep ``classroom bench gpu`` prints: each form against batch size (crops), then the
    served path (InferenceEngine.fuse with crop extraction, and recognise) at its own precision.
    A form that cannot run on this machine is reported with its reason, never raised."""
    target = torch.device(device)
    # the fp32 networks as the server builds them (BN folded); the server's precision on the target
    reference = load_served_networks(checkpoint, device="cpu")
    served_precision = served_dtype(target)
    result: dict = {
        "device": str(target),
        "device_name": device_name(target),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if target.type == "cuda" else None,
        "python": platform.python_version(),
        "model": reference.fusion_version,
        "crop_size": int(reference.pipeline.crop_size),
        "channels": NUM_CHANNELS,
        "seats": seats,
        "hop_frames": HOP_FRAMES,
        "repeats": repeats,
        "served_precision": PRECISION_NAMES[served_precision],
        "forms": [],
    }
    for name in forms:
        form = plan_form(name, target, served_precision, compiler)
        log(f"{form.name}: batches {', '.join(map(str, batches))} ...")
        entry: dict = {"form": name, "skipped": None, "rows": []}
        try:  # the batches measured before a failure (out of memory, say) are kept
            for row in _sweep_form(form, reference, target, batches, repeats, seats, compile_mode):
                entry["rows"].append(row)
        except Exception as exc:  # a form this machine cannot run is a finding, not a crash
            entry["skipped"] = _reason(exc)
        entry.update(name=form.name, precision=PRECISION_NAMES[form.dtype], compiler=form.compiler)
        entry["notes"] = form.notes
        result["forms"].append(entry)
    if served_frame_sets:
        log(f"served path ({result['served_precision']}): frame sets per call {list(served_frame_sets)} ...")
        result["served"] = _served_path(checkpoint, device, seats, repeats, served_frame_sets)
    return result


def _served_path(checkpoint, device: str, seats: int, repeats: int, frame_sets: Sequence[int]) -> dict:
    """InferenceEngine.fuse on synthetic 640x360 frame sets (crop extraction included) and
    recognise on ``seats`` windows, as the model server calls them; frame sets/s with one
    window per student every HOP_FRAMES frame sets. Skipped, with the module it lacks, on a
    machine without the model server's input dependencies (OpenCV, protobuf, ...)."""
    try:
        from models.evaluation.bench import bench_device
        from models.serving.inference import InferenceEngine
    except ModuleNotFoundError as exc:
        return {
            "skipped": f"needs {exc.name or exc}, not installed here (the networks above need torch only)"
        }
    shape = SimpleNamespace(
        width=640, height=360, seats=seats, repeats=repeats,
        fuse_batches=list(frame_sets), recognise_batches=[seats],
    )  # fmt: skip
    try:
        timing = bench_device(InferenceEngine(checkpoint, device=device), shape)
    except Exception as exc:
        return {"skipped": _reason(exc)}
    window_ms = timing["recognise"][0]["ms_per_window"]
    for row in timing["fuse"]:
        row["frame_sets_per_s_with_recognition"] = 1e3 / (
            row["ms_per_frame_set"] + seats / HOP_FRAMES * window_ms
        )
    return timing
