"""Certificates made with the openssl CLI: an independent tool, so the tests never share code
with the PKI they check."""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*args: str, input: str | None = None) -> str:
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, input=input, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {r.stderr}")
    return r.stdout


def ec_key(path: Path) -> Path:
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    path.chmod(0o600)
    return path


def self_signed_ca(directory: Path, name: str, cn: str | None = None) -> tuple[Path, Path]:
    """A CA certificate (basicConstraints CA:TRUE) and its key."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec_key(directory / f"{name}.key")
    crt = directory / f"{name}.crt"
    openssl(
        "req", "-x509", "-new", "-key", str(key), "-out", str(crt), "-days", "30", "-subj", f"/CN={cn or name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )
    return crt, key


def self_signed_leaf(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate that is not a CA (CA:FALSE), and its key."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec_key(directory / f"{name}.key")
    crt = directory / f"{name}.crt"
    openssl(
        "req", "-x509", "-new", "-key", str(key), "-out", str(crt), "-days", "30", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth",
    )
    return crt, key


def signed_cert(
    directory: Path, name: str, ca_crt: Path, ca_key: Path, subject: str, usage: str = "clientAuth", sans: str | None = None
) -> tuple[Path, Path]:
    """A leaf signed by ca_crt/ca_key (e.g. a client certificate for /CN=user/O=group)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec_key(directory / f"{name}.key")
    csr = directory / f"{name}.csr"
    crt = directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    lines = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment", f"extendedKeyUsage={usage}"]
    if sans:
        lines.append(f"subjectAltName={sans}")
    ext.write_text("\n".join(lines) + "\n")
    openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", subject)
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(crt), "-days", "30", "-extfile", str(ext),
    )
    return crt, key


def fingerprint(crt: Path) -> str:
    """SHA-256 fingerprint of the first certificate in a PEM file."""
    return openssl("x509", "-in", str(crt), "-noout", "-fingerprint", "-sha256").strip().split("=", 1)[1]


def subject(crt: Path) -> str:
    return openssl("x509", "-in", str(crt), "-noout", "-subject").strip()
