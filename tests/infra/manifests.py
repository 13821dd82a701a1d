"""The deployment files as data, for the infra tests: compose's services, the Kubernetes documents of
infra/k8s, and validation of a document against the Kubernetes schemas (built-in kinds) or the
operators' CRD schemas kept in infra/crds (custom kinds)."""

from __future__ import annotations

import copy
import functools
import shlex
from pathlib import Path
from typing import Any

import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes the manifests are written for


def compose() -> dict:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def compose_app_services() -> dict[str, dict]:
    """compose's services that run the suite's own image."""
    return {n: s for n, s in compose()["services"].items() if "smartclass" in str(s.get("image", ""))}


def k8s_documents() -> list[dict]:
    docs = []
    for path in sorted((INFRA / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def of_kind(kind: str) -> dict[str, dict]:
    """The documents of one kind by name."""
    return {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == kind}


def pod_spec(doc: dict) -> dict:
    spec = doc.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template", {})
    return template.get("spec", {})


def pod_labels(doc: dict) -> dict:
    spec = doc.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template", {})
    return template.get("metadata", {}).get("labels", {})


def containers(doc: dict) -> list[dict]:
    return pod_spec(doc).get("containers", [])


def workloads() -> list[dict]:
    """The documents that run the suite's own containers."""
    return [d for d in k8s_documents() if any("smartclass" in c.get("image", "") for c in containers(d))]


def env_of(doc: dict) -> dict[str, dict]:
    """A workload's environment: variable name -> its entry (value or valueFrom)."""
    return {e["name"]: e for c in containers(doc) for e in c.get("env", [])}


def command_of(service: dict) -> list[str]:
    command = service["command"]
    return command if isinstance(command, list) else shlex.split(command)


def role(command: list[str]) -> str:
    """What a suite container runs, from its command: `run fusion` -> fusion, `db purge` -> purge."""
    words = [w for w in command[1:] if not w.startswith("-")]
    return words[1] if words[0] in ("run", "db") else words[0]


# -- custom resources against the operators' CRDs ------------------------------------------------


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever the CRD does not keep them on purpose, as
    the API server's strict field validation does (a CRD's own schema only prunes them)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: _strict(v) if k != "properties" else {n: _strict(p) for n, p in v.items()}
        for k, v in schema.items()
    }
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the strict openAPIV3Schema of every served version in infra/crds."""
    found = {}
    for path in sorted((INFRA / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = _strict(version["schema"]["openAPIV3Schema"])
                    found[(f"{group}/{version['name']}", kind)] = schema
    return found


def is_custom(doc: dict) -> bool:
    group = doc["apiVersion"].rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def validate(doc: dict) -> None:
    """Raise if the document is not valid for Kubernetes K8S_VERSION or for its operator's CRD."""
    if not is_custom(doc):
        import kubernetes_validate

        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises with the field at fault
        return
    import jsonschema

    key = (doc["apiVersion"], doc["kind"])
    if key not in crd_schemas():
        raise LookupError(f"no CRD in infra/crds serves {key}: add the operator's CRD there")
    name = doc.get("metadata", {}).get("name", "")
    if not name or len(name) > 253 or name != name.lower():
        raise ValueError(f"{doc['kind']}: metadata.name {name!r} is not a Kubernetes object name")
    # OpenAPI v3 in a CRD is draft-4 JSON Schema plus x-kubernetes-* keys, which the validator ignores
    jsonschema.Draft4Validator(crd_schemas()[key]).validate(copy.deepcopy(doc))
