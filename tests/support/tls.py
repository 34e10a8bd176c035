"""TLS for tests: a CA and server certificate made by the test, and stunnel on loopback in
front of a plaintext embedded broker (Tansu speaks TLS itself only in builds we do not pin;
a terminator is also how many clusters are fronted)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.process import spawn, stop_process


@dataclass(frozen=True)
class Pki:
    """PEM files: the test CA, and a server certificate for 127.0.0.1 / localhost."""

    ca: Path
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_pki(folder: Path) -> Pki:
    """A fresh CA and a server certificate it signs (SAN 127.0.0.1, localhost)."""
    now = dt.datetime.now(dt.UTC)
    ca_key, server_key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mmstream test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(_pem_key(server_key))
    pki.key.chmod(0o600)
    return pki


def stunnel_binary() -> str:
    """The stunnel executable, installed from Debian when missing (skips only without apt)."""
    found = shutil.which("stunnel4") or shutil.which("stunnel")
    if found:
        return found
    if not shutil.which("apt-get"):
        pytest.skip(
            "stunnel is not installed and this system has no apt-get to install it "
            "(Debian package stunnel4; `make system-deps`)"
        )
    install = ["apt-get", "install", "-y", "-qq", "stunnel4"]
    if subprocess.run(install, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
        done = subprocess.run(install, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"apt-get install stunnel4 failed: {done.stderr[-500:]}")
    found = shutil.which("stunnel4") or shutil.which("stunnel")
    if not found:
        raise RuntimeError("stunnel4 installed but no stunnel executable on PATH")
    return found


class Stunnel:
    """stunnel in the foreground: TLS on ``accept`` (loopback), plaintext to ``connect``."""

    def __init__(self, pki: Pki, accept: int, connect: str, folder: Path) -> None:
        self.port = accept
        self.conf = folder / "stunnel.conf"
        self.log_path = folder / "stunnel.log"
        self.conf.write_text(
            "foreground = yes\npid =\ndebug = 4\n"
            f"[kafka]\naccept = 127.0.0.1:{accept}\nconnect = {connect}\n"
            f"cert = {pki.cert}\nkey = {pki.key}\n",
            encoding="utf-8",
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> Stunnel:
        with open(self.log_path, "ab") as log:
            self._proc = spawn(
                [stunnel_binary(), str(self.conf)],
                death_signal=signal.SIGKILL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"stunnel exited ({self._proc.returncode}): "
                    f"{self.log_path.read_text(errors='replace')[-800:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"stunnel did not listen on 127.0.0.1:{self.port} in {timeout_s}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, signal.SIGTERM, 5.0)
