"""Certificates and password hashes for the bench broker.

- A private CA (RSA 2048, kept in the broker directory) and a server certificate it signs,
  with the host names and addresses clients use as subjectAltName (``localhost`` and
  ``127.0.0.1`` always). Both are valid from 2000-01-01, so that a board whose clock is not
  set yet (an ESP32 boots at 2000-01-01) can still verify them.
- Mosquitto's password-file hash (``$7$``: PBKDF2-HMAC-SHA512, as ``mosquitto_passwd``
  writes it), so that no external tool is needed to add an account.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from twintap import TwintapError

NOT_BEFORE = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
NOT_AFTER = datetime.datetime(2049, 12, 31, tzinfo=datetime.timezone.utc)
DEFAULT_NAMES = ("localhost", "127.0.0.1")
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes
PBKDF2_SALT = 12


def write_private(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only (0600)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(directory: Path, common_name: str = "twintap bench CA") -> None:
    """Create ``ca.key`` (0600), ``ca.pem`` and ``ca.der`` (the DER copy boards load)."""
    directory = Path(directory)
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(directory / "ca.key", _key_pem(key))
    (directory / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "ca.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def server_names(cert_path: Path) -> set[str]:
    """The subjectAltName entries (DNS names and addresses) of a certificate file."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(san.get_values_for_type(x509.DNSName)) | {
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    }


def make_server_cert(directory: Path, names: list[str] | tuple[str, ...] = DEFAULT_NAMES) -> None:
    """Create ``server.key`` (0600) and ``server.pem`` signed by the CA in ``directory``."""
    directory = Path(directory)
    try:
        ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
        ca = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    except (OSError, ValueError) as e:
        raise TwintapError(f"cannot load the CA in {directory}: {e}") from None
    key = _key()
    names = list(dict.fromkeys([*DEFAULT_NAMES, *names]))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_private(directory / "server.key", _key_pem(key))
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def mosquitto_hash(
    password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS
) -> str:
    """Mosquitto's ``$7$`` password hash: ``$7$<iterations>$<salt b64>$<PBKDF2-SHA512 b64>``."""
    salt = os.urandom(PBKDF2_SALT) if salt is None else salt
    dk = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${_b64(salt)}${_b64(dk)}"


def check_mosquitto_hash(password: str, hashed: str) -> bool:
    """True when ``password`` matches a ``$7$`` hash (constant-time comparison)."""
    try:
        _, kind, iterations, salt, _dk = hashed.split("$")
        if kind != "7":
            return False
        expected = mosquitto_hash(password, base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(expected, hashed)
