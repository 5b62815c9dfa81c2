"""Password acceptance (SPEC §5, NIST SP 800-63B): length and a blocklist, no composition."""

from __future__ import annotations

import pytest

from bastion.password_policy import MAX_LENGTH, MIN_LENGTH, WeakPassword, check_password
from bastion.password_policy import common_passwords as load_common_passwords

GOOD_PASSPHRASE = "correct horse battery staple"


def test_the_length_limits_are_those_of_the_spec() -> None:
    assert (MIN_LENGTH, MAX_LENGTH) == (12, 256)


@pytest.mark.parametrize("password", ["", "short", "elevenchars"])
def test_passwords_under_12_characters_are_refused(password: str) -> None:
    assert len(password) < 12
    with pytest.raises(WeakPassword, match="at least 12"):
        check_password(password)


def test_a_12_character_uncommon_password_is_accepted() -> None:
    check_password("vq7!marmot#z")


def test_a_256_character_password_is_accepted_and_257_is_refused() -> None:
    check_password("long passphrase " * 16)
    with pytest.raises(WeakPassword, match="at most 256"):
        check_password("long passphrase " * 16 + "x")


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "my name is alice and i like tea"),
        ("alice", "my name is ALICE and i like tea"),
        ("Alice", "my name is aLiCe and i like tea"),
        ("bob_the_builder", "Bob_The_Builder-2026!"),
    ],
)
def test_a_password_containing_the_username_is_refused_case_insensitively(
    username: str, password: str
) -> None:
    with pytest.raises(WeakPassword, match="must not contain the username"):
        check_password(password, username=username)


def test_the_same_password_is_fine_for_a_user_whose_name_it_does_not_contain() -> None:
    check_password("my name is alice and i like tea", username="carol")


def test_the_username_refusal_message_does_not_repeat_the_password() -> None:
    password = "alice-unique-marker-9931"
    with pytest.raises(WeakPassword) as info:
        check_password(password, username="alice")

    assert password not in str(info.value)


def test_the_shipped_blocklist_has_at_least_100000_entries() -> None:
    assert len(load_common_passwords()) >= 100_000


def test_the_shipped_blocklist_is_lower_cased() -> None:
    assert all(entry == entry.lower() for entry in load_common_passwords())


@pytest.mark.parametrize(
    "password",
    [
        "qwertyuiop123",
        "QWERTYUIOP123",
        "password1234",
        "Password1234",
        "PASSWORD12345",
        "iloveyou1234",
        "123456789012",
        "Qwerty123456",
        "1q2w3e4r5t6y",
        "PasswordPassword",
    ],
)
def test_common_passwords_are_refused_case_insensitively(password: str) -> None:
    assert password.lower() in load_common_passwords()
    with pytest.raises(WeakPassword, match="too common"):
        check_password(password)


def test_a_good_passphrase_is_accepted() -> None:
    assert GOOD_PASSPHRASE not in load_common_passwords()
    check_password(GOOD_PASSPHRASE, username="alice")


def test_no_composition_rules_apply_to_a_long_lowercase_passphrase() -> None:
    passphrase = "purple elephants dance quietly"
    assert passphrase.islower()
    assert not any(c.isdigit() for c in passphrase)

    check_password(passphrase)


def test_weak_password_is_a_value_error() -> None:
    assert issubclass(WeakPassword, ValueError)
