"""Client address and scheme behind trusted proxies (SPEC §2.1, §5 ``BASTION_TRUSTED_PROXIES``)."""

from __future__ import annotations

import ipaddress

import pytest

from bastion.edge.proxy import (
    ClientAddress,
    TrustedProxies,
    aligned_proto,
    forwarded_element,
    node_address,
    split_outside_quotes,
    unquoted,
)
from tests.unit.edge.asgi_apps import Recorder, call, edge

PROXY = ("10.0.0.1", 443)
INTERNAL = TrustedProxies(["10.0.0.0/8", "fd00::/8"])


def resolve(
    proxies: TrustedProxies = INTERNAL,
    peer: tuple[str, int] | None = PROXY,
    *,
    scheme: str = "http",
    forwarded: list[bytes] | None = None,
    xff: list[bytes] | None = None,
    proto: list[bytes] | None = None,
) -> ClientAddress:
    return proxies.resolve(
        peer,
        scheme,
        forwarded=forwarded or [],
        x_forwarded_for=xff or [],
        x_forwarded_proto=proto or [],
    )


# ----------------------------------------------------------------------------- untrusted peers


def test_without_trusted_proxies_forwarding_headers_are_ignored() -> None:
    client = resolve(
        TrustedProxies([]),
        ("198.51.100.7", 1),
        forwarded=[b"for=1.1.1.1;proto=https"],
        xff=[b"1.1.1.1"],
        proto=[b"https"],
    )

    assert client == ClientAddress("198.51.100.7", "http")


def test_loopback_is_not_trusted_by_default() -> None:
    client = resolve(TrustedProxies([]), ("127.0.0.1", 1), xff=[b"1.1.1.1"])

    assert client.ip == "127.0.0.1"


def test_headers_from_a_peer_outside_the_trusted_networks_are_ignored() -> None:
    client = resolve(
        peer=("198.51.100.7", 1),
        forwarded=[b"for=1.1.1.1;proto=https"],
        xff=[b"1.1.1.1"],
        proto=[b"https"],
    )

    assert client == ClientAddress("198.51.100.7", "http")


def test_a_peer_that_is_not_an_address_is_never_trusted() -> None:
    assert resolve(TrustedProxies(["0.0.0.0/0"]), ("testclient", 1), xff=[b"1.1.1.1"]) == (
        ClientAddress("testclient", "http")
    )


def test_no_peer_at_all_gives_no_address() -> None:
    assert resolve(peer=None, xff=[b"1.1.1.1"]) == ClientAddress(None, "http")


# ----------------------------------------------------------------------------- X-Forwarded-For


def test_a_trusted_proxy_names_the_client() -> None:
    assert resolve(xff=[b"198.51.100.7"]).ip == "198.51.100.7"


def test_the_right_most_untrusted_address_is_the_client() -> None:
    client = resolve(xff=[b"6.6.6.6, 198.51.100.7, 10.0.0.2, 10.0.0.3"])

    assert client.ip == "198.51.100.7"


def test_a_client_prepended_address_changes_nothing() -> None:
    assert resolve(xff=[b"10.9.9.9, 198.51.100.7"]).ip == "198.51.100.7"


def test_garbage_left_of_the_client_is_never_parsed() -> None:
    assert resolve(xff=[b'"; DROP TABLE, <script>, 198.51.100.7']).ip == "198.51.100.7"


def test_separate_header_lines_form_one_list_in_order() -> None:
    client = resolve(xff=[b"6.6.6.6", b"198.51.100.7, 10.0.0.2"])

    assert client.ip == "198.51.100.7"


def test_when_every_hop_is_a_trusted_proxy_the_left_most_is_the_client() -> None:
    assert resolve(xff=[b"10.0.0.7, 10.0.0.2"]).ip == "10.0.0.7"


@pytest.mark.parametrize(
    "header",
    [b"not-an-ip", b"198.51.100.7, ", b"198.51.100.7,,", b"", b"unknown", b"1.2.3.4.5"],
)
def test_a_malformed_entry_the_walk_reaches_falls_back_to_the_peer(header: bytes) -> None:
    assert resolve(xff=[header]) == ClientAddress("10.0.0.1", "http")


