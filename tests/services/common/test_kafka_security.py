"""Every Kafka client takes the service's TLS / SASL settings; a half-set combination is refused
at start, and the password never shows."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl

import faust
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from services.common import bus
from services.common.kafka_security import KafkaSecurity, client_kwargs
from services.common.metrics import ServiceMetrics
from services.fusion.config import FusionSettings


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "campus kafka CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("kafka") / "ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_plaintext_adds_nothing():
    assert KafkaSecurity().kwargs() == {} and KafkaSecurity().faust_credentials() is None


def test_sasl_over_tls_gives_every_client_the_same_arguments(ca_file):
    security = KafkaSecurity(
        "SASL_SSL", ca_file=ca_file, sasl_mechanism="SCRAM-SHA-512", username="u", password="p"
    )
    kwargs = security.kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL" and isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "u",
        "p",
    )
    assert isinstance(security.faust_credentials(), faust.SASLCredentials)
    assert isinstance(KafkaSecurity("SSL", ca_file=ca_file).faust_credentials(), faust.SSLCredentials)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"protocol": "SASL_SSL"}, "needs KAFKA_SASL_MECHANISM"),
        ({"sasl_mechanism": "PLAIN", "username": "u", "password": "p"}, "SASL settings are set"),
        ({"protocol": "SSL", "cert_file": "c.pem"}, "needs its key"),
    ],
)
def test_half_set_combinations_are_refused(changes, message, ca_file):
    with pytest.raises(ValueError, match=message):
        KafkaSecurity(**changes)
    with pytest.raises(ValueError, match="TLS files are set"):
        KafkaSecurity(ca_file=ca_file)


def _settings(**extra) -> FusionSettings:
    return FusionSettings(
        kafka_bootstrap="kafka:9093", campus_file="campus.yaml", model_server="m:1", **extra
    )


def test_settings_carry_it_and_hide_the_password(ca_file):
    settings = _settings(
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_ca_file=ca_file,
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="fusion",
        kafka_sasl_password="s3cret",
    )
    assert settings.kafka_security().password == "s3cret"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    with pytest.raises(ValidationError, match="needs KAFKA_SASL_MECHANISM"):
        _settings(kafka_security_protocol="SASL_PLAINTEXT")


def test_the_stream_services_producer_connects_with_them(ca_file, monkeypatch):
    seen = {}

    class FakeProducer:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        async def start(self):
            pass

    monkeypatch.setattr(bus, "AIOKafkaProducer", FakeProducer)
    settings = _settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=ca_file)
    asyncio.run(bus.Producer(settings, ServiceMetrics("fusion"), client_id="x").start())
    assert seen["security_protocol"] == "SSL" and isinstance(seen["ssl_context"], ssl.SSLContext)


def test_every_client_starts_from_the_same_connection_arguments(ca_file):
    assert client_kwargs("kafka:9093", client_id="classroom-x") == {
        "bootstrap_servers": "kafka:9093",
        "client_id": "classroom-x",
    }
    secured = client_kwargs(
        "kafka:9093", client_id="classroom-x", security=KafkaSecurity("SSL", ca_file=ca_file)
    )
    assert (secured["bootstrap_servers"], secured["client_id"], secured["security_protocol"]) == (
        "kafka:9093",
        "classroom-x",
        "SSL",
    )
    assert isinstance(secured["ssl_context"], ssl.SSLContext)


def test_the_stream_services_consumer_connects_with_them(ca_file, monkeypatch):
    seen = {}
    monkeypatch.setattr(bus, "AIOKafkaConsumer", lambda *topics, **kwargs: seen.update(kwargs))
    monkeypatch.setattr(bus, "CampusFile", lambda *args, **kwargs: None)  # no campus file to read here

    class Fusion(bus.StreamService):
        name = "fusion"

        async def process_batch(self, records):
            return []

    settings = _settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=ca_file)
    Fusion(settings, input_topic="observations")._make_consumer()
    assert (seen["bootstrap_servers"], seen["client_id"], seen["security_protocol"]) == (
        "kafka:9093",
        "classroom-fusion",
        "SSL",
    )
