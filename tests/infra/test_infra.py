"""Deployment files can't be run here (no Docker engine): check what can be checked. Every file parses,
every environment variable they set exists in a settings class, every command parses with the CLI,
the example campus file validates, and the layout keeps its scaling promises."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from dashboards.config import DashboardSettings
from services.capture.config import CaptureSettings
from services.cli.main import build_parser
from services.common.campus import load_campus
from services.common.settings import env_names
from services.enhancement.config import EnhancementSettings
from services.fusion.config import FusionSettings
from services.modelserver.config import ModelServerSettings
from services.recognition.config import RecognitionSettings
from services.store.config import StoreSettings

INFRA = Path(__file__).resolve().parents[2] / "infra"
SETTINGS = [
    CaptureSettings,
    EnhancementSettings,
    FusionSettings,
    RecognitionSettings,
    StoreSettings,
    ModelServerSettings,
    DashboardSettings,
]
KNOWN = set().union(*(env_names(cls) for cls in SETTINGS))
APP_PREFIXES = tuple(str(cls.model_config["env_prefix"]) for cls in SETTINGS)


def compose() -> dict:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def k8s_documents() -> list[dict]:
    docs = []
    for path in sorted((INFRA / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template", {})
    return template.get("spec", {}).get("containers", [])


def app_environment() -> list[tuple[str, str]]:
    """(where, variable) for every variable given to one of the suite's own containers."""
    found = []
    for name, service in compose()["services"].items():
        if "smartclass" not in str(service.get("image", "")):
            continue
        for variable in service.get("environment", {}) or {}:
            found.append((f"compose:{name}", variable))
    for doc in k8s_documents():
        for container in containers(doc):
            for entry in container.get("env", []):
                found.append((f"k8s:{doc['metadata']['name']}", entry["name"]))
            for source in container.get("envFrom", []):
                raise AssertionError(f"envFrom hides variable names from this check: {source}")
    return found


def test_every_file_parses() -> None:
    assert compose()["services"]
    kinds = {d["kind"] for d in k8s_documents()}
    assert {"Deployment", "Service", "Job", "ConfigMap", "Secret"} <= kinds
    kustomization = yaml.safe_load((INFRA / "k8s" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (INFRA / "k8s" / resource).is_file(), resource


@pytest.mark.parametrize(("where", "variable"), app_environment())
def test_every_variable_exists_in_a_settings_class(where: str, variable: str) -> None:
    assert variable.startswith(APP_PREFIXES), f"{where}: {variable} belongs to no service"
    assert variable in KNOWN, f"{where}: {variable} is not a field of any settings class"


def test_secret_keys_are_settings() -> None:
    secret = next(d for d in k8s_documents() if d["kind"] == "Secret")
    assert set(secret["stringData"]) <= KNOWN


def commands() -> list[tuple[str, list[str]]]:
    found = []
    for name, service in compose()["services"].items():
        if "smartclass" in str(service.get("image", "")) and service.get("command"):
            command = service["command"]
            found.append((f"compose:{name}", command if isinstance(command, list) else shlex.split(command)))
    for doc in k8s_documents():
        for container in containers(doc):
            if container.get("command"):
                found.append((f"k8s:{doc['metadata']['name']}", container["command"]))
    return found


@pytest.mark.parametrize(("where", "command"), commands())
def test_every_command_parses(where: str, command: list[str]) -> None:
    assert command[0] == "classroom", where
    args = command[1:]
    build_parser(args[0]).parse_args(args)


def test_example_campus_file_validates() -> None:
    campus = load_campus(INFRA / "campus.example.yaml")
    camera = campus.camera("room-101", "front")
    assert camera is not None and camera.calibration is not None and len(camera.seats) == 4
    assert campus.student_in_seat("CS101", "A4") == "s-1003"


def test_model_servers_get_gpus_and_scale_on_their_own() -> None:
    gpu = compose()["services"]["modelserver"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert "gpu" in gpu["capabilities"]
    deployment = next(
        d for d in k8s_documents() if d["kind"] == "Deployment" and d["metadata"]["name"] == "modelserver"
    )
    assert containers(deployment)[0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    service = next(
        d for d in k8s_documents() if d["kind"] == "Service" and d["metadata"]["name"] == "modelserver"
    )
    assert service["spec"]["clusterIP"] == "None"  # clients see every replica and balance across them


def test_partitions_cover_every_worker_group() -> None:
    job = next(d for d in k8s_documents() if d["kind"] == "Job")
    command = containers(job)[0]["command"]
    partitions = int(command[command.index("--partitions") + 1])
    workers = [
        d
        for d in k8s_documents()
        if d["kind"] == "Deployment"
        and d["metadata"]["name"] in ("enhancement", "fusion", "recognition", "store")
    ]
    assert workers and all(d["spec"]["replicas"] <= partitions for d in workers)


def test_only_fusion_and_recognition_reach_the_model_server() -> None:
    policies = {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == "NetworkPolicy"}
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    model = policies["modelserver-from-fusion-and-recognition"]["spec"]
    (rule,) = model["ingress"]
    (source,) = rule["from"]
    assert set(source["podSelector"]["matchExpressions"][0]["values"]) == {"fusion", "recognition"}
    grpc_ports = {
        p["containerPort"]
        for d in k8s_documents()
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "modelserver"
        for c in containers(d)
        for p in c.get("ports", [])
        if p.get("name") == "grpc"
    }
    assert {p["port"] for p in rule["ports"]} == grpc_ports
    labels = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]["app"]
        for d in k8s_documents()
        if d["kind"] == "Deployment"
    }
    assert {"fusion", "recognition", "modelserver"} <= set(labels.values())


K8S_VERSION = "1.30.0"  # the oldest Kubernetes the manifests are written for


@pytest.mark.parametrize(
    "doc",
    [d for d in k8s_documents() if d.get("kind") != "Kustomization"],
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)
def test_every_manifest_is_valid_kubernetes(doc: dict) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises with the field at fault
