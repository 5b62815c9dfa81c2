"""HTTPS redirect and HSTS (SPEC §2.1, §5 ``BASTION_HTTPS_REDIRECT``)."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.edge.https import HSTS_HEADER, https_location
from tests.unit.edge.asgi_apps import Recorder, assert_edge_headers, call, edge

HSTS = "max-age=63072000; includeSubDomains"
PRODUCTION_LIKE: dict[str, Any] = {
    "https_redirect": True,
    "allowed_hosts": ["api.example.com", "*.example.com"],
}


def test_the_hsts_policy_is_two_years_with_subdomains() -> None:
    name, value = HSTS_HEADER

    assert name == b"strict-transport-security"
    assert value == HSTS.encode()


# ----------------------------------------------------------------------------- Location


def test_location_keeps_path_and_query() -> None:
    location = https_location("api.example.com", b"/items/7", b"limit=5&offset=10")

    assert location == b"https://api.example.com/items/7?limit=5&offset=10"


def test_location_without_query_has_no_question_mark() -> None:
    assert https_location("api.example.com", b"/items", b"") == b"https://api.example.com/items"


def test_already_encoded_paths_are_not_encoded_twice() -> None:
    location = https_location("api.example.com", b"/items/a%20b", b"q=%2F")

    assert location == b"https://api.example.com/items/a%20b?q=%2F"


@pytest.mark.parametrize(
    "raw_path",
    [b"/a\r\nSet-Cookie: x=1", b'/a"><script>', b"/a b", b"/\xff\xfe", b"/a\\evil.example"],
)
def test_nothing_in_the_path_can_break_out_of_the_url(raw_path: bytes) -> None:
    location = https_location("api.example.com", raw_path, b"x=\r\n")

    assert location.startswith(b"https://api.example.com/")
    assert all(0x21 <= byte <= 0x7E for byte in location)
    for forbidden in (b"\r", b"\n", b" ", b'"', b"<", b"\\"):
        assert forbidden not in location


def test_a_path_like_an_authority_stays_on_our_host() -> None:
    location = https_location("api.example.com", b"//evil.example/x", b"")

    assert location == b"https://api.example.com//evil.example/x"


def test_an_asterisk_target_redirects_to_the_root() -> None:
    assert https_location("api.example.com", b"*", b"") == b"https://api.example.com/"


def test_ipv6_hosts_stay_bracketed() -> None:
    assert https_location("[::1]", b"/", b"") == b"https://[::1]/"


# ----------------------------------------------------------------------------- in the edge


async def test_plain_http_is_redirected_with_308_to_the_validated_host() -> None:
    app = Recorder()

    response = await call(
        edge(app, **PRODUCTION_LIKE), url="http://API.example.com:8080/items?limit=5"
    )

    assert response.status_code == 308
    assert response.headers["location"] == "https://api.example.com/items?limit=5"
    assert response.content == b""
    assert_edge_headers(response)
    assert "strict-transport-security" not in response.headers
    assert not app.was_called


async def test_a_redirect_keeps_the_method_for_unsafe_requests() -> None:
    app = Recorder()

    response = await call(
        edge(app, **PRODUCTION_LIKE), "POST", "http://api.example.com/items", content=b"{}"
    )

    assert response.status_code == 308
    assert not app.was_called


async def test_https_requests_get_hsts_when_the_redirect_is_on() -> None:
    response = await call(edge(Recorder(), **PRODUCTION_LIKE), url="https://api.example.com/")

    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == HSTS


async def test_production_redirects_by_default() -> None:
    response = await call(
        edge(Recorder(), env="production", allowed_hosts=["api.example.com"]),
        url="http://api.example.com/items",
    )

    assert response.status_code == 308


async def test_development_neither_redirects_nor_sends_hsts() -> None:
    middleware = edge(Recorder())

    plain = await call(middleware, url="http://localhost/items")
    secure = await call(middleware, url="https://localhost/items")

    assert plain.status_code == secure.status_code == 200
    assert "strict-transport-security" not in plain.headers
    assert "strict-transport-security" not in secure.headers


async def test_a_trusted_proxy_that_terminated_tls_is_not_redirected() -> None:
    app = Recorder()

    response = await call(
        edge(app, trusted_proxies=["10.0.0.0/8"], **PRODUCTION_LIKE),
        url="http://api.example.com/items",
        client=("10.0.0.1", 1234),
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"},
    )

    assert response.status_code == 200
    assert response.json()["scheme"] == "https"
    assert response.headers["strict-transport-security"] == HSTS


async def test_an_untrusted_peer_claiming_https_is_still_redirected() -> None:
    response = await call(
        edge(Recorder(), trusted_proxies=["10.0.0.0/8"], **PRODUCTION_LIKE),
        url="http://api.example.com/items",
        headers={"X-Forwarded-Proto": "https", "Forwarded": "proto=https"},
    )

    assert response.status_code == 308
    assert "strict-transport-security" not in response.headers


async def test_an_hsts_policy_the_app_set_itself_is_kept() -> None:
    own = b"max-age=63072000; includeSubDomains; preload"
    app = Recorder(headers=[(b"strict-transport-security", own)])

    response = await call(edge(app, **PRODUCTION_LIKE), url="https://api.example.com/")

    assert response.headers.get_list("strict-transport-security") == [own.decode()]


async def test_the_redirect_ignores_x_forwarded_host() -> None:
    response = await call(
        edge(Recorder(), trusted_proxies=["10.0.0.0/8"], **PRODUCTION_LIKE),
        url="http://api.example.com/",
        client=("10.0.0.1", 1234),
        headers={"X-Forwarded-Host": "evil.example"},
    )

    assert response.headers["location"] == "https://api.example.com/"
