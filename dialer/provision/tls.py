"""TLS certificates for SIP over TLS (5061) and wss:// (browser phones): checked, or made for development.

A deployment uses a certificate from a CA that phones and browsers trust (an ACME certificate
for the host name agents use; docs/deploy.md). `check_certificate` says in one sentence what
is wrong with one (unreadable, not PEM, the key does not match, expired, another name).

For development and tests, `make_authority` makes a private CA and `issue_certificate` a server
certificate it signs; `self_signed` makes a lone self-signed one (what `dialer config
certificate` writes). Keys are ECDSA P-256 and written 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dialer.provision.credentials import write_private

CERTIFICATE_DAYS = 397  # what browsers accept for a server certificate
AUTHORITY_DAYS = 3650
EXPIRY_WARNING = dt.timedelta(days=14)


@dataclass(frozen=True)
class Authority:
    """A certificate authority made for development or a test."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def write(self, cert_path: Path) -> None:
        write_private(cert_path, self.certificate.public_bytes(serialization.Encoding.PEM).decode())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _names(names: list[str]) -> x509.SubjectAlternativeName:
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(general)


def make_authority(common_name: str, now: dt.datetime) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=AUTHORITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def issue_certificate(cert_path: Path, key_path: Path, names: list[str], now: dt.datetime,
                      authority: Authority | None = None, days: int = CERTIFICATE_DAYS) -> None:
    """A server certificate for `names` (host names or addresses), signed by `authority`, or
    self-signed without one; certificate and key written 0600 (PEM)."""
    if not names:
        raise ValueError("a certificate needs at least one name")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    issuer = authority.certificate.subject if authority else subject
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(_names(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
    )
    if authority is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False)
    certificate = builder.sign(authority.key if authority else key, hashes.SHA256())
    write_private(key_path, _key_pem(key))
    write_private(cert_path, certificate.public_bytes(serialization.Encoding.PEM).decode())


def self_signed(cert_path: Path, key_path: Path, names: list[str], now: dt.datetime) -> None:
    """A self-signed server certificate for development (`dialer config certificate`)."""
    issue_certificate(cert_path, key_path, names, now)


def spki_sha256(cert_path: Path) -> str:
    """Base64 SHA-256 of the certificate's public key (Chromium's --ignore-certificate-errors-spki-list,
    HPKP-style pins)."""
    import base64

    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    der = certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return base64.b64encode(digest.finalize()).decode()


def check_certificate(cert_path: str, key_path: str, now: dt.datetime, names: list[str] | None = None) -> list[str]:
    """What is wrong with a certificate and its key, one sentence each (empty: usable)."""
    found: list[str] = []
    try:
        chain = x509.load_pem_x509_certificates(Path(cert_path).expanduser().read_bytes())
    except OSError as error:
        return [f"The TLS certificate {cert_path} cannot be read ({error.strerror}): fix [tls] cert_file."]
    except ValueError:
        return [f"{cert_path} is not a PEM certificate: give the certificate (with its chain) in PEM."]
    certificate = chain[0]
    try:
        key = serialization.load_pem_private_key(Path(key_path).expanduser().read_bytes(), password=None)
    except OSError as error:
        return [f"The TLS key {key_path} cannot be read ({error.strerror}): fix [tls] key_file (readable by "
                "the service, mode 0600)."]
    except (ValueError, TypeError):
        return [f"{key_path} is not an unencrypted PEM private key: give the key without a passphrase."]
    public = certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    mine = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if public != mine:
        found.append(f"The key {key_path} does not belong to the certificate {cert_path}: give the pair together.")
    if certificate.not_valid_after_utc <= now:
        found.append(f"The TLS certificate {cert_path} expired on {certificate.not_valid_after_utc:%Y-%m-%d}: "
                     "renew it.")
    elif certificate.not_valid_after_utc - now < EXPIRY_WARNING:
        found.append(f"The TLS certificate {cert_path} expires on {certificate.not_valid_after_utc:%Y-%m-%d}: "
                     "renew it now.")
    if names:
        covered = certificate_names(certificate)
        missing = [name for name in names if name and not _covers(covered, name)]
        if missing:
            found.append(f"The TLS certificate {cert_path} is for {', '.join(sorted(covered)) or 'no name'}, not "
                         f"{', '.join(missing)}: phones and browsers would refuse it.")
    return found


def certificate_names(certificate: x509.Certificate) -> set[str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return {str(attr.value) for attr in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    return {str(name) for name in san.get_values_for_type(x509.DNSName)} | {
        str(address) for address in san.get_values_for_type(x509.IPAddress)}


def _covers(names: set[str], wanted: str) -> bool:
    if wanted in names:
        return True
    head, _, rest = wanted.partition(".")
    return bool(rest) and f"*.{rest}" in names and bool(head)
