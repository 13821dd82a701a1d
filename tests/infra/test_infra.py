"""Deployment files can't be run here (no Docker engine, no cluster): check what can be checked. Every
file parses, every environment variable they set exists in a settings class, every command parses with
the CLI, the example campus file validates, and every manifest is valid Kubernetes (built-in kinds) or
valid for its operator's CRD (custom kinds; tests/infra/test_k8s_suite.py checks what they say)."""

from __future__ import annotations

import re

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
from tests.infra.manifests import (
    INFRA,
    command_of,
    compose,
    compose_app_services,
    containers,
    k8s_documents,
    of_kind,
    validate,
)

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


def app_environment() -> list[tuple[str, str]]:
    """(where, variable) for every variable given to one of the suite's own containers."""
    found = []
    for name, service in compose_app_services().items():
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
    assert {"Deployment", "Service", "CronJob", "ConfigMap", "Kafka", "Cluster", "ScaledObject"} <= kinds
    kustomization = yaml.safe_load((INFRA / "k8s" / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in (INFRA / "k8s").glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize(("where", "variable"), app_environment())
def test_every_variable_exists_in_a_settings_class(where: str, variable: str) -> None:
    assert variable.startswith(APP_PREFIXES), f"{where}: {variable} belongs to no service"
    assert variable in KNOWN, f"{where}: {variable} is not a field of any settings class"


def commands() -> list[tuple[str, list[str]]]:
    found = [(f"compose:{n}", command_of(s)) for n, s in compose_app_services().items() if s.get("command")]
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
    deployment = of_kind("Deployment")["modelserver"]
    assert containers(deployment)[0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "modelserver" not in {
        s["spec"]["scaleTargetRef"]["name"] for s in of_kind("ScaledObject").values()
    }
    service = of_kind("Service")["modelserver"]
    assert service["spec"]["clusterIP"] == "None"  # clients see every replica and balance across them


@pytest.mark.parametrize(
    "doc",
    [d for d in k8s_documents() if d.get("kind") != "Kustomization"],
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)
def test_every_manifest_is_valid_kubernetes(doc: dict) -> None:
    validate(doc)  # raises with the field at fault


def _broken(kind: str, name: str, change) -> dict:
    doc = of_kind(kind)[name]
    change(doc)
    return doc


def _set(path: list, value) -> object:
    def change(doc: dict) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("kind", "name", "change", "reason"),
    [
        ("KafkaTopic", "frames.raw.v1", _set(["spec", "partitions"], "many"), "not of type 'integer'"),
        ("KafkaTopic", "frames.raw.v1", _set(["spec", "retention"], "15m"), "'retention' was unexpected"),
        (
            "Kafka",
            "classroom",
            _set(["spec", "kafka", "listeners", 0, "authentication", "type"], "scram"),
            "'scram'",
        ),
        ("KafkaNodePool", "dual-role", _set(["spec", "roles"], ["leader"]), "'leader' is not one of"),
        (
            "KafkaUser",
            "classroom-store",
            _set(["spec", "authorization", "acls", 0, "operations"], ["Eat"]),
            "'Eat'",
        ),
        ("Cluster", "classroom-db", _set(["spec", "instances"], "three"), "not of type 'integer'"),
        (
            "ScaledObject",
            "fusion",
            _set(["spec", "triggers", 0, "metadata", "lagThreshold"], 40),
            "not of type",
        ),
        (
            "ScaledObject",
            "fusion",
            _set(["spec", "scaleTargetRef", "kind_"], "Deployment"),
            "'kind_' was unexpected",
        ),
        (
            "TriggerAuthentication",
            "kafka-lag-reader",
            _set(["spec", "secretTargetRef", 0, "key"], None),
            "None",
        ),
        ("Deployment", "fusion", _set(["spec", "template", "spec", "containers", 0, "envv"], []), "'envv'"),
        (
            "NetworkPolicy",
            "kafka-from-clients",
            _set(["spec", "policyTypes"], "Ingress"),
            "not of type 'array'",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and " " not in v else "",
)
def test_a_broken_manifest_is_refused(kind: str, name: str, change, reason: str) -> None:
    with pytest.raises(Exception, match=re.escape(reason)) as refused:
        validate(_broken(kind, name, change))
    assert type(refused.value).__name__ == "ValidationError"  # jsonschema's or kubernetes-validate's


def test_a_custom_kind_without_its_crd_is_refused() -> None:
    unknown = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaConnect",
        "metadata": {"name": "x"},
        "spec": {},
    }
    with pytest.raises(LookupError, match="no CRD"):
        validate(unknown)
