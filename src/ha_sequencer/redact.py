"""Hiding credentials in URLs before they reach a log line, /status, metrics or an error message.

Two kinds of URL carry secrets here: endpoints (L1 RPC, webhooks), whose API keys often ride in the path
or the query (`…/v3/<key>`), and database URLs (`postgresql://user:pw@host/db`, libpq `password=…` words),
whose database name and parameters an operator needs to see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

HIDDEN = "***"

# libpq also takes a password as a query parameter (`?password=…`, `sslpassword=…`) or as a `password=…` word
# of a key=value connection string: all of them are hidden, quoted values included.
_PASSWORD_PARAM = re.compile(r"""((?:^|[?&\s])(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)""", re.I)

# A path segment this long, or a path of several segments, is treated as a key (…/v2/<key>, /<token>).
_KEY_SEGMENT_LEN = 20


def redact_endpoint(url: str) -> str:
    """An RPC or webhook URL without user:password, query, or a path that may hold an API key."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # unparseable (e.g. a bad port): show nothing of it
        return HIDDEN
    host = parts.hostname or ""
    if port is not None:
        host = f"{host}:{port}"
    if parts.username or parts.password:
        host = f"{HIDDEN}@{host}"
    path = parts.path
    segments = [s for s in path.split("/") if s]
    if len(segments) > 1 or any(len(s) >= _KEY_SEGMENT_LEN for s in segments):
        path = f"/{HIDDEN}"
    query = HIDDEN if parts.query else ""
    return urlunsplit((parts.scheme, host, path, query, ""))


def redact_dsn(url: str) -> str:
    """A database URL (or libpq connection string) without its passwords."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not parseable as a URL: still hide what looks like a password
        parts, password = None, None
    if parts is not None and password is not None:
        url = parts._replace(netloc=parts.netloc.replace(f":{password}@", f":{HIDDEN}@")).geturl()
    return _PASSWORD_PARAM.sub(rf"\1{HIDDEN}", url)


def scrub_endpoints(text: str, urls: Iterable[str]) -> str:
    """`text` with every secret part of the given endpoint URLs replaced (libraries echo URLs in errors)."""
    for url in sorted(urls, key=len, reverse=True):
        shown = redact_endpoint(url)
        text = text.replace(url, shown).replace(url.rstrip("/"), shown)
        try:
            parts = urlsplit(url)
            secrets = [parts.password or "", parts.query]
        except ValueError:
            continue
        if shown.endswith(f"/{HIDDEN}") or f"/{HIDDEN}?" in shown:
            secrets.append(parts.path)  # HTTP client errors quote the path alone ("with url: /v3/<key>")
        for secret in sorted(filter(None, secrets), key=len, reverse=True):
            text = text.replace(secret, HIDDEN)
    return text
