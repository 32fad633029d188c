"""The DTLS certificate Asterisk presents to browsers for DTLS-SRTP (WebRTC media keys).

WebRTC peers do not check a DTLS certificate against a CA: each side announces the SHA-256
fingerprint of its certificate in the SDP (``a=fingerprint``), carried over the signalling
channel, and checks the certificate it meets in the handshake against it (RFC 8827, 8842;
``dtls_verify = fingerprint``). So a self-signed certificate made at provisioning is what every
deployment needs here; the TLS certificate for WSS signalling is another matter (docs/webrtc.md).

ECDSA P-256: the curve browsers themselves generate for WebRTC, fast to sign with. Kept across
renders (so a restart does not change the fingerprint mid-shift) and renewed when fewer than
30 days are left.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dialer.provision.credentials import write_private

VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)


def certificate_valid_until(cert_path: Path) -> dt.datetime | None:
    """The certificate's expiry, or None when there is no readable certificate."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return None
    return certificate.not_valid_after_utc


def ensure_dtls_certificate(cert_path: Path, key_path: Path, name: str, now: dt.datetime) -> bool:
    """Write a self-signed ECDSA certificate and its key (0600) unless a valid one is there.

    Returns True when a new one was made. `name` becomes the subject's common name.
    """
    expires = certificate_valid_until(cert_path)
    if expires is not None and key_path.exists() and expires - now > RENEW_BEFORE:
        return False
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(key_path, key_pem.decode())
    write_private(cert_path, certificate.public_bytes(serialization.Encoding.PEM).decode())
    return True


def certificate_fingerprint(cert_path: Path) -> str:
    """SHA-256 fingerprint as SDP writes it (``AB:CD:...``)."""
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()
