"""URLs as they may be shown in messages and logs: user info, query and fragment may hold
secrets (a token in a query, a password in user info), so only scheme, host, port and path."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redacted_url(url: str, path: bool = True) -> str:
    """`url` without user info, query or fragment (and without its path when not `path`);
    IPv6 hosts keep their brackets."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not parts.scheme and not host:
        return url if not path else urlunsplit(("", "", parts.path, "", ""))
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") if path else "", "", ""))