def test_a_malformed_entry_between_trusted_hops_falls_back_to_the_peer() -> None:
    assert resolve(xff=[b"198.51.100.7, junk, 10.0.0.2"]).ip == "10.0.0.1"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (b"198.51.100.7:5678", "198.51.100.7"),
        (b"2001:db8::7", "2001:db8::7"),
        (b"[2001:db8::7]", "2001:db8::7"),
        (b"[2001:db8::7]:443", "2001:db8::7"),
        (b"::ffff:198.51.100.7", "198.51.100.7"),
    ],
)
def test_addresses_with_ports_brackets_and_mapped_forms_are_understood(
    entry: bytes, expected: str
) -> None:
    assert resolve(xff=[entry]).ip == expected


def test_an_ipv6_proxy_in_a_trusted_network_is_believed() -> None:
    assert resolve(peer=("fd00::5", 1), xff=[b"2001:db8::7"]).ip == "2001:db8::7"


def test_an_ipv4_mapped_peer_matches_its_ipv4_network() -> None:
    assert resolve(peer=("::ffff:10.0.0.1", 1), xff=[b"198.51.100.7"]).ip == "198.51.100.7"


def test_a_single_trusted_address_is_a_network_of_one() -> None:
    proxies = TrustedProxies(["192.0.2.10"])

    assert resolve(proxies, ("192.0.2.10", 1), xff=[b"198.51.100.7"]).ip == "198.51.100.7"
    assert resolve(proxies, ("192.0.2.11", 1), xff=[b"198.51.100.7"]).ip == "192.0.2.11"


# ----------------------------------------------------------------------------- Forwarded


def test_forwarded_gives_the_address_and_the_scheme() -> None:
    client = resolve(forwarded=[b"for=198.51.100.7;proto=https;by=10.0.0.1"])

    assert client == ClientAddress("198.51.100.7", "https")


def test_forwarded_quoted_ipv6_with_port_is_understood() -> None:
    assert resolve(forwarded=[b'for="[2001:db8:cafe::17]:4711"']).ip == "2001:db8:cafe::17"


def test_forwarded_parameter_names_are_case_insensitive() -> None:
    assert resolve(forwarded=[b"For=198.51.100.7;Proto=HTTPS"]) == (
        ClientAddress("198.51.100.7", "https")
    )


def test_forwarded_right_most_untrusted_element_is_the_client() -> None:
    client = resolve(forwarded=[b"for=6.6.6.6;proto=https, for=198.51.100.7, for=10.0.0.2"])

    assert client == ClientAddress("198.51.100.7", "http")


@pytest.mark.parametrize(
    "element",
    [
        b"for=unknown",
        b"for=_hidden",
        b"proto=https",
        b"for=198.51.100.7;for=6.6.6.6",
        b'for="198.51.100.7',
        b'for="198.51.100.7"x',
        b"for",
    ],
    ids=[
        "unknown",
        "obfuscated",
        "no-for",
        "repeated-for",
        "open-quote",
        "text-after-quote",
        "no-value",
    ],
)
def test_a_forwarded_element_without_a_usable_address_falls_back_to_the_peer(
    element: bytes,
) -> None:
    assert resolve(forwarded=[element]).ip == "10.0.0.1"


def test_an_open_quote_in_the_clients_line_cannot_swallow_the_proxys_line() -> None:
    client = resolve(forwarded=[b'for="6.6.6.6', b"for=198.51.100.7"])

    assert client.ip == "198.51.100.7"


def test_a_quote_smuggling_a_comma_stays_one_element() -> None:
    client = resolve(forwarded=[b'for="6.6.6.6, for=7.7.7.7", for=198.51.100.7'])

    assert client.ip == "198.51.100.7"


# ----------------------------------------------------------------------------- both headers


def test_both_headers_naming_the_same_client_are_believed() -> None:
    client = resolve(forwarded=[b"for=198.51.100.7;proto=https"], xff=[b"198.51.100.7"])

    assert client == ClientAddress("198.51.100.7", "https")


def test_a_forwarded_header_the_proxy_passed_through_is_not_believed() -> None:
    """The proxy appends to X-Forwarded-For; the client wrote Forwarded itself."""
    client = resolve(forwarded=[b"for=6.6.6.6"], xff=[b"198.51.100.7"])

    assert client.ip == "10.0.0.1"


def test_breaking_the_header_the_proxy_writes_does_not_promote_the_other() -> None:
    """The client opened a quote the proxy's appended element falls into, and wrote XFF."""
    client = resolve(forwarded=[b'for=", for=198.51.100.7'], xff=[b"6.6.6.6"])

    assert client.ip == "10.0.0.1"


