"""What the Kubernetes manifests say agrees with the code and with compose: the KafkaTopics are the
suite's topics with their retention, each stream service scales on the lag of the consumer group it
really uses, every Kafka client connects over TLS as its own KafkaUser, the database URL is the one
CloudNativePG writes, the model server and its clients speak mutual TLS with certificates from
Secrets while the kubelet probes a plaintext health-only port, the network policies allow exactly the
architecture's paths, and compose runs the same services with the same settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from services.common.tls import client_tls, server_tls
from services.common.topics import BEHAVIOURS, FRAMES_ENHANCED, FRAMES_RAW, OBSERVATIONS, topic_specs
from services.enhancement.service import EnhancementService
from services.fusion.config import FusionSettings
from services.fusion.service import FusionService
from services.modelserver.config import ModelServerSettings
from services.modelserver.server import FUSION_SERVICE
from services.recognition.config import RecognitionSettings
from services.recognition.service import app_id
from services.store.service import StoreService
from tests.infra.manifests import (
    command_of,
    compose,
    compose_app_services,
    containers,
    env_of,
    of_kind,
    pod_labels,
    pod_spec,
    role,
    workloads,
)

# (Deployment, its input topic, its consumer group): StreamService's group is "classroom-<name>"
# (services/common/bus.py), recognition's is its faust app id.
STREAM_STAGES = [
    ("enhancement", FRAMES_RAW, f"classroom-{EnhancementService.name}"),
    ("fusion", FRAMES_ENHANCED, f"classroom-{FusionService.name}"),
    ("recognition", OBSERVATIONS, app_id("")),
    ("store", BEHAVIOURS, f"classroom-{StoreService.name}"),
]
# The model server's clients in k8s, with the settings class that reads their environment.
MODEL_CLIENTS = {"fusion": FusionSettings, "recognition": RecognitionSettings}
MODEL_SERVER_SECRET, MODEL_CLIENT_SECRET = "modelserver-tls", "modelserver-client-tls"
# Only k8s sets these: compose keeps Kafka and gRPC on one host's private network, in plaintext
# (so the model server needs no TLS files, and no plaintext health port beside a TLS one, and
# its clients no certificates), and runs one dashboard (k8s: several replicas share the key that
# signs login cookies).
K8S_ONLY = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SSL_CA_FILE",
    "KAFKA_SASL_",
    "LOGIN_SECRET",
    "TLS_",
    "HEALTH_PORT",
    "MODEL_SERVER_CA_FILE",
    "MODEL_SERVER_CERT_FILE",
    "MODEL_SERVER_KEY_FILE",
)


def kafka() -> dict:
    (cluster,) = of_kind("Kafka").values()
    return cluster


def client_listener() -> dict:
    (listener,) = kafka()["spec"]["kafka"]["listeners"]
    return listener


def bootstrap() -> str:
    return f"{kafka()['metadata']['name']}-kafka-bootstrap:{client_listener()['port']}"


def kafka_clients() -> dict[str, tuple[dict, str]]:
    """Workloads that talk to Kafka: name -> (document, their settings' env prefix)."""
    found = {}
    for doc in workloads():
        for variable in env_of(doc):
            if variable.endswith("_KAFKA_BOOTSTRAP"):
                found[doc["metadata"]["name"]] = (doc, variable.removesuffix("KAFKA_BOOTSTRAP"))
    return found


def database_clients() -> dict[str, dict]:
    return {
        d["metadata"]["name"]: d for d in workloads() if any(v.endswith("_DATABASE_URL") for v in env_of(d))
    }


def allowed_apps(rule: dict) -> set[str]:
    """The app labels a NetworkPolicy ingress rule lets in from this namespace."""
    apps = set()
    for peer in rule["from"]:
        if "namespaceSelector" in peer:
            continue
        selector = peer["podSelector"]
        apps |= {v for e in selector.get("matchExpressions", []) if e["key"] == "app" for v in e["values"]}
        if "app" in selector.get("matchLabels", {}):
            apps.add(selector["matchLabels"]["app"])
    return apps


# -- Kafka -------------------------------------------------------------------------------------


def test_kafka_runs_in_kraft_mode_on_node_pools() -> None:
    cluster = kafka()
    assert cluster["metadata"]["annotations"] == {
        "strimzi.io/kraft": "enabled",
        "strimzi.io/node-pools": "enabled",
    }
    pools = [
        p
        for p in of_kind("KafkaNodePool").values()
        if p["metadata"]["labels"]["strimzi.io/cluster"] == cluster["metadata"]["name"]
    ]
    roles = {r for p in pools for r in p["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    config = cluster["spec"]["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False  # topics are KafkaTopics, partitions explicit


def test_kafka_topics_are_the_suites_topics() -> None:
    topics = of_kind("KafkaTopic")
    partitions = topics[FRAMES_RAW]["spec"]["partitions"]
    expected = {spec.name: spec for spec in topic_specs(partitions=partitions)}
    assert set(topics) == set(expected)
    for name, spec in expected.items():
        topic = topics[name]["spec"]
        assert topic["partitions"] == spec.partitions, name
        declared = {k: str(v) for k, v in topic["config"].items()}
        assert spec.configs().items() <= declared.items(), name  # the retention the README promises
        if not spec.compacted:
            # a segment in use is never deleted: it must roll well within the retention
            assert int(declared.get("segment.ms", 7 * 86_400_000)) <= spec.retention_ms, name


def test_compose_creates_the_same_topics() -> None:
    (command,) = [command_of(s) for s in compose_app_services().values() if role(command_of(s)) == "topics"]
    partitions = int(command[command.index("--partitions") + 1])
    assert partitions == of_kind("KafkaTopic")[FRAMES_RAW]["spec"]["partitions"]
    # names and retention come from the same code (services/common/topics.py) as the KafkaTopics'


def test_topics_survive_a_broker_loss() -> None:
    brokers = sum(
        p["spec"]["replicas"] for p in of_kind("KafkaNodePool").values() if "broker" in p["spec"]["roles"]
    )
    min_insync = kafka()["spec"]["kafka"]["config"]["min.insync.replicas"]
    for name, topic in of_kind("KafkaTopic").items():
        assert min_insync < topic["spec"]["replicas"] <= brokers, name


@pytest.mark.parametrize("name", sorted(kafka_clients()))
def test_kafka_clients_connect_over_tls_as_their_own_user(name: str) -> None:
    doc, prefix = kafka_clients()[name]
    env = env_of(doc)
    assert env[f"{prefix}KAFKA_BOOTSTRAP"]["value"] == bootstrap()
    assert client_listener()["tls"] and env[f"{prefix}KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert (
        client_listener()["authentication"]["type"] == env[f"{prefix}KAFKA_SASL_MECHANISM"]["value"].lower()
    )
    user = env[f"{prefix}KAFKA_SASL_USERNAME"]["value"]
    assert user in of_kind("KafkaUser")
    password = env[f"{prefix}KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": user, "key": "password"}  # the Secret Strimzi's User Operator writes
    ca_file = env[f"{prefix}KAFKA_SSL_CA_FILE"]["value"]
    (mount,) = [
        m for c in containers(doc) for m in c["volumeMounts"] if ca_file.startswith(m["mountPath"] + "/")
    ]
    (volume,) = [v for v in pod_spec(doc)["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == f"{kafka()['metadata']['name']}-cluster-ca-cert"
    assert ca_file.endswith("/ca.crt")


@pytest.mark.parametrize(("deployment", "topic", "group"), STREAM_STAGES)
def test_each_stage_may_read_its_input_with_its_consumer_group(
    deployment: str, topic: str, group: str
) -> None:
    doc, prefix = kafka_clients()[deployment]
    user = of_kind("KafkaUser")[env_of(doc)[f"{prefix}KAFKA_SASL_USERNAME"]["value"]]
    granted = {
        (acl["resource"]["type"], acl["resource"]["name"], op)
        for acl in user["spec"]["authorization"]["acls"]
        if acl["resource"]["patternType"] == "literal"
        for op in acl["operations"]
    }
    assert {("topic", topic, "Read"), ("group", group, "Read")} <= granted


# -- autoscaling --------------------------------------------------------------------------------


@pytest.mark.parametrize(("deployment", "topic", "group"), STREAM_STAGES)
def test_stream_services_scale_on_their_consumer_lag(deployment: str, topic: str, group: str) -> None:
    (scaled,) = [
        s for s in of_kind("ScaledObject").values() if s["spec"]["scaleTargetRef"]["name"] == deployment
    ]
    assert "replicas" not in of_kind("Deployment")[deployment]["spec"]  # KEDA's HPA owns the count
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert (metadata["topic"], metadata["consumerGroup"]) == (topic, group)
    assert metadata["bootstrapServers"] == bootstrap()
    assert (metadata["tls"], metadata["sasl"]) == ("enable", "scram_sha512")
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["maxReplicaCount"] <= of_kind("KafkaTopic")[topic]["spec"]["partitions"]
    auth = of_kind("TriggerAuthentication")[trigger["authenticationRef"]["name"]]["spec"]
    (username,) = [r for r in auth["configMapTargetRef"] if r["parameter"] == "username"]
    keda_user = of_kind("ConfigMap")[username["name"]]["data"][username["key"]]
    secrets = {r["parameter"]: (r["name"], r["key"]) for r in auth["secretTargetRef"]}
    assert secrets["password"] == (keda_user, "password")
    assert secrets["ca"] == (f"{kafka()['metadata']['name']}-cluster-ca-cert", "ca.crt")
    acls = of_kind("KafkaUser")[keda_user]["spec"]["authorization"]["acls"]
    assert any(a["resource"] == {"type": "topic", "name": topic, "patternType": "literal"} for a in acls)
    assert any(a["resource"]["type"] == "group" and group.startswith(a["resource"]["name"]) for a in acls)


def test_only_the_stream_services_autoscale() -> None:
    targets = {s["spec"]["scaleTargetRef"]["name"] for s in of_kind("ScaledObject").values()}
    assert targets == {deployment for deployment, _, _ in STREAM_STAGES}


# -- PostgreSQL and the model server ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(database_clients()))
def test_database_url_is_the_one_cloudnative_pg_writes(name: str) -> None:
    (cluster,) = of_kind("Cluster").values()
    (url,) = [e for v, e in env_of(database_clients()[name]).items() if v.endswith("_DATABASE_URL")]
    assert url["valueFrom"]["secretKeyRef"] == {"name": f"{cluster['metadata']['name']}-app", "key": "uri"}
    assert cluster["spec"]["bootstrap"]["initdb"] == {"database": "classroom", "owner": "classroom"}


def setting_env(settings_class: type[BaseSettings], field: str) -> str:
    """The environment variable that sets ``field`` of ``settings_class``, which must read it."""
    assert field in settings_class.model_fields, f"{settings_class.__name__} has no {field}"
    return f"{settings_class.model_config.get('env_prefix', '')}{field}".upper()


def settings_from(doc: dict, settings_class: type[BaseSettings], fields: list[str]) -> dict[str, str]:
    """The plain values a workload gives to ``fields`` of ``settings_class``: field -> value."""
    env = env_of(doc)
    return {field: env[setting_env(settings_class, field)]["value"] for field in fields}


def secret_file(doc: dict, path: str) -> tuple[str, str]:
    """(Secret, key) of the file ``path`` inside a workload's containers, from its volume mounts."""
    (mount,) = [
        m for c in containers(doc) for m in c.get("volumeMounts", []) if path.startswith(m["mountPath"] + "/")
    ]
    (volume,) = [v for v in pod_spec(doc)["volumes"] if v["name"] == mount["name"]]
    key = path.removeprefix(mount["mountPath"] + "/")
    items = {i["path"]: i["key"] for i in volume["secret"].get("items", [])}
    return volume["secret"]["secretName"], items.get(key, key)


def model_server_ports() -> dict[str, int]:
    (container,) = containers(of_kind("Deployment")["modelserver"])
    return {p["name"]: p["containerPort"] for p in container["ports"]}


MODEL_SERVER_FIELDS = ["port", "health_port", "tls_cert_file", "tls_key_file", "tls_client_ca_file"]


def test_model_server_is_ready_on_grpc_health() -> None:
    doc = of_kind("Deployment")["modelserver"]
    (container,) = containers(doc)
    ports = model_server_ports()
    # the settings the manifest makes are valid (a health port of its own) and match the pod's ports
    settings = ModelServerSettings(**settings_from(doc, ModelServerSettings, MODEL_SERVER_FIELDS))
    assert (settings.port, settings.health_port) == (ports["grpc"], ports["grpc-health"])
    probe = container["readinessProbe"]["grpc"]
    # the kubelet's gRPC probe cannot speak TLS: it asks the plaintext health-only port, for the
    # service whose health services/modelserver/server.py reports SERVING once the models are loaded
    assert probe == {"port": ports["grpc-health"], "service": FUSION_SERVICE}


def test_model_server_and_its_clients_speak_mutual_tls() -> None:
    server = of_kind("Deployment")["modelserver"]
    files = settings_from(
        server, ModelServerSettings, ["tls_cert_file", "tls_key_file", "tls_client_ca_file"]
    )
    assert {field: secret_file(server, path) for field, path in files.items()} == {
        "tls_cert_file": (MODEL_SERVER_SECRET, "tls.crt"),
        "tls_key_file": (MODEL_SERVER_SECRET, "tls.key"),
        "tls_client_ca_file": (MODEL_SERVER_SECRET, "ca.crt"),
    }
    # mutual TLS: with a client CA the server refuses clients without a certificate that CA signed
    tls = server_tls(*(Path(path) for path in files.values()))
    assert tls is not None and tls.client_ca_file is not None
    (service,) = [s for s in of_kind("Service").values() if s["spec"]["selector"] == pod_labels(server)]
    (grpc_port,) = [p for p in service["spec"]["ports"] if p["targetPort"] == "grpc"]
    clients = {
        d["metadata"]["name"]: d for d in workloads() if any(v.endswith("_MODEL_SERVER") for v in env_of(d))
    }
    assert set(clients) == set(MODEL_CLIENTS)
    for name, settings_class in MODEL_CLIENTS.items():
        doc = clients[name]
        target = settings_from(doc, settings_class, ["model_server"])["model_server"]
        # clients dial the Service's name: the name the server certificate must carry (modelserver.yaml)
        assert target == f"dns:///{service['metadata']['name']}:{grpc_port['port']}", name
        files = settings_from(
            doc, settings_class, ["model_server_ca_file", "model_server_cert_file", "model_server_key_file"]
        )
        assert {field: secret_file(doc, path) for field, path in files.items()} == {
            "model_server_ca_file": (MODEL_CLIENT_SECRET, "ca.crt"),
            "model_server_cert_file": (MODEL_CLIENT_SECRET, "tls.crt"),
            "model_server_key_file": (MODEL_CLIENT_SECRET, "tls.key"),
        }, name
        # what the service builds from them: TLS that checks the server and presents a certificate
        tls = client_tls(*(Path(path) for path in files.values()))
        assert tls is not None and tls.cert_file is not None and tls.key_file is not None, name


# -- network policies ----------------------------------------------------------------------------


def policy(name: str) -> dict:
    return of_kind("NetworkPolicy")[name]["spec"]


def test_ingress_is_denied_by_default() -> None:
    deny = policy("default-deny-ingress")
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny


def test_only_the_suites_kafka_clients_and_keda_reach_the_brokers() -> None:
    spec = policy("kafka-from-clients")
    assert spec["podSelector"]["matchLabels"]["strimzi.io/cluster"] == kafka()["metadata"]["name"]
    (rule,) = spec["ingress"]
    assert [p["port"] for p in rule["ports"]] == [client_listener()["port"]]
    assert rule["from"] == client_listener()["networkPolicyPeers"]  # Strimzi's own policy says the same
    assert allowed_apps(rule) == {pod_labels(d)["app"] for d, _ in kafka_clients().values()}
    (outside,) = [p for p in rule["from"] if "namespaceSelector" in p]
    assert outside["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "keda"}


def test_only_the_store_dashboard_and_purge_reach_postgres() -> None:
    (cluster,) = of_kind("Cluster").values()
    spec = policy("postgres-from-store-and-dashboard")
    assert spec["podSelector"]["matchLabels"] == {"cnpg.io/cluster": cluster["metadata"]["name"]}
    clients, operator = spec["ingress"]
    assert [p["port"] for p in clients["ports"]] == [5432]
    assert allowed_apps(clients) == {pod_labels(d)["app"] for d in database_clients().values()}
    assert [p["port"] for p in operator["ports"]] == [8000]


def test_only_fusion_and_recognition_reach_the_model_server() -> None:
    (rule,) = policy("modelserver-from-fusion-and-recognition")["ingress"]
    assert allowed_apps(rule) == set(MODEL_CLIENTS)
    # the TLS port only: the plaintext health port is for the kubelet, which probes from the node
    assert [p["port"] for p in rule["ports"]] == [model_server_ports()["grpc"]]
    assert {pod_labels(d)["app"] for d in workloads()} >= set(MODEL_CLIENTS) | {"modelserver"}


# -- compose runs the same suite ------------------------------------------------------------------


def k8s_roles() -> dict[str, dict]:
    return {role(containers(d)[0]["command"]): d for d in workloads()}


def test_compose_runs_the_same_services() -> None:
    in_compose = {role(command_of(s)) for s in compose_app_services().values()}
    assert in_compose - {"topics"} == set(k8s_roles())  # k8s: KafkaTopics instead of `classroom topics`


@pytest.mark.parametrize(
    "name", sorted(n for n, s in compose_app_services().items() if role(command_of(s)) != "topics")
)
def test_compose_sets_the_same_settings(name: str) -> None:
    service = compose_app_services()[name]
    k8s_env = env_of(k8s_roles()[role(command_of(service))])
    in_k8s = {v for v in k8s_env if not v.split("_", 1)[1].startswith(K8S_ONLY)}
    assert set(service.get("environment") or {}) == in_k8s


def test_compose_runs_the_same_kafka_and_postgres() -> None:
    services = compose()["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{kafka()['spec']['kafka']['version']}"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    (cluster,) = of_kind("Cluster").values()
    assert services["postgres"]["image"].split(":")[1] == cluster["spec"]["imageName"].split(":")[1]
