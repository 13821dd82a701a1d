"""TLS for the model server's gRPC: server credentials, client credentials, one check.

Frames of students travel from the fusion service to the model server; on a campus network
that link is encrypted: the model server serves TLS with its certificate and key
(``MODELSERVER_TLS_CERT_FILE``, ``MODELSERVER_TLS_KEY_FILE``) and, with
``MODELSERVER_TLS_CLIENT_CA_FILE``, asks every client for a certificate that CA signed
(mutual TLS). Clients (fusion, recognition) trust ``<PREFIX>_MODEL_SERVER_CA_FILE`` and, for
mutual TLS, present ``<PREFIX>_MODEL_SERVER_CERT_FILE`` / ``_KEY_FILE``. Unset: plaintext, for
one machine (the demo) only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc


class TLSConfigError(ValueError):
    """A TLS setting names a file that cannot be read, or half of a pair is missing."""


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"{what} {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class ServerTLS:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None  # set: clients must present a certificate it signed

    def credentials(self) -> grpc.ServerCredentials:
        cert, key = _read(self.cert_file, "TLS certificate"), _read(self.key_file, "TLS key")
        assert cert is not None and key is not None
        client_ca = _read(self.client_ca_file, "TLS client CA")
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )


@dataclass(frozen=True)
class ClientTLS:
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert_file is None) != (self.key_file is None):
            raise TLSConfigError("a client certificate needs its key, and a key its certificate")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file, "TLS CA"),
            private_key=_read(self.key_file, "TLS client key"),
            certificate_chain=_read(self.cert_file, "TLS client certificate"),
        )


def server_tls(
    cert_file: Path | None, key_file: Path | None, client_ca_file: Path | None
) -> ServerTLS | None:
    """The server's TLS from its settings; None (plaintext) when no certificate is set."""
    if cert_file is None and key_file is None:
        if client_ca_file is not None:
            raise TLSConfigError("a client CA needs the server's own certificate and key")
        return None
    if cert_file is None or key_file is None:
        raise TLSConfigError("TLS needs both the certificate and its key")
    return ServerTLS(Path(cert_file), Path(key_file), Path(client_ca_file) if client_ca_file else None)


def client_tls(ca_file: Path | None, cert_file: Path | None, key_file: Path | None) -> ClientTLS | None:
    """A client's TLS from its settings; None (plaintext) when no CA is set."""
    if ca_file is None:
        if cert_file is not None or key_file is not None:
            raise TLSConfigError("a client certificate needs the CA that signed the server's")
        return None
    return ClientTLS(Path(ca_file), cert_file, key_file)
