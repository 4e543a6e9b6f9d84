"""TLS material for ``--secure-serving``: files from ``--cert-path`` or a self-signed pair.

The self-signed pair is made with the ``openssl`` binary (no Python crypto dependency).
Every failure is a :class:`StartupError` naming the flag and the file.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from scheduler_ref.errors import StartupError

__all__ = ["load_or_create"]


def _read(cert_path: str, name: str) -> bytes:
    try:
        data = (Path(cert_path) / name).read_bytes()
    except OSError as e:
        raise StartupError(f"--cert-path {cert_path}: {name}: "
                           f"{(e.strerror or str(e)).lower()}") from None
    if b"-----BEGIN" not in data:
        raise StartupError(f"--cert-path {cert_path}: {name}: not a PEM file")
    return data


def load_or_create(cert_path: str | None) -> tuple[bytes, bytes]:
    """Return (key PEM, certificate PEM)."""
    if cert_path:
        return _read(cert_path, "tls.key"), _read(cert_path, "tls.crt")
    openssl = shutil.which("openssl")
    if openssl is None:
        raise StartupError("--secure-serving without --cert-path needs the openssl binary "
                           "(install openssl, give --cert-path, or --secure-serving=false)")
    with tempfile.TemporaryDirectory() as tmp:
        key, crt = Path(tmp, "tls.key"), Path(tmp, "tls.crt")
        try:
            subprocess.run(
                [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                 "-subj", "/O=scheduler-ref/CN=scheduler-ref", "-keyout", str(key),
                 "-out", str(crt)],
                check=True, capture_output=True, timeout=60,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            detail = getattr(e, "stderr", b"") or b""
            first = detail.decode("utf-8", "replace").strip().splitlines()[:1]
            raise StartupError("--secure-serving: openssl could not make a self-signed "
                               f"certificate: {first[0] if first else e}") from None
        return key.read_bytes(), crt.read_bytes()
