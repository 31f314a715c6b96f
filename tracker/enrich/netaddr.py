"""IP address helpers: normalisation, client address behind proxies, public/private test."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse(value: object) -> IPAddress | None:
    """Parse a string into an address, unwrapping IPv4-mapped IPv6; None if invalid."""
    if not isinstance(value, str):
        return None
    try:
        addr = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        # A zone id ("fe80::1%eth0") names an interface on the sender's host, which means
        # nothing to us and would split one client into several keys.
        if addr.scope_id is not None:
            return None
        # Dual-stack sockets report IPv4 clients as ::ffff:a.b.c.d; store them as IPv4.
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
    return addr


def normalize_ip(value: str) -> str | None:
    """Return the canonical (compressed) form of an IP address string, or None if invalid."""
    addr = _parse(value)
    return None if addr is None else addr.compressed


def client_ip(
    remote_addr: str | None, forwarded_for: str | None, trusted_proxies: int
) -> str | None:
    """Return the client address, trusting only the last `trusted_proxies` X-Forwarded-For hops."""
    if trusted_proxies > 0 and forwarded_for:
        # Each proxy appends the address it received the request from, so only the entry
        # written by our own outermost proxy is trustworthy; anything left of it is
        # client-controlled and may be forged.
        chain = forwarded_for.split(",")
        if len(chain) >= trusted_proxies:
            ip = normalize_ip(chain[-trusted_proxies])
            if ip is not None:
                return ip
    return normalize_ip(remote_addr) if remote_addr is not None else None


def is_public_ip(ip: str) -> bool:
    """Return True for globally routable unicast addresses only."""
    addr = _parse(ip)
    if addr is None:
        return False
    return addr.is_global and not (
        addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_reserved
        or addr.is_multicast
        or addr.is_unspecified
    )
