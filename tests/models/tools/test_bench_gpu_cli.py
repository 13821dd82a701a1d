"""``classroom bench gpu``: the CPU path with a tiny sweep, the CUDA-only parts skipped with a reason,
and a machine that lacks the model code's dependencies told which one (never a traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from models.evaluation.gpu_sweep import StageRunner, plan_form
from services.cli.main import main
from services.common.vocabulary import HOP_FRAMES

REPO = Path(__file__).resolve().parents[3]


def test_cpu_sweep_prints_and_writes_every_form(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    args = ["bench", "gpu", "--device", "cpu", "--batches", "1,2", "--repeats", "1"]
    assert main([*args, "--served-frame-sets", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert (result["device"], result["crop_size"], result["channels"], result["seats"]) == ("cpu", 64, 6, 20)
    assert result["served_precision"] == "fp32"
    forms = {f["form"]: f for f in result["forms"]}
    assert [(f["name"], f["precision"], f["compiler"]) for f in forms.values()] == [
        ("fp32", "fp32", None),
        ("bf16", "bf16", None),  # fp16 is CUDA only
        ("fp32 trace", "fp32", "trace"),  # torch.compile is not the CPU default
    ]
    for form in forms.values():
        assert form["skipped"] is None
        assert [row["batch"] for row in form["rows"]] == [1, 2]
        for row in form["rows"]:
            # a frame set: 20 crops, and 20 / HOP_FRAMES windows, both at the row's batch
            seconds = (
                20 * row["crop_ms"] / 1e3 / row["batch"]
                + 20 / HOP_FRAMES * row["window_ms"] / 1e3 / row["batch"]
            )
            assert row["frame_sets_per_s"] == pytest.approx(1 / seconds)
            assert row["crops_per_s"] == pytest.approx(row["batch"] / row["crop_ms"] * 1e3)
    assert "bf16 instead" in forms["fp16"]["notes"][0]
    assert [row["frame_sets"] for row in result["served"]["fuse"]] == [1]
    assert "frame sets/s" in printed and "fp32 trace" in printed and "served path, fp32" in printed


def test_cuda_parts_are_skipped_with_a_reason_on_cpu(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu.json"
    assert main(["bench", "gpu", "--json", str(out)]) == 0  # the default device is cuda
    assert "CUDA is not available" in capsys.readouterr().out
    assert "CUDA is not available" in json.loads(out.read_text())["skipped"]
    cpu = torch.device("cpu")
    fp16 = plan_form("fp16", cpu, torch.float32)
    assert fp16.dtype == torch.bfloat16 and "CUDA only" in fp16.notes[0]
    compiled = plan_form("compiled", cpu, torch.float32)
    assert compiled.compiler == "trace" and "--compiler inductor" in compiled.notes[0]


class _Doubling(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (x * 2, x.sum(dim=-1))


def test_failed_compile_falls_back_to_a_trace(monkeypatch):
    def broken_compile(*args, **kwargs):
        raise RuntimeError("no C compiler\nsecond line")

    monkeypatch.setattr(torch, "compile", broken_compile)
    form = plan_form("compiled", torch.device("cpu"), torch.float32, compiler="inductor")
    runner = StageRunner(_Doubling(), form, torch.device("cpu"))
    x = torch.arange(6.0).view(2, 3)
    doubled, sums = runner.call_for((x,))()
    assert doubled.tolist() == [[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]] and sums.tolist() == [3.0, 12.0]
    assert (form.name, form.compiler) == ("fp32 trace", "trace")
    assert form.notes == ["torch.compile failed (RuntimeError: no C compiler): TorchScript trace instead"]


def test_unknown_device_or_form_is_refused_without_a_traceback(capsys):
    assert main(["bench", "gpu", "--device", "tpu"]) == 0
    assert "not a device this benchmark knows" in capsys.readouterr().out
    assert main(["bench", "gpu", "--device", "cpu", "--forms", "fp32,int8"]) == 2
    assert "unknown form(s) ['int8']" in capsys.readouterr().out


# what the lent GPU machine lacks (shared DESIGN.md: it has torch, numpy, OpenCV, grpc, protobuf, onnx and
# scikit-image, and no registry to install more from)
_BLOCK_MODULES = """
import runpy, sys
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pydantic", "yaml", "zstandard"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Missing())
sys.argv = ["bench_gpu", "--device", "cpu", "--forms", "fp32", "--batches", "1", "--repeats", "1",
            "--served-frame-sets", "1"]
runpy.run_module("models.tools.bench_gpu", run_name="__main__")
"""


def test_the_networks_are_measured_on_a_machine_with_torch_alone(tmp_path):
    """The sweep of the networks needs torch and the network code only; the served-path table, which
    decodes frame sets like the model server, says which module it lacks there."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _BLOCK_MODULES],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert "networks: " in done.stdout and "frame sets/s per device (fp32, batch 1 crops)" in done.stdout
    assert "served path: skipped: needs " in done.stdout


@pytest.mark.gpu
def test_cuda_sweep_runs_fp16_and_compiled(tmp_path, capsys):
    device = os.environ.get("CLASSROOM_TEST_DEVICE", "cuda")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (CLASSROOM_TEST_DEVICE=cuda[:N]); the CPU path is tested above")
    out = tmp_path / "gpu.json"
    args = ["bench", "gpu", "--device", device, "--batches", "1,20", "--repeats", "2"]
    assert main([*args, "--served-frame-sets", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["served_precision"] == "fp16" and result["cuda"]
    names = [f["name"] for f in result["forms"]]
    assert names[:2] == ["fp32", "fp16"] and names[2] in ("fp16 inductor", "fp16 trace")
    assert all(f["skipped"] is None and len(f["rows"]) == 2 for f in result["forms"])