# ----------------------------------------------------------------------------- scheme


def test_x_forwarded_proto_from_a_trusted_proxy_sets_the_scheme() -> None:
    assert resolve(xff=[b"198.51.100.7"], proto=[b"https"]).scheme == "https"


def test_x_forwarded_proto_is_read_without_x_forwarded_for() -> None:
    assert resolve(proto=[b"https"]) == ClientAddress("10.0.0.1", "https")


@pytest.mark.parametrize("value", [b"javascript", b"ftp", b"", b"https://evil"])
def test_an_unknown_forwarded_proto_keeps_the_connection_scheme(value: bytes) -> None:
    assert resolve(xff=[b"198.51.100.7"], proto=[value], scheme="https").scheme == "https"


def test_x_forwarded_proto_follows_the_hop_of_the_chosen_address() -> None:
    """CDN (HTTPS from the client) -> load balancer (HTTP from the CDN) -> app."""
    client = resolve(
        TrustedProxies(["10.0.0.0/8", "192.0.2.0/24"]),
        xff=[b"198.51.100.7, 192.0.2.1"],
        proto=[b"https, http"],
    )

    assert client == ClientAddress("198.51.100.7", "https")


def test_a_single_overwritten_proto_is_taken_as_it_is() -> None:
    assert aligned_proto([b"https"], 3) == "https"
    assert aligned_proto([], 1) is None


# ----------------------------------------------------------------------------- parsers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:80", "192.0.2.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("[::1]:8000", "::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
    ],
)
def test_node_addresses_are_parsed(text: str, expected: str) -> None:
    assert node_address(text) == ipaddress.ip_address(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "example.com",
        "192.0.2.1:",
        "192.0.2.1:http",
        "192.0.2.1:123456",
        "192.0.2.1:٣",
        "[192.0.2.1]",
        "[::1",
        "[::1]x",
        "::1:80:ab:cd:ef:12:34:56:78",
        "01.2.3.4",
    ],
)
def test_anything_but_an_address_is_refused(text: str) -> None:
    assert node_address(text) is None


def test_forwarded_element_keeps_proto_only_when_it_is_a_known_scheme() -> None:
    assert forwarded_element("for=192.0.2.1;proto=gopher") == (
        ipaddress.ip_address("192.0.2.1"),
        None,
    )


def test_split_outside_quotes_respects_quotes_and_escapes() -> None:
    assert split_outside_quotes('a="x,\\",y",b', ",") == ['a="x,\\",y"', "b"]
    assert split_outside_quotes('a="open', ",") is None


def test_unquoted_handles_tokens_quoted_strings_and_stray_quotes() -> None:
    assert unquoted("token") == "token"
    assert unquoted('"a\\"b"') == 'a"b'
    assert unquoted('a"b') is None
    assert unquoted('"') is None
    assert unquoted('"a\\"') is None


# ----------------------------------------------------------------------------- in the edge


async def test_behind_a_trusted_proxy_the_app_sees_the_client_and_its_scheme() -> None:
    """What uvicorn's own proxy-header handling would do, but only for configured proxies: so
    ``request.client`` is the client, and URLs the app builds (FastAPI's trailing-slash
    redirect) say https, never sending a TLS client back to plain HTTP."""
    app = Recorder()

    response = await call(
        edge(app, trusted_proxies=["10.0.0.0/8"]),
        client=("10.0.0.1", 1234),
        headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.7", "X-Forwarded-Proto": "https"},
    )

    assert response.json() == {"client_ip": "198.51.100.7", "scheme": "https"}
    assert app.scopes[0]["client"] == ("198.51.100.7", 0)
    assert app.scopes[0]["scheme"] == "https"


async def test_the_edge_ignores_forwarding_headers_by_default() -> None:
    app = Recorder()

    response = await call(
        edge(app),
        client=("127.0.0.1", 1234),
        headers={"X-Forwarded-For": "198.51.100.7", "Forwarded": "for=198.51.100.8"},
    )

    assert response.json() == {"client_ip": "127.0.0.1", "scheme": "http"}
    assert app.scopes[0]["client"] == ("127.0.0.1", 1234)
    assert app.scopes[0]["scheme"] == "http"
