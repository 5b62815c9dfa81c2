"""Reading credentials off a request (SPEC §2.3): the raw ASGI headers, picked apart once."""

from __future__ import annotations

from bastion.authn import credential_headers


def test_only_the_headers_authentication_reads_are_picked() -> None:
    raw = [
        (b"host", b"api.example"),
        (b"authorization", b"Bearer abc.def.ghi"),
        (b"x-api-key", b"bst_key"),
        (b"cookie", b"__Host-bastion_session=s1; theme=dark"),
        (b"x-csrf-token", b"t1"),
        (b"user-agent", b"curl/8"),
    ]
    assert credential_headers(raw) == {
        "authorization": "Bearer abc.def.ghi",
        "x-api-key": "bst_key",
        "cookie": "__Host-bastion_session=s1; theme=dark",
        "x-csrf-token": "t1",
    }


def test_a_repeated_header_gives_its_first_line_as_starlette_does() -> None:
    """A second ``Authorization`` line cannot replace the first one the client sent."""
    from starlette.datastructures import Headers

    raw = [(b"authorization", b"Bearer first"), (b"authorization", b"Bearer second")]
    assert credential_headers(raw)["authorization"] == "Bearer first"
    assert Headers(raw=raw).get("authorization") == "Bearer first"


def test_bytes_beyond_ascii_arrive_as_latin_1_as_in_starlette() -> None:
    raw = [(b"x-api-key", "clé".encode("latin-1"))]
    assert credential_headers(raw) == {"x-api-key": "clé"}


def test_no_credentials_no_entries() -> None:
    assert credential_headers([(b"accept", b"*/*")]) == {}
