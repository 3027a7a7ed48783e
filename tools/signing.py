"""Signing keys and C2PA manifests: a local certificate chain, made once, and the sign and verify calls.

The first export makes a small certificate chain under ``settings.data_dir / "keys"`` and
every later one reuses it:

- ``root.pem`` / ``root.key``: a local root CA (self-signed, P-256, 20 years). It never
  signs audio; it only issues the signing certificate, and readers on this installation pass
  it as a trust anchor, so this installation's own exports read ``Trusted``; elsewhere they
  read ``Valid`` (signature intact, signer not in the reader's trust list).
- ``signer.pem`` / ``signer.key``: the signing certificate (P-256, 5 years) and the chain
  ``signer.pem`` holds (signing certificate, then root), as the C2PA library wants it.

What the C2PA library's own verify step needs of the signing certificate, measured: KeyUsage
digitalSignature, the ExtendedKeyUsage emailProtection (documentSigning and the C2PA
claimSigning EKU are refused), an AuthorityKeyIdentifier, and an issuer that is a CA (a
self-signed signing certificate is refused). Private keys are written with mode 0600 in a
folder of mode 0700. The folder is created whole under a temporary name and renamed into
place, so two processes starting at once agree on one chain.

Signing is ``c2pa.Builder(definition)`` with the EDIT intent, the source song added as the
parent ingredient where its format can be read, ``builder.sign(signer, mime, src, dst)``.
Tags written after signing break the signature, and any re-encode drops the manifest, so
callers write tags first and sign last.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RemixError
from .settings import Settings

__all__ = [
    "SigningError",
    "KeyPair",
    "keys_dir",
    "load_or_create_keys",
    "trust_anchor",
    "mime_type",
    "can_sign",
    "sign_file",
    "Verification",
    "verify_file",
    "describe_trust",
]

ROOT_DAYS = 20 * 365
SIGNER_DAYS = 5 * 365
RENEW_BEFORE_DAYS = 7  # a signing certificate this close to expiry is issued afresh from the root
ORGANISATION = "Remix assistant (local)"

# Output formats the C2PA library embeds a manifest in, and their MIME types. ogg and aiff
# are not among them: those exports carry their credits in tags and the sidecar only.
_MIME_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "m4a": "audio/mp4"}
_ALIASES = {"wave": "wav", "mp4": "m4a"}
# Source formats the library can read as an ingredient (hashing them, keeping their own manifest).
_INGREDIENT_MIME_TYPES = {**_MIME_TYPES, "aac": "audio/mp4"}


class SigningError(RemixError):
    """The C2PA signature could not be made (the message says for which file, and why)."""


@dataclass(frozen=True)
class KeyPair:
    """The signing key and its chain, as PEM bytes, and the root that issued it."""

    private_key: bytes
    chain: bytes  # signing certificate, then root
    root: bytes  # the root certificate alone (the trust anchor)
    folder: Path


def keys_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "keys"


# Keys and certificates --------------------------------------------------------------------


def load_or_create_keys(settings: Settings) -> KeyPair:
    """The installation's signing key and chain, made on first use and reused afterwards.

    A signing certificate that has expired (or is about to) is issued again from the same
    root, so exports signed before stay verifiable against the same trust anchor.
    """
    folder = keys_dir(settings)
    if not (folder / "signer.pem").exists():
        _create_folder(folder)
    pair = _read_folder(folder)
    if _expires_soon(pair.chain):
        _renew_signer(folder)
        pair = _read_folder(folder)
    return pair


def trust_anchor(settings: Settings) -> bytes | None:
    """The local root certificate (PEM) when this installation has one; never creates keys."""
    path = keys_dir(settings) / "root.pem"
    try:
        return path.read_bytes()
    except OSError:
        return None


def _read_folder(folder: Path) -> KeyPair:
    try:
        return KeyPair(
            private_key=(folder / "signer.key").read_bytes(),
            chain=(folder / "signer.pem").read_bytes(),
            root=(folder / "root.pem").read_bytes(),
            folder=folder,
        )
    except OSError as error:
        raise SigningError(
            f"the signing keys in {folder.name}/ are incomplete ({error.strerror}: {Path(error.filename).name}); "
            "move the folder away to make a new key"
        ) from None


def _create_folder(folder: Path) -> None:
    """Make a root and a signing certificate in a temporary folder, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = folder.with_name(f".{folder.name}.{secrets.token_hex(4)}.tmp")
    temp.mkdir(mode=0o700)
    try:
        root_key = _new_key()
        root_cert = _root_certificate(root_key)
        signer_key = _new_key()
        signer_cert = _signer_certificate(signer_key, root_key, root_cert)
        _write_private(temp / "root.key", _key_pem(root_key))
        _write_private(temp / "signer.key", _key_pem(signer_key))
        _write_public(temp / "root.pem", _cert_pem(root_cert))
        _write_public(temp / "signer.pem", _cert_pem(signer_cert) + _cert_pem(root_cert))
        try:
            os.rename(temp, folder)
        except OSError:
            if not (folder / "signer.pem").exists():
                raise
            # Another process made the folder first: its chain is the one to use.
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    os.chmod(folder, 0o700)


