"""Our signing keys: loaded from settings, or in development generated once and kept on disk.

Each key's jose object is built once at start-up: building it per request would cost more
than the signature check itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk
from jose.backends.base import Key

from app.core.config import Environment, Settings
from app.core.key_files import write_once

# Each algorithm with the key it takes: an EC key on its own curve only (RFC 7518 section 3.4),
# an RSA key of at least MIN_RSA_BITS (NIST SP 800-131A: 1024 bits has been broken in reach).
CURVES = {"ES256": "secp256r1", "ES384": "secp384r1"}
SUPPORTED_ALGORITHMS = (*CURVES, "RS256")
MIN_RSA_BITS = 2048
log = logging.getLogger("homework.keys")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private: Key = field(repr=False)
    public: Key = field(repr=False)

    @classmethod
    def from_pem(cls, pem: str, algorithm: str, kid: str | None = None) -> SigningKey:
        if algorithm not in SUPPORTED_ALGORITHMS:
            raise ValueError(
                f"signing algorithm {algorithm!r} is not one of {SUPPORTED_ALGORITHMS}"
            )
        private = jwk.construct(pem, algorithm)
        public = private.public_key()
        kid = kid or thumbprint(public.to_dict())
        _check_strength(kid, algorithm, pem)
        return cls(kid, algorithm, private, public)

    def public_jwk(self) -> dict[str, Any]:
        return {**self.public.to_dict(), "kid": self.kid, "use": "sig", "alg": self.algorithm}


def _check_strength(kid: str, algorithm: str, pem: str) -> None:
    """Refuse, at start-up and naming the key, a key too weak for the algorithm it signs with."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if algorithm in CURVES:
        curve = key.curve.name if isinstance(key, ec.EllipticCurvePrivateKey) else None
        if curve != CURVES[algorithm]:
            raise ValueError(
                f"signing key {kid!r}: {algorithm} takes an EC key on {CURVES[algorithm]} "
                f"(P-{algorithm[2:]}), not {curve or type(key).__name__}"
            )
    elif not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"signing key {kid!r}: {algorithm} takes an RSA key")
    elif key.key_size < MIN_RSA_BITS:
        raise ValueError(
            f"signing key {kid!r}: RSA keys need at least {MIN_RSA_BITS} bits, "
            f"this one has {key.key_size}"
        )


def thumbprint(public_jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint: a kid that names the key itself."""
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}[public_jwk["kty"]]
    canonical = json.dumps({m: public_jwk[m] for m in members}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class KeyRing:
    """The keys we sign with (the first) and publish (all of them)."""

    def __init__(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise ValueError("at least one signing key is needed")
        self.active = keys[0]
        self.by_kid = {key.kid: key for key in keys}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.by_kid.values()]}

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        if settings.signing_keys is not None:
            entries = json.loads(settings.signing_keys.get_secret_value())
            return cls([SigningKey.from_pem(e["pem"], e["alg"], e.get("kid")) for e in entries])
        if settings.env is Environment.test:
            return cls([_test_key()])
        return cls([_development_key(settings.dev_signing_key_path)])


def generate_pem() -> str:
    private = ec.generate_private_key(ec.SECP256R1())
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


_test_keys: list[SigningKey] = []


def _test_key() -> SigningKey:
    # One per test process: generating keys per app would slow every test down.
    if not _test_keys:
        _test_keys.append(SigningKey.from_pem(generate_pem(), "ES256"))
    return _test_keys[0]


def _development_key(path: Path) -> SigningKey:
    if not path.exists():
        write_once(path, json.dumps([{"alg": "ES256", "pem": generate_pem()}]), "signing key")
    entries = json.loads(path.read_text())
    return SigningKey.from_pem(entries[0]["pem"], entries[0]["alg"], entries[0].get("kid"))
