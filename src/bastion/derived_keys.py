"""Per-purpose secrets derived from ``BASTION_SECRET_KEY`` (SPEC §4.2).

The API-key pepper, CSRF and session keys must never be the JWT signing bytes themselves: a
leak or a cryptographic weakness in one use must not hand over the others. HKDF (RFC 5869)
with a purpose label gives independent keys from one root secret.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derive_key(root: bytes, purpose: str, length: int = 32) -> bytes:
    """A key for ``purpose`` (``"api-key-pepper"``, ``"csrf"``, ...); stable for one root."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=b"bastion-key-derivation-v1",
        info=purpose.encode("utf-8"),
    )
    return hkdf.derive(root)
