"""Where a request comes from, as an opaque key: counted by network, never stored.

Rate limits and capture's per-address caps need to know that two requests came from the
same place, not where that is. ``client_address`` trusts ``X-Forwarded-For`` only as far
as ``RECOMMENDATIONS["TRUSTED_PROXIES"]`` says (0 by default: the header is the client's
own words and anyone can write it); ``network_key`` turns the address into a keyed hash of
its network (an IPv4 address, an IPv6 /64: one household or phone), used only in cache keys.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.utils.crypto import salted_hmac

from .conf import app_settings

#: IPv6 prefix that counts as one network (what one home router or phone is given).
IPV6_PREFIX = 64


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip().split("%", 1)[0])
    except ValueError:
        return None


def client_address(request: Any) -> str:
    """The address of the client: ``REMOTE_ADDR``, or the one the outermost trusted proxy saw.

    Behind N trusted proxies, the last N - 1 entries of ``X-Forwarded-For`` were written by
    proxies of the site, and the entry before them by the first one, from the connection it
    took: that is the client. Anything further left was written by the client and is ignored.
    """
    meta = getattr(request, "META", {})
    remote = str(meta.get("REMOTE_ADDR") or "")
    proxies = app_settings.TRUSTED_PROXIES
    if proxies:
        chain = [
            part.strip() for part in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",") if part.strip()
        ]
        if chain:
            candidate = chain[-min(proxies, len(chain))]
            if _parse(candidate) is not None:
                return candidate
    return remote


def network_key(request: Any) -> str:
    """A keyed hash of the client's network (24 hex digits): the same network, the same key."""
    address = client_address(request)
    parsed = _parse(address)
    if parsed is None:
        network = address or "unknown"  # a WSGI call may carry no address
    elif parsed.version == 6 and not parsed.ipv4_mapped:
        network = str(ipaddress.ip_network(f"{parsed}/{IPV6_PREFIX}", strict=False))
    else:
        network = str(parsed.ipv4_mapped or parsed) if parsed.version == 6 else str(parsed)
    return salted_hmac("recommendations.network", network).hexdigest()[:24]
