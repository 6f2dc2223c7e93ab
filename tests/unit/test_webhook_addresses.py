"""Webhooks go only to https URLs whose every address is globally routable, unless a setting
opens http or a range; metadata addresses never. The resolver is a table here: no DNS."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import ip_address, ip_network

import pytest

from api_gateway.webhooks.addresses import (
    AddressPolicy,
    RefusedAddress,
    Unresolvable,
    check_url,
    checked_addresses,
    refusal,
)

STRICT = AddressPolicy()
LOCAL_TESTS = AddressPolicy.of(allow_http=True, allowed_networks=["127.0.0.0/8", "::1/128"])


def table(**names: Sequence[str]):
    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in names:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return names[host]

    return resolve


async def addresses(url: str, policy: AddressPolicy = STRICT, **names: Sequence[str]):
    return await checked_addresses(check_url(url, policy), policy, table(**names))


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.1.1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("100.100.100.200", "metadata"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "private"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "private"),
        ("255.255.255.255", "private"),
        ("192.0.2.1", "private"),  # documentation
        ("198.18.0.1", "private"),  # benchmarking
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("fd00:ec2::254", "metadata"),
        ("2001:db8::1", "private"),  # documentation
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("::ffff:100.64.0.1", "carrier-grade NAT"),
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::1", "metadata"),  # 6to4 of 169.254.169.254
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("64:ff9b:1::1", "reserved"),  # the local-use NAT64 prefix
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("::7f00:1", "reserved"),  # IPv4-compatible, deprecated
    ],
)
def test_refused_addresses(address: str, why: str):
    reason = refusal(ip_address(address), STRICT)
    assert reason is not None and why in reason, reason


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",  # just below the shared space
        "100.128.0.0",  # just above it
        "172.32.0.1",  # just above 172.16/12
        "2606:4700::1111",
        "::ffff:8.8.8.8",  # IPv4-mapped public
        "2002:808:808::1",  # 6to4 of 8.8.8.8
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8 (DNS64 on an IPv6-only network)
    ],
)
def test_public_addresses_are_allowed(address: str):
    assert refusal(ip_address(address), STRICT) is None


def test_a_setting_opens_chosen_ranges_but_never_metadata():
    assert refusal(ip_address("127.0.0.1"), LOCAL_TESTS) is None
    assert refusal(ip_address("::ffff:127.0.0.1"), LOCAL_TESTS) is None
    assert refusal(ip_address("::1"), LOCAL_TESTS) is None
    assert refusal(ip_address("10.0.0.1"), LOCAL_TESTS) is not None  # only what it names
    everything = AddressPolicy.of(allowed_networks=["0.0.0.0/0", "::/0"])
    assert refusal(ip_address("10.0.0.1"), everything) is None
    assert "metadata" in (refusal(ip_address("169.254.169.254"), everything) or "")
    assert "metadata" in (refusal(ip_address("fd00:ec2::254"), everything) or "")
    with pytest.raises(ValueError):
        AddressPolicy.of(allowed_networks=["10.0.0.0/33"])
    spaced = AddressPolicy.of(allowed_networks=["", " 10.0.0.0/8 "])
    assert spaced.allowed_networks == (ip_network("10.0.0.0/8"),)


# --- URLs -----------------------------------------------------------------------------------


def test_a_good_url():
    target = check_url("https://hooks.example.com/in/abc?x=1", STRICT)
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.com", 443)
    assert check_url("https://Hooks.Example.COM:8443/", STRICT).host == "hooks.example.com"
    assert check_url("https://hooks.example.com:8443/", STRICT).port == 8443
    assert check_url("http://127.0.0.1:8080/", LOCAL_TESTS).port == 8080


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://hooks.example.com/", "must use https"),
        ("ftp://hooks.example.com/", "must use https"),
        ("hooks.example.com/in", "must use https"),
        ("https://user:pass@hooks.example.com/", "user name or password"),
        ("https://token@hooks.example.com/", "user name or password"),
        ("https:///path", "no host"),
        ("https://hooks.example.com:99999/", "cannot be read"),
        ("https://hooks.example.com/a b", "spaces or control"),
        ("https://hooks.example.com/\n", "spaces or control"),
        ("https://bücher.example/", "must be ASCII"),
        ("https://hooks.example.com/" + "a" * 2000, "longer than"),
        ("https://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("https://[::1]:8443/", "::1 is a loopback address"),
        ("https://[::ffff:a9fe:a9fe]/", "metadata"),
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
    ],
)
def test_refused_urls(url: str, says: str):
    with pytest.raises(RefusedAddress, match=says):
        check_url(url, STRICT)


# --- resolution -----------------------------------------------------------------------------


async def test_every_address_a_name_resolves_to_must_be_allowed():
    found = await addresses("https://hooks.example.com/", **{"hooks.example.com": ["8.8.8.8"]})
    assert found == (ip_address("8.8.8.8"),)
    with pytest.raises(RefusedAddress, match=r"evil.example resolves to 10.0.0.5, a private"):
        await addresses("https://evil.example/", **{"evil.example": ["8.8.8.8", "10.0.0.5"]})


async def test_a_name_that_resolves_to_loopback_or_metadata_is_refused():
    with pytest.raises(RefusedAddress, match="loopback"):
        await addresses("https://localhost/", **{"localhost": ["127.0.0.1", "::1"]})
    with pytest.raises(RefusedAddress, match="metadata"):
        await addresses("https://m.example/", **{"m.example": ["169.254.169.254"]})
    with pytest.raises(RefusedAddress, match="loopback"):
        await addresses("https://m.example/", **{"m.example": ["::ffff:127.0.0.1"]})


async def test_dns_that_changes_is_caught_at_the_next_check():
    """Saved while the name was public; at delivery time it points inside."""
    target = check_url("https://flip.example/", STRICT)
    await checked_addresses(target, STRICT, table(**{"flip.example": ["93.184.215.14"]}))
    with pytest.raises(RefusedAddress, match="private"):
        await checked_addresses(target, STRICT, table(**{"flip.example": ["192.168.0.10"]}))


async def test_the_local_setting_lets_tests_reach_their_own_receiver():
    found = await addresses("http://localhost:8099/", LOCAL_TESTS, localhost=["127.0.0.1", "::1"])
    assert found == (ip_address("127.0.0.1"), ip_address("::1"))
    assert await addresses("http://127.0.0.1:8099/", LOCAL_TESTS) == (ip_address("127.0.0.1"),)


async def test_an_unresolvable_name_is_a_failure_to_try_again_not_a_refusal():
    with pytest.raises(Unresolvable, match="did not resolve") as error:
        await addresses("https://nowhere.example/")
    assert not isinstance(error.value, RefusedAddress)
    with pytest.raises(Unresolvable, match="no address"):
        await addresses("https://empty.example/", **{"empty.example": []})


async def test_scoped_and_repeated_addresses_are_read_once():
    found = await addresses(
        "https://dup.example/", **{"dup.example": ["8.8.8.8", "8.8.8.8", "2606:4700::1111"]}
    )
    assert found == (ip_address("8.8.8.8"), ip_address("2606:4700::1111"))
    with pytest.raises(RefusedAddress, match="link-local"):
        await addresses("https://ll.example/", **{"ll.example": ["fe80::1%eth0"]})
