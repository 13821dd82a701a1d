"""The project's layers (pyproject.toml's import-linter contract "the project: ...") and its imports.

``lint-imports`` checks that imports point down the layers. These tests check what it does not:
that every module of the project sits in one of the layers (a new module must be placed), that
no modules import each other in a circle, and that the contract still refuses upward imports.
grimp reads every import statement of a file, those inside functions included.
"""

from __future__ import annotations

import graphlib
import tomllib
from pathlib import Path

import grimp
import pytest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
PROJECT_CONTRACT = "the project: runners > models > libraries > services.common"


def _importlinter() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]


def _layers() -> list[grimp.Layer]:
    """The contract's layers, top first, as import-linter reads them: " | " joins independent
    modules, " : " modules that may import each other, "(name)" is a layer that may be absent."""
    (contract,) = [c for c in _importlinter()["contracts"] if c["name"] == PROJECT_CONTRACT]
    layers = []
    for text in contract["layers"]:
        independent = "|" in text
        names = [name.strip().strip("()") for name in text.split("|" if independent else ":")]
        layers.append(grimp.Layer(*names, independent=independent))
    return layers


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*_importlinter()["root_packages"], cache_dir=None)


def _in_layer(module: str, layer_modules: set[str]) -> bool:
    parts = module.split(".")
    return any(".".join(parts[:n]) in layer_modules for n in range(1, len(parts) + 1))


def test_every_module_is_in_a_layer(graph):
    """A package whose ``__init__`` imports nothing may stay out (its modules are placed one by one)."""
    layer_modules = {name for layer in _layers() for name in layer.module_tails}
    unplaced = sorted(
        module
        for module in graph.modules
        if not _in_layer(module, layer_modules)
        and not (graph.find_children(module) and not graph.find_modules_directly_imported_by(module))
    )
    assert not unplaced, (
        f"place these modules in a layer of {PROJECT_CONTRACT!r} (pyproject.toml): {unplaced}"
    )


def test_no_import_circle(graph):
    imported_by = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    try:
        graphlib.TopologicalSorter(imported_by).prepare()
    except graphlib.CycleError as exc:
        circle = exc.args[1][::-1]  # graphlib lists each module before the one that imports it
        pytest.fail("import circle: " + " imports ".join(circle))


def test_imports_point_down(graph):
    upward = graph.find_illegal_dependencies_for_layers(_layers())
    assert not upward, sorted(f"{d.importer} imports {d.imported}" for d in upward)


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("services.common.vocabulary", "services.dataset.api"),  # the vocabulary, a library
        ("services.dataset.format", "services.simulator.live"),  # the data-set format, the simulator
        ("services.enhancement.pipeline", "services.enhancement.service"),  # section 3.2, its runner
        ("models.networks.registry", "services.fusion.service"),  # a network, a service
        ("dashboards.queries", "services.tools.bench_kafka"),  # the dashboard, a bench
    ],
)
def test_the_contract_refuses_an_upward_import(graph, importer, imported):
    graph.add_import(importer=importer, imported=imported)
    try:
        assert graph.find_illegal_dependencies_for_layers(_layers())
    finally:
        graph.remove_import(importer=importer, imported=imported)
