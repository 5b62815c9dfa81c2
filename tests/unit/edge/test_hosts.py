"""Trusted hosts (SPEC §2.1, §5 ``BASTION_ALLOWED_HOSTS``)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.edge.hosts import AllowedHosts, host_from_header, host_pattern
from bastion.settings import BastionSettings
from tests.unit.edge.asgi_apps import (
    Recorder,
    assert_edge_headers,
    assert_problem,
    call,
    edge,
)

HOSTS = AllowedHosts(["api.example.com", "*.apps.example.com", "192.0.2.10", "::1"])


# ----------------------------------------------------------------------------- parsing Host


@pytest.mark.parametrize(
    ("header", "host"),
    [
        (b"api.example.com", "api.example.com"),
        (b"API.Example.COM", "api.example.com"),
        (b"api.example.com:8443", "api.example.com"),
        (b"api.example.com.", "api.example.com"),
        (b"api.example.com.:80", "api.example.com"),
        (b"192.0.2.10:8000", "192.0.2.10"),
        (b"[::1]", "[::1]"),
        (b"[::1]:8000", "[::1]"),
        (b"[0:0::1]", "[::1]"),
        (b"[2001:DB8::1]", "[2001:db8::1]"),
        (b" api.example.com ", "api.example.com"),
    ],
)
def test_host_header_is_reduced_to_the_host_alone(header: bytes, host: str) -> None:
    assert host_from_header(header) == host


@pytest.mark.parametrize(
    "header",
    [
        b"",
        b":80",
        b"evil.example@api.example.com",
        b"api.example.com/evil",
        b"api.example.com\\evil",
        b"api.example.com#.evil",
        b"api.example.com?x",
        b"api example.com",
        b"api.example.com:",
        b"api.example.com:123456",
        b"api.example.com:80:80",
        b"api.example.com:http",
        b"[::1",
        b"[::g]",
        b"::1",
        b"ex\xe4mple.com",
        b"\xc4\xb0.example.com",
        b"%61pi.example.com",
        b".",
        b"..",
        b".api.example.com",
        b"api..example.com",
    ],
)
def test_anything_but_a_plain_host_is_refused(header: bytes) -> None:
    assert host_from_header(header) is None


# ----------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    "host",
    ["api.example.com", "a.apps.example.com", "a.b.apps.example.com", "192.0.2.10", "[::1]"],
)
def test_listed_hosts_and_subdomains_of_wildcards_are_allowed(host: str) -> None:
    assert HOSTS.allows(host)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "example.com",
        "apps.example.com",
        "evilapps.example.com",
        "api.example.com.evil.example",
        "a.apps.example.com.evil.example",
        "xapi.example.com",
        "192.0.2.11",
        "[::2]",
    ],
)
def test_everything_else_is_refused(host: str) -> None:
    assert not HOSTS.allows(host)


def test_a_bare_star_allows_any_host() -> None:
    assert AllowedHosts(["*"]).allows("anything.example")


def test_an_empty_list_allows_nothing() -> None:
    assert not AllowedHosts([]).allows("localhost")


def test_exactly_one_host_line_is_accepted() -> None:
    assert HOSTS.host_of([b"API.example.com:443"]) == "api.example.com"
    assert HOSTS.host_of([]) is None
    assert HOSTS.host_of([b"api.example.com", b"api.example.com"]) is None
    assert HOSTS.host_of([b"evil.example"]) is None


# ----------------------------------------------------------------------------- patterns


@pytest.mark.parametrize(
    ("pattern", "canonical"),
    [
        ("API.example.com", "api.example.com"),
        ("*.Example.com", "*.example.com"),
        ("*", "*"),
        ("::1", "[::1]"),
        ("[0::1]", "[::1]"),
        ("192.0.2.10", "192.0.2.10"),
        ("example.com.", "example.com"),
    ],
)
def test_host_patterns_are_canonicalised(pattern: str, canonical: str) -> None:
    assert host_pattern(pattern) == canonical


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("api.example.com:8000", "port"),
        ("*example.com", "wildcard"),
        ("api.*.example.com", "wildcard"),
        ("*.*.example.com", "wildcard"),
        ("https://api.example.com", "not a host"),
        ("api.example.com/", "not a host"),
        ("", "not a host"),
        ("*.", "not a host"),
        ("*.[::1]", "no subdomains"),
    ],
)
def test_malformed_host_patterns_refuse_to_start(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        host_pattern(pattern)


def test_settings_refuse_a_malformed_allowed_host() -> None:
    with pytest.raises(ValidationError, match="port"):
        BastionSettings(allowed_hosts=["api.example.com:8000"])


# ----------------------------------------------------------------------------- in the edge


async def test_a_request_for_an_unlisted_host_gets_a_400_problem_and_never_reaches_the_app() -> (
    None
):
    app = Recorder()

    response = await call(
        edge(app, allowed_hosts=["api.example.com"]), headers={"Host": "evil.example"}
    )

    assert_problem(response, 400)
    assert_edge_headers(response)
    assert "location" not in response.headers
    assert "evil.example" not in response.text
    assert not app.was_called


async def test_a_listed_host_with_port_and_other_case_reaches_the_app() -> None:
    app = Recorder()

    response = await call(
        edge(app, allowed_hosts=["api.example.com"]), headers={"Host": "API.Example.com:8443"}
    )

    assert response.status_code == 200
    assert app.was_called


async def test_an_ipv6_host_with_port_is_matched() -> None:
    response = await call(edge(Recorder(), allowed_hosts=["::1"]), url="http://[::1]:8000/items")

    assert response.status_code == 200


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:8000", "testserver"])
async def test_development_answers_for_local_names_only(host: str) -> None:
    middleware = edge(Recorder())

    assert (await call(middleware, headers={"Host": host})).status_code == 200
    assert (await call(middleware, headers={"Host": "evil.example"})).status_code == 400


async def test_production_without_allowed_hosts_refuses_every_request() -> None:
    app = Recorder()

    response = await call(edge(app, env="production"), url="https://localhost/items")

    assert response.status_code == 400
    assert not app.was_called


def test_production_refuses_to_start_with_a_bare_star() -> None:
    with pytest.raises(ValueError, match="BASTION_ALLOWED_HOSTS"):
        edge(Recorder(), env="production", allowed_hosts=["*"])


async def test_two_host_headers_are_refused() -> None:
    response = await call(
        edge(Recorder(), allowed_hosts=["api.example.com", "evil.example"]),
        headers=[("Host", "api.example.com"), ("Host", "evil.example")],
    )

    assert_problem(response, 400)
