"""Security headers of every response (SPEC §3, §5)."""

from __future__ import annotations

from bastion.edge.headers import API_CSP, SECURITY_HEADERS


def test_the_headers_of_the_spec_are_all_present_once() -> None:
    headers = dict(SECURITY_HEADERS)

    assert len(headers) == len(SECURITY_HEADERS), "a header is listed twice"
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"referrer-policy"] == b"no-referrer"
    assert headers[b"content-security-policy"] == b"default-src 'none'; frame-ancestors 'none'"


def test_the_api_policy_lets_nothing_load_run_or_frame() -> None:
    assert API_CSP == b"default-src 'none'; frame-ancestors 'none'"
    assert b"unsafe" not in API_CSP
    assert b"*" not in API_CSP


def test_header_names_are_lower_case_bytes_as_asgi_requires() -> None:
    for name, value in SECURITY_HEADERS:
        assert isinstance(name, bytes)
        assert isinstance(value, bytes)
        assert name == name.lower()