def _renew_signer(folder: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    root_key = serialization.load_pem_private_key((folder / "root.key").read_bytes(), password=None)
    root_cert = x509.load_pem_x509_certificate((folder / "root.pem").read_bytes())
    signer_key = _new_key()
    signer_cert = _signer_certificate(signer_key, root_key, root_cert)
    # Key first, then the chain that names it: a reader of the folder sees the old pair or the new.
    _write_private(folder / "signer.key", _key_pem(signer_key))
    _write_public(folder / "signer.pem", _cert_pem(signer_cert) + _cert_pem(root_cert))


def _expires_soon(chain: bytes) -> bool:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(chain)
    return cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) < dt.timedelta(days=RENEW_BEFORE_DAYS)


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
        ]
    )


def _key_usage(*, sign: bool, ca: bool):
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=sign, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _root_certificate(key):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = dt.datetime.now(dt.timezone.utc)
    name = _name("Remix assistant local root")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=ROOT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _signer_certificate(key, root_key, root_cert):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name("Remix assistant signer"))
        .issuer_name(root_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(min(now + dt.timedelta(days=SIGNER_DAYS), root_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert_pem(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key with mode 0600 from the start (never readable by others, whatever the umask)."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _write_public(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


# Signing ----------------------------------------------------------------------------------


def _format_of(path: str | os.PathLike, format: str | None = None) -> str:
    fmt = (format or Path(path).suffix).lower().lstrip(".")
    return _ALIASES.get(fmt, fmt)


def mime_type(path: str | os.PathLike, format: str | None = None) -> str | None:
    """The MIME type the C2PA library signs ``path`` as, or None when it cannot embed a manifest there."""
    return _MIME_TYPES.get(_format_of(path, format))


def can_sign(path: str | os.PathLike, format: str | None = None) -> bool:
    """Whether a file of this format can carry an embedded C2PA manifest (wav, mp3, flac, m4a)."""
    return mime_type(path, format) is not None


def sign_file(
    source: Path,
    dest: Path,
    definition: dict[str, Any],
    settings: Settings,
    *,
    format: str | None = None,
    parent: Path | None = None,
    parent_title: str | None = None,
) -> None:
    """Sign ``source`` into ``dest`` with the manifest ``definition`` (claim, assertions).

    ``parent``, when given and in a format the library reads, is added as the parent
    ingredient (the song that was edited); otherwise the library records the unsigned
    rendering itself as the parent. ``dest`` is written whole; the caller renames it.

    Raises:
        SigningError: the format cannot carry a manifest, or the library refused to sign.
    """
    import c2pa

    fmt = _format_of(dest, format)
    mime = _MIME_TYPES.get(fmt)
    if mime is None:
        raise SigningError(f"cannot sign '{dest.name}': {fmt or 'this format'} files cannot carry a C2PA manifest")
    keys = load_or_create_keys(settings)
    try:
        info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, keys.chain, keys.private_key, None)
        with c2pa.Signer.from_info(info) as signer, c2pa.Builder(definition) as builder:
            # EDIT: the export is an edit of a pre-existing song; the library ties its first
            # action (c2pa.opened) to the parent ingredient.
            builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
            parent_mime = _INGREDIENT_MIME_TYPES.get(_format_of(parent)) if parent is not None else None
            if parent_mime is not None and parent.is_file():
                ingredient = {"title": parent_title or parent.name, "relationship": "parentOf"}
                try:
                    with open(parent, "rb") as stream:
                        builder.add_ingredient(ingredient, parent_mime, stream)
                except (c2pa.C2paError, OSError):
                    pass  # a song the library cannot parse: the rendering stands as the parent
            with open(source, "rb") as src, open(dest, "w+b") as dst:
                builder.sign(signer, mime, src, dst)
                dst.flush()
                os.fsync(dst.fileno())
    except c2pa.C2paError as error:
        raise SigningError(f"cannot sign '{dest.name}': {_short(error)}") from error


# Verifying --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """What a reader found: ``state`` is Trusted, Valid, Invalid, or None when there is no manifest.

    ``manifest`` is the active manifest as the library reports it (claim, assertions,
    ingredients, signature info), also when the state is Invalid. ``details`` lists the
    validation codes that were not a success (``signingCredential.untrusted``,
    ``assertion.dataHash.mismatch``, ...) with their explanations.
    """

    state: str | None
    manifest: dict[str, Any] | None = None
    details: tuple[str, ...] = ()


def verify_file(path: Path, settings: Settings, *, trust_local_root: bool = True) -> Verification:
    """Read and validate the C2PA manifest embedded in ``path``.

    With ``trust_local_root`` the installation's root certificate (when it has one) is passed
    as a trust anchor, so its own exports read ``Trusted``. A file in a format the library
    does not read, or without a manifest, gives ``state=None``; a manifest that is present
    but cannot be parsed reads ``Invalid``.
    """
    import c2pa

    mime = _INGREDIENT_MIME_TYPES.get(_format_of(path))
    if mime is None:
        return Verification(None)
    anchor = trust_anchor(settings) if trust_local_root else None
    context = c2pa.Context.from_dict({"trust": {"trust_anchors": anchor.decode()}}) if anchor else None
    try:
        with open(path, "rb") as stream:
            try:
                reader = c2pa.Reader(mime, stream, None, context) if context else c2pa.Reader(mime, stream)
            except c2pa.C2paError.ManifestNotFound:
                return Verification(None)
            except (c2pa.C2paError.NotSupported, c2pa.C2paError.Io, c2pa.C2paError.FileNotFound, c2pa.C2paError.Other) as error:
                # Not a file of its format at all (no manifest can be in it), or one cut short.
                return Verification(None, None, (f"the file cannot be parsed as {mime}: {_short(error)}",))
            except c2pa.C2paError as error:
                # A manifest is there but broken (a changed byte inside it, a bad signature).
                return Verification("Invalid", None, (f"the C2PA manifest cannot be read: {_short(error)}",))
            with reader:
                state = reader.get_validation_state()
                manifest = reader.get_active_manifest()
                results = reader.get_validation_results() or {}
    finally:
        if context is not None:
            context.close()
    return Verification(state or "Invalid", manifest, _problems(results))


def _problems(results: dict) -> tuple[str, ...]:
    """Every validation status that is not a success, as 'code: explanation'."""
    found: list[str] = []
    for scope in ("activeManifest", "ingredientDeltas"):
        groups = results.get(scope) or {}
        items = groups if isinstance(groups, list) else [groups]
        for group in items:
            if isinstance(group, dict) and "validationDeltas" in group:
                group = group["validationDeltas"]
            if not isinstance(group, dict):
                continue
            for kind in ("failure", "informational"):
                for status in group.get(kind) or ():
                    text = f"{status.get('code')}: {status.get('explanation', '')}".rstrip(": ")
                    if text not in found:
                        found.append(text)
    return tuple(found)


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:300]


def describe_trust(settings: Settings, state: str) -> str:
    """One line on what ``Trusted`` or ``Valid`` means on this installation, for the credits' details."""
    if state == "Trusted":
        return "trusted: the signing certificate chains to this installation's local root certificate"
    if trust_anchor(settings) is None:
        return "valid but not trusted: this installation has no local root yet, so no signer is trusted"
    return (
        "valid but not trusted: the signer does not chain to this installation's local root "
        "(signed by another installation, or with keys since replaced)"
    )
