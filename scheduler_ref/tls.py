"""TLS material for ``--secure-serving``: files from ``--cert-path`` or a self-signed pair.

The self-signed pair is made with the ``openssl`` binary (no Python crypto dependency).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["load_or_create"]


def load_or_create(cert_path: str | None) -> tuple[bytes, bytes]:
    """Return (key PEM, certificate PEM); RuntimeError when neither source works."""
    if cert_path:
        d = Path(cert_path)
        return (d / "tls.key").read_bytes(), (d / "tls.crt").read_bytes()
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("--secure-serving without --cert-path needs the openssl binary")
    with tempfile.TemporaryDirectory() as tmp:
        key, crt = Path(tmp, "tls.key"), Path(tmp, "tls.crt")
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
             "-subj", "/O=scheduler-ref/CN=scheduler-ref", "-keyout", str(key), "-out", str(crt)],
            check=True, capture_output=True, timeout=60,
        )
        return key.read_bytes(), crt.read_bytes()
