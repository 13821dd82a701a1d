"""The model server over TLS: a client that trusts its CA talks to it, a plaintext one cannot;
with a client CA set, only clients with a certificate it signed get in. Bad settings are one line.
The plaintext health port answers grpc.health.v1 for probes and nothing else."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError

from services.common.bus import DependencyUnavailable
from services.common.model_client import ModelClient
from services.common.pb.classroom.v1 import inference_pb2, inference_pb2_grpc
from services.common.ports import PORTS_FILE_ENV, read_ports
from services.common.tls import ClientTLS, TLSConfigError, client_tls, server_tls
from services.modelserver.config import ModelServerSettings
from services.modelserver.server import FUSION_SERVICE, ModelServer

pytestmark = pytest.mark.integration


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject: str, key, issuer_name: str, issuer_key, *, ca: bool, san: bool = False):
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A campus CA, the model server's certificate and a fusion worker's, as PEM files."""
    root = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _cert("campus CA", ca_key, "campus CA", ca_key, ca=True)
    files = {}

    def write(name: str, cert, key=None) -> None:
        files[f"{name}.crt"] = root / f"{name}.crt"
        files[f"{name}.crt"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            files[f"{name}.key"] = root / f"{name}.key"
            files[f"{name}.key"].write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )

    write("ca", ca)
    server_key, client_key = _key(), _key()
    write("server", _cert("modelserver", server_key, "campus CA", ca_key, ca=False, san=True), server_key)
    write("client", _cert("fusion", client_key, "campus CA", ca_key, ca=False), client_key)
    return files


async def _info(server_settings: ModelServerSettings, tls: ClientTLS | None):
    server = ModelServer(server_settings)
    port = await server.start()
    client = ModelClient(f"localhost:{port}", timeout_s=5, tls=tls)
    try:
        return await client.info()
    finally:
        await client.close()
        await server.shutdown()


def settings(pki, **extra) -> ModelServerSettings:
    return ModelServerSettings(
        port=0,
        device="cpu",
        checkpoint="untrained",
        tls_cert_file=pki["server.crt"],
        tls_key_file=pki["server.key"],
        **extra,
    )


def test_a_client_that_trusts_the_campus_ca_talks_tls(pki):
    info = asyncio.run(_info(settings(pki), ClientTLS(pki["ca.crt"])))
    assert info.window_frames > 0


def test_a_plaintext_client_cannot_talk_to_a_tls_server(pki):
    with pytest.raises(DependencyUnavailable):
        asyncio.run(_info(settings(pki), None))


def test_mutual_tls_lets_in_only_clients_with_a_campus_certificate(pki):
    mutual = settings(pki, tls_client_ca_file=pki["ca.crt"])
    with pytest.raises(DependencyUnavailable):
        asyncio.run(_info(mutual, ClientTLS(pki["ca.crt"])))
    info = asyncio.run(_info(mutual, ClientTLS(pki["ca.crt"], pki["client.crt"], pki["client.key"])))
    assert info.window_frames > 0


def test_settings_that_cannot_work_are_one_line(pki, tmp_path):
    with pytest.raises(TLSConfigError, match="both the certificate and its key"):
        server_tls(pki["server.crt"], None, None)
    with pytest.raises(TLSConfigError, match="client CA needs the server's own certificate"):
        server_tls(None, None, pki["ca.crt"])
    with pytest.raises(TLSConfigError, match="needs the CA"):
        client_tls(None, pki["client.crt"], pki["client.key"])
    with pytest.raises(TLSConfigError, match="needs its key"):
        ClientTLS(pki["ca.crt"], pki["client.crt"], None).credentials()
    with pytest.raises(TLSConfigError, match=r"TLS CA .*missing\.crt"):
        ClientTLS(tmp_path / "missing.crt").credentials()
    assert server_tls(None, None, None) is None and client_tls(None, None, None) is None


async def _probe_health_port(server_settings: ModelServerSettings, ports_file):
    """What a plaintext client gets from the health port and from the TLS port."""
    server = ModelServer(server_settings)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=FUSION_SERVICE), timeout=5
            )
            refused = {}
            for name, stub, request in (
                (
                    "fusion",
                    inference_pb2_grpc.FusionKeypointsStub(channel),
                    inference_pb2.FusionBatchRequest(),
                ),
                (
                    "recognition",
                    inference_pb2_grpc.RecognitionStub(channel),
                    inference_pb2.RecognitionBatchRequest(),
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await stub.Infer(request, timeout=5)
                refused[name] = failed.value.code()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as plaintext:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        announced = read_ports(ports_file)
    finally:
        await server.shutdown()
    return port, server.health_port, health.status, refused, plaintext.value.code(), announced


def test_the_health_port_answers_probes_in_plaintext_and_serves_nothing_else(pki, tmp_path, monkeypatch):
    ports_file = tmp_path / "ports.json"
    monkeypatch.setenv(PORTS_FILE_ENV, str(ports_file))
    mutual = settings(pki, tls_client_ca_file=pki["ca.crt"], health_port=0)
    port, health_port, status, refused, plaintext, announced = asyncio.run(
        _probe_health_port(mutual, ports_file)
    )
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert refused == {"fusion": grpc.StatusCode.UNIMPLEMENTED, "recognition": grpc.StatusCode.UNIMPLEMENTED}
    assert plaintext == grpc.StatusCode.UNAVAILABLE  # the main port speaks TLS only
    assert health_port not in (None, 0, port)
    assert announced == {"grpc": port, "grpc_health": health_port}


def test_no_health_port_unless_asked_and_never_the_grpc_port(pki):
    assert ModelServerSettings().health_port is None
    with pytest.raises(ValidationError, match="MODELSERVER_HEALTH_PORT 50051 is the gRPC port"):
        ModelServerSettings(port=50051, health_port=50051)
    assert ModelServerSettings(port=0, health_port=0).health_port == 0  # two free ports, not one
