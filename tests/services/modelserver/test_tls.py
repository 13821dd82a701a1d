"""The model server over TLS: a client that trusts its CA talks to it, a plaintext one cannot;
with a client CA set, only clients with a certificate it signed get in. Bad settings are one line."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.common.bus import DependencyUnavailable
from services.common.model_client import ModelClient
from services.common.tls import ClientTLS, TLSConfigError, client_tls, server_tls
from services.modelserver.config import ModelServerSettings
from services.modelserver.server import ModelServer

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
