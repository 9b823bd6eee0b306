"""Bundle manifests signed with ed25519: the bridge signs, devices verify.

A signed manifest travels as two strings: ``manifest``, the exact UTF-8 JSON text that was
signed, and ``signature``, the base64 of the 64-byte ed25519 signature over those bytes. A
verifier checks the signature over the text *before* parsing it, so no two parties ever
need to agree on a JSON canonical form. The key id is the first 16 hex digits of the
sha256 of the 32-byte raw public key.

The private key is a PKCS#8 PEM file, mode 0600, outside git: ``MODELYARD_SIGNING_KEY``
names it, else ``$MODELYARD_HOME/keys/bundle_signing_ed25519.pem``; the public key is
written beside it (``.pub.pem``) to be built into device apps.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelyard.errors import ConfigError, SignatureError

MANIFEST_SCHEMA = "modelyard.bundle-manifest/1"
PRIVATE_NAME = "bundle_signing_ed25519.pem"


def public_path(private: Path) -> Path:
    return private.with_name(private.name.removesuffix(".pem") + ".pub.pem")


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def sign(self, text: str) -> str:
        return base64.b64encode(self.private.sign(text.encode("utf-8"))).decode("ascii")


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate(path: Path, *, overwrite: bool = False) -> SigningKey:
    """A new key pair written to ``path`` (0600) and its ``.pub.pem``; an existing key is
    kept unless ``overwrite`` (every device pinned to the old public key would then refuse
    new manifests)."""
    if path.exists() and not overwrite:
        raise ConfigError(
            f"{path}: a signing key is already there; devices are pinned to its public key. "
            "Pass --force to replace it (then ship the new public key to every device)"
        )
    key = SigningKey(Ed25519PrivateKey.generate())
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.replace(tmp, path)
    public_path(path).write_bytes(public_pem(key.public))
    return key


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private(path: Path) -> SigningKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no bundle signing key; create one with `modelyard keys signing init` "
            "(or set MODELYARD_SIGNING_KEY to the key file)"
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: an ed25519 key is needed, this is {type(key).__name__}")
    return SigningKey(key)


def load_public(source: str | bytes | Path) -> Ed25519PublicKey:
    """A public key from PEM bytes or text, a PEM file, or the base64 of the raw 32 bytes."""
    if isinstance(source, Path):
        source = source.read_bytes()
    data = source.encode("ascii") if isinstance(source, str) else source
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(data, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise ConfigError(f"signing public key: cannot read it ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"signing public key: ed25519 needed, got {type(key).__name__}")
    return key


def manifest_text(manifest: dict[str, Any]) -> str:
    """The text that is signed: sorted keys, no spaces (any text verifies; this one is
    stable, so an unchanged manifest re-signs to the same bytes)."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def verify(
    text: str, signature: str, public: Ed25519PublicKey, *, now: datetime | None = None
) -> dict[str, Any]:
    """The manifest in ``text`` once its signature, schema and expiry check out."""
    try:
        raw = base64.b64decode(signature, validate=True)
        public.verify(raw, text.encode("utf-8"))
    except (InvalidSignature, binascii.Error, ValueError):
        raise SignatureError(
            "bundle manifest: the signature does not verify with the pinned public key "
            f"{key_id(public)}; the manifest was altered or signed by another key"
        ) from None
    manifest: dict[str, Any] = json.loads(text)
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise SignatureError(f"bundle manifest: schema {manifest.get('schema')!r} is not known")
    expires = datetime.fromisoformat(manifest["expires_at"])
    if expires <= (now or datetime.now(UTC)):
        raise SignatureError(
            f"bundle manifest of {manifest['policy_id']} v{manifest['bundle_version']}: "
            f"expired at {manifest['expires_at']}; the server must re-sign it "
            "(`modelyard bridge sync` does)"
        )
    return manifest
