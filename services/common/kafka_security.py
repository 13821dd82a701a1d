"""How every Kafka client of the suite authenticates and encrypts: one set of settings, the
keyword arguments each client library wants.

Frames of students go from each classroom's edge box to the cluster; on a campus the broker
listens with TLS and SASL/SCRAM, and every client (aiokafka in the stream services, faust and
kafka-python's admin client in recognition, the admin client of ``classroom topics``) takes
``<PREFIX>_KAFKA_SECURITY_PROTOCOL`` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL),
``_KAFKA_SSL_CA_FILE`` (unset: the system's trust store), ``_KAFKA_SSL_CERT_FILE`` /
``_KAFKA_SSL_KEY_FILE`` (a client certificate, when the broker asks for one) and
``_KAFKA_SASL_MECHANISM`` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), ``_KAFKA_SASL_USERNAME``,
``_KAFKA_SASL_PASSWORD``. PLAINTEXT (the default) is for one machine: the embedded broker.

``client_kwargs`` is where every client of the suite starts from: the brokers, the client id the
broker's logs and quotas know it by, and these settings.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: Protocol = "PLAINTEXT"
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    sasl_mechanism: Mechanism | None = None
    username: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        sasl = self.protocol.startswith("SASL_")
        if sasl and not (self.sasl_mechanism and self.username and self.password):
            raise ValueError(
                f"{self.protocol} needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if not sasl and (self.sasl_mechanism or self.username or self.password):
            raise ValueError(f"SASL settings are set but KAFKA_SECURITY_PROTOCOL is {self.protocol}")
        tls = self.protocol in ("SSL", "SASL_SSL")
        if not tls and (self.ca_file or self.cert_file or self.key_file):
            raise ValueError(f"TLS files are set but KAFKA_SECURITY_PROTOCOL is {self.protocol}")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a Kafka client certificate needs its key, and a key its certificate")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of aiokafka's and kafka-python's clients (the same names in both)."""
        if self.protocol == "PLAINTEXT":
            return {}
        out: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            out["ssl_context"] = self.ssl_context()
        if self.sasl_mechanism:
            out |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password,
            }
        return out

    def faust_credentials(self) -> Any:
        """``broker_credentials`` of a faust App (None: plaintext)."""
        import faust

        if self.protocol == "PLAINTEXT":
            return None
        if self.sasl_mechanism is not None:
            return faust.SASLCredentials(
                username=self.username,
                password=self.password,
                ssl_context=self.ssl_context(),
                mechanism=self.sasl_mechanism,
            )
        return faust.SSLCredentials(self.ssl_context())


def client_kwargs(bootstrap: str, *, client_id: str, security: KafkaSecurity | None = None) -> dict[str, Any]:
    """Where, as whom and how securely a Kafka client connects: the keyword arguments that
    aiokafka's and kafka-python's producers, consumers and admin clients share (None: plaintext)."""
    return {
        "bootstrap_servers": bootstrap,
        "client_id": client_id,
        **(security or KafkaSecurity()).kwargs(),
    }
