"""Certificates and keys for the real control plane (test and demo equipment, never product).

One self-signed CA signs every serving certificate (kube-apiserver, kube-controller-manager,
kube-scheduler) and every client certificate (the admin, the controller-manager, the scheduler);
a separate key pair signs ServiceAccount tokens. Keys are ECDSA P-256: Kubernetes accepts them
everywhere (TLS, client certificates, ES256 tokens) and they take microseconds to generate, where
RSA keys take tens of milliseconds each.

Built with the `cryptography` library rather than the `openssl` CLI: typed, in process, exact
control of subject alternative names and key usages, no configuration files per certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, ca: bool
) -> x509.CertificateBuilder:
    """What every certificate here has: validity, serial, basic constraints, key usage."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=ca,
                crl_sign=ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


class CertificateAuthority:
    """A CA whose files live in `directory`; issues serving and client certificates there."""

    def __init__(self, directory: Path, name: str = "canary-controlplane-ca") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = _key()
        subject = _name(name)
        self._cert = (
            _builder(subject, subject, self._key.public_key(), ca=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert_file = directory / "ca.crt"
        self.cert_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def serving(self, name: str, dns: tuple[str, ...], ips: tuple[str, ...]) -> KeyPair:
        """A server certificate for `dns` names and `ips`."""
        alternative: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        alternative += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        return self._issue(name, _name(name), ExtendedKeyUsageOID.SERVER_AUTH, alternative)

    def client(self, name: str, user: str, groups: tuple[str, ...] = ()) -> KeyPair:
        """A client certificate: Kubernetes reads the user from CN and the groups from O."""
        return self._issue(name, _name(user, groups), ExtendedKeyUsageOID.CLIENT_AUTH, [])

    def _issue(
        self,
        file_name: str,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        alternative: list[x509.GeneralName],
    ) -> KeyPair:
        key = _key()
        builder = (
            _builder(subject, self._cert.subject, key.public_key(), ca=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if alternative:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alternative), critical=False
            )
        cert = builder.sign(self._key, hashes.SHA256())
        pair = KeyPair(self.directory / f"{file_name}.crt", self.directory / f"{file_name}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(_key_pem(key))
        pair.key.chmod(0o600)
        return pair


def signing_key_pair(directory: Path, name: str = "service-account") -> KeyPair:
    """A key pair that signs ServiceAccount tokens: `<name>.key` (private), `<name>.pub`."""
    key = _key()
    pair = KeyPair(directory / f"{name}.pub", directory / f"{name}.key")
    pair.key.write_bytes(_key_pem(key))
    pair.key.chmod(0o600)
    pair.cert.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pair
