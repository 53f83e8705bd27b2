"""Which IP addresses a webhook may be sent to (the SSRF policy).

A merchant controls its webhook URL, so without a policy it could make the
notifier call services inside the operator's network (databases, admin APIs,
the cloud metadata endpoint). The check is applied to the address actually
connected to, at delivery time, after DNS resolution (see transport.py).

`blocked_reason(ip, allow_private)` returns None when the address may be used,
or the category that forbids it. With allow_private (local development and
tests) everything is allowed except the cloud metadata endpoints, which are
never a legitimate webhook receiver.
"""

from __future__ import annotations

import ipaddress

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
