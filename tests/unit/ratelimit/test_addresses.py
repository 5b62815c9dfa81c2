"""Per-IP limit keys: an IPv6 client is its network, an IPv4 one its address."""

from __future__ import annotations

import pytest

from bastion.ratelimit.addresses import LimitKeys


def test_an_ipv4_address_is_its_own_key() -> None:
    keys = LimitKeys()
    assert keys("203.0.113.7") == "203.0.113.7"
    assert keys("203.0.113.7") != keys("203.0.113.8")


def test_addresses_of_one_ipv6_64_share_a_key() -> None:
    keys = LimitKeys()
    first = keys("2001:db8:1:2::1")
    assert first == "2001:db8:1:2::/64"
    for host in ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:DB8:1:2:0:0:0:9", "2001:db8:1:2::a"):
        assert keys(host) == first, host
    assert keys("2001:db8:1:3::1") != first  # the next /64 is another subscriber


def test_the_prefix_is_configurable_and_128_keys_by_address() -> None:
    assert LimitKeys(48)("2001:db8:1:2::1") == LimitKeys(48)("2001:db8:1:ffff::1")
    exact = LimitKeys(128)
    assert exact("2001:db8::1") != exact("2001:db8::2")
    with pytest.raises(ValueError, match="1 to 128"):
        LimitKeys(129)


def test_an_ipv4_mapped_address_is_the_ipv4_client() -> None:
    assert LimitKeys()("::ffff:203.0.113.7") == "203.0.113.7"


def test_a_zone_names_no_other_host_and_garbage_stays_as_it_is() -> None:
    keys = LimitKeys()
    assert keys("fe80::1%eth0") == keys("fe80::2") == "fe80::/64"
    assert keys("unknown") == "unknown"
    assert keys("not:an:address") == "not:an:address"


def test_an_address_carrying_an_ipv4_client_is_that_client() -> None:
    keys = LimitKeys()
    # NAT64's well-known prefix: each IPv4 client behind the translator keeps its own key
    assert keys("64:ff9b::c633:6401") == "198.51.100.1"
    assert keys("64:ff9b::cb00:7109") == "203.0.113.9"
    # 6to4: the subnet field no longer buys an IPv4 address 2^16 keys
    assert keys("2002:c633:6402:1::1") == keys("2002:c633:6402:ffff::1") == "198.51.100.2"
    # Teredo: the client's own (de-obfuscated) public address, not its server's /64
    teredo = "2001:0:4136:e378:8000:63bf:3fff:fdd2"
    assert keys(teredo) == "192.0.2.45"
