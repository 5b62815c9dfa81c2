"""Which passwords are acceptable (SPEC §5, NIST SP 800-63B §3.1.1.2).

Length and a blocklist of common and breached passwords, nothing else: composition rules
("one digit, one symbol") make passwords more predictable, not stronger.
"""

from __future__ import annotations

import gzip
import unicodedata
from functools import cache
from importlib import resources

MIN_LENGTH = 12
MAX_LENGTH = 256
BLOCKLIST_RESOURCE = "common-passwords.txt.gz"


class WeakPassword(ValueError):
    """The password is refused; the message says why without repeating it."""


@cache
def common_passwords() -> frozenset[str]:
    """The shipped blocklist, lower-cased, loaded once per process."""
    data = resources.files("bastion.data").joinpath(BLOCKLIST_RESOURCE).read_bytes()
    text = gzip.decompress(data).decode("utf-8")
    return frozenset(line for line in text.splitlines() if line)


def check_password(password: str, *, username: str | None = None) -> None:
    """Raise :class:`WeakPassword` when ``password`` may not be used by ``username``."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"The password must be at least {MIN_LENGTH} characters long.")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"The password must be at most {MAX_LENGTH} characters long.")
    # NFKC first, so that ``ｐａｓｓｗｏｒｄ1234`` is as common as its ASCII twin.
    folded = unicodedata.normalize("NFKC", password).casefold()
    if username and unicodedata.normalize("NFKC", username).casefold() in folded:
        raise WeakPassword("The password must not contain the username.")
    if folded in common_passwords() or password.lower() in common_passwords():
        raise WeakPassword(
            "This password is too common: it appears in lists of breached passwords."
        )
