"""Per-purpose keys derived from the root secret (SPEC §4.2: never the same bytes)."""

from __future__ import annotations

import pytest

from bastion.derived_keys import derive_key

ROOT = b"root-secret-of-the-deployment-" + b"r" * 16


def test_the_same_root_and_purpose_always_give_the_same_key() -> None:
    assert derive_key(ROOT, "csrf") == derive_key(ROOT, "csrf")


def test_different_purposes_give_different_keys() -> None:
    purposes = ["api-key-pepper", "csrf", "session", "csrf2", ""]

    keys = {derive_key(ROOT, purpose) for purpose in purposes}

    assert len(keys) == len(purposes)


def test_different_roots_give_different_keys() -> None:
    assert derive_key(ROOT, "csrf") != derive_key(ROOT + b"!", "csrf")


@pytest.mark.parametrize("purpose", ["api-key-pepper", "csrf", "session"])
def test_a_derived_key_is_never_the_root_secret(purpose: str) -> None:
    key = derive_key(ROOT, purpose)

    assert key != ROOT
    assert key != ROOT[: len(key)]
    assert key not in ROOT


def test_a_derived_key_has_the_requested_length() -> None:
    assert len(derive_key(ROOT, "csrf")) == 32
    assert len(derive_key(ROOT, "csrf", length=64)) == 64


def test_purpose_labels_are_unicode_safe() -> None:
    assert derive_key(ROOT, "clé") != derive_key(ROOT, "cle")
