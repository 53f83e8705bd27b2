"""Where a webhook may be sent (the SSRF policy): which URLs may be set, and which
IP addresses may be connected to.

A merchant controls its webhook URL, so without a policy it could make the
notifier call services inside the operator's network (databases, admin APIs,
the cloud metadata endpoint). The check is applied to the address actually
connected to, at delivery time, after DNS resolution (see transport.py).

Two checks, one policy. `webhook_url_problem(url, allow_private)` runs where a
URL is set (the ledger's API), so the merchant hears at once about a URL that
can never be delivered (malformed, a port out of range, control characters, a
literal private or metadata address, localhost). A host *name* is not resolved
there: names can point anywhere later, so the address is judged again at every
delivery.

`blocked_reason(ip, allow_private)` returns None when the address may be used,
or the category that forbids it. With allow_private (local development and
tests) everything is allowed except the cloud metadata endpoints, which are
never a legitimate webhook receiver.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)

_NETS = [
    ("unspecified", "0.0.0.0/8"),
    ("private", "10.0.0.0/8"),
    ("cgnat", "100.64.0.0/10"),
    ("loopback", "127.0.0.0/8"),
    ("link-local", "169.254.0.0/16"),
    ("private", "172.16.0.0/12"),
    ("reserved", "192.0.0.0/24"),
    ("reserved", "192.0.2.0/24"),
    ("reserved", "192.88.99.0/24"),
    ("private", "192.168.0.0/16"),
    ("reserved", "198.18.0.0/15"),
    ("reserved", "198.51.100.0/24"),
    ("reserved", "203.0.113.0/24"),
    ("multicast", "224.0.0.0/4"),
    ("reserved", "240.0.0.0/4"),  # includes 255.255.255.255 broadcast
    ("unspecified", "::/128"),
    ("loopback", "::1/128"),
    ("reserved", "64:ff9b:1::/48"),
    ("reserved", "100::/64"),
    ("reserved", "2001::/23"),
    ("reserved", "2001:db8::/32"),
    ("private", "fc00::/7"),
    ("link-local", "fe80::/10"),
    ("private", "fec0::/10"),
    ("multicast", "ff00::/8"),
]
_NETWORKS = [(name, ipaddress.ip_network(net)) for name, net in _NETS]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def parse_ip(text: str) -> IPAddress:
    """Parse an address as returned by getaddrinfo (drops an IPv6 zone id)."""
    return ipaddress.ip_address(text.split("%", 1)[0])


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """IPv4 addresses tunnelled in IPv6 reach the IPv4 host: judge that one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def classify(ip: IPAddress) -> str | None:
    """The category of a non-public address ('loopback', 'private', ...), None if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            return classify(inner)
    if ip in METADATA_ADDRESSES:
        return "metadata"
    for name, network in _NETWORKS:
        if ip.version == network.version and ip in network:
            return name
    if not ip.is_global:
        return "reserved"
    return None


def blocked_reason(ip: IPAddress, allow_private: bool) -> str | None:
    category = classify(ip)
    if category is None:
        return None
    if category == "metadata":
        return "metadata"
    return None if allow_private else category


MAX_URL_LENGTH = 2048
# Names that mean this machine or a metadata service, whatever DNS says.
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_METADATA_NAMES = ("metadata", "metadata.google.internal", "metadata.goog", "instance-data")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _host_problem(host: str) -> str | None:
    if len(host) > 253:
        return "its host name is longer than 253 characters"
    try:
        ascii_host = host.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        return f"its host {host[:80]!r} is not a valid host name"
    if not all(_LABEL.fullmatch(label) for label in ascii_host.split(".")):
        return f"its host {host[:80]!r} is not a valid host name"
    return None


def webhook_url_problem(url: str, allow_private: bool) -> str | None:
    """Why `url` can never be a webhook receiver, or None. Checks the shape fully
    (absolute http(s), a valid host, a port 1-65535, no credentials, no control
    characters or spaces) and the host against this policy where the URL alone
    decides it (literal IP addresses and the names of this machine or of
    metadata services)."""
    if len(url) > MAX_URL_LENGTH:
        return f"it is longer than {MAX_URL_LENGTH} characters"
    bad = next((c for c in url if ord(c) <= 0x20 or 0x7F <= ord(c) <= 0x9F), None)
    if bad is not None:
        return f"it contains a space or control character (U+{ord(bad):04X}); percent-encode it"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "it must be an absolute http:// or https:// URL"
    if parts.username is not None or parts.password is not None:
        return "it must not carry credentials; the HMAC signature authenticates us"
    if parts.fragment or url.endswith("#"):
        return "it must not have a #fragment (it is never sent)"
    try:
        port = parts.port
    except ValueError:
        return "its port is not a number from 1 to 65535"
    if port == 0:
        return "its port is not a number from 1 to 65535"
    host = parts.hostname or ""
    if not host:
        return "it has no host"
    try:
        ip: IPAddress | None = parse_ip(host)
    except ValueError:
        ip = None
    if ip is None:
        if "%" in host or ":" in host:
            return f"its host {host[:80]!r} is not a valid address"
        problem = _host_problem(host)
        if problem:
            return problem
        name = host.lower().rstrip(".")
        if name in _METADATA_NAMES:
            return f"its host {host!r} is a cloud metadata service, never a webhook receiver"
        if not allow_private and (name in _LOOPBACK_NAMES or name.endswith(".localhost")):
            return (
                f"its host {host!r} is this machine (loopback); set PAYMESH_ALLOW_PRIVATE_WEBHOOKS=true for development"
            )
        return None
    reason = blocked_reason(ip, allow_private)
    if reason == "metadata":
        return f"its host {host} is a cloud metadata address, never a webhook receiver"
    if reason is not None:
        return f"its host {host} is a {reason} address; set PAYMESH_ALLOW_PRIVATE_WEBHOOKS=true for development"
    return None
