"""Where a webhook may go: https (http only when a setting allows it), no credentials in the URL,
and every address the host resolves to globally routable, unless a setting opens a range.

Checked when an endpoint is saved and again at every attempt, on the addresses the connection
will use (DNS can change, and a name can resolve to a private address on purpose). Cloud
metadata addresses are refused whatever the settings say. An IPv6 address that carries an IPv4
one (IPv4-mapped, 6to4, NAT64) is judged by the IPv4 address; Teredo tunnels are refused.
Resolution is injected, so the rules are tested without DNS.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]
"""host, port → the addresses a connection may use (textual, as getaddrinfo gives them)."""

MAX_URL_LENGTH = 2000
METADATA_ADDRESSES = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS over IPv6
    )
)
SHARED_ADDRESS_SPACE = ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
NAT64 = ip_network("64:ff9b::/96")  # the well-known prefix: the last 32 bits are IPv4


class AddressError(Exception):
    """An endpoint cannot be reached at its URL; `reason` says why, for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RefusedAddress(AddressError):
    """The URL or an address it resolves to is not allowed."""


class Unresolvable(AddressError):
    """The host did not resolve (a DNS failure: the attempt fails and is tried again)."""


@dataclass(frozen=True)
class AddressPolicy:
    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, allow_http: bool = False, allowed_networks: Iterable[str] = ()) -> AddressPolicy:
        """`allowed_networks` as CIDRs (`127.0.0.0/8`, `::1/128`); ValueError for a bad one."""
        networks = tuple(ip_network(n.strip()) for n in allowed_networks if n.strip())
        return cls(allow_http, networks)

    def opens(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allowed_networks)


@dataclass(frozen=True)
class Target:
    """A URL that passed the checks that need no DNS."""

    url: str
    scheme: str
    host: str
    port: int


def embedded_ipv4(address: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 one carries and stands for, if any."""
    if isinstance(address, IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress, policy: AddressPolicy) -> str | None:
    """Why a connection to `address` is refused, or None when it is allowed."""
    if isinstance(address, IPv6Address) and address.teredo is not None:
        return "a Teredo tunnel address"
    judged = embedded_ipv4(address) or address
    if judged in METADATA_ADDRESSES or address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if policy.opens(judged) or policy.opens(address):
        return None
    if judged.is_unspecified:
        return "an unspecified address"
    if judged.is_loopback:
        return "a loopback address"
    if judged.is_link_local:
        return "a link-local address"
    if judged.is_multicast:
        return "a multicast address"
    if judged in SHARED_ADDRESS_SPACE:
        return "a shared (carrier-grade NAT) address"
    if isinstance(judged, IPv6Address) and judged.is_site_local:
        return "a site-local address"
    if judged.is_private:
        return "a private address"
    if judged.is_reserved:
        return "a reserved address"
    if not judged.is_global:
        return "an address that is not globally routable"
    return None


def check_url(url: str, policy: AddressPolicy) -> Target:
    """The checks that need no DNS; a host given as an IP address is judged here too."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedAddress(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise RefusedAddress("the URL contains spaces or control characters")
    if not url.isascii():
        raise RefusedAddress("the URL must be ASCII: write an international name as xn--")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedAddress(f"the URL cannot be read: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme == "http" and not policy.allow_http:
        raise RefusedAddress("the URL must use https (http is not allowed here)")
    if scheme not in ("https", "http"):
        raise RefusedAddress("the URL must use https")
    if parts.username is not None or parts.password is not None:
        raise RefusedAddress("the URL may not carry a user name or password")
    host = parts.hostname
    if not host:
        raise RefusedAddress("the URL has no host")
    target = Target(url, scheme, host, port or (443 if scheme == "https" else 80))
    literal = _literal(host)
    if literal is not None:
        _judge(host, literal, policy)
    return target


async def checked_addresses(
    target: Target, policy: AddressPolicy, resolve: Resolve
) -> tuple[IPAddress, ...]:
    """The addresses to connect to: every one the host resolves to, each allowed. One refused
    address refuses them all (a name may list a private address beside a public one)."""
    literal = _literal(target.host)
    if literal is not None:
        _judge(target.host, literal, policy)
        return (literal,)
    try:
        found = await resolve(target.host, target.port)
    except (OSError, UnicodeError) as exc:
        raise Unresolvable(f"{target.host} did not resolve: {exc}") from exc
    if not found:
        raise Unresolvable(f"{target.host} resolved to no address")
    addresses = tuple(dict.fromkeys(ip_address(a.partition("%")[0]) for a in found))
    for address in addresses:
        _judge(target.host, address, policy)
    return addresses


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host.partition("%")[0])
    except ValueError:
        return None


def _judge(host: str, address: IPAddress, policy: AddressPolicy) -> None:
    why = refusal(address, policy)
    if why is None:
        return
    if _literal(host) == address:
        raise RefusedAddress(f"{host} is {why}")
    raise RefusedAddress(f"{host} resolves to {address}, {why}")
