"""Hiding credentials in URLs before they reach a log line, /status, metrics or an error message.

Two kinds of URL carry secrets here: endpoints (L1 RPC, webhooks), whose API keys often ride in the path
or the query (`…/v3/<key>`), and database URLs (`postgresql://user:pw@host/db`, libpq `password=…` words),
whose database name and parameters an operator needs to see.

Redaction fails closed. A password may hold characters a URL parser reads as delimiters (`#`, `?`, `/`,
`@`: libpq accepts them unescaped), so the credentials are everything before the *last* `@`, whatever
they contain; what then still cannot be parsed is shown as `<unparsable URL>`, never echoed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

HIDDEN = "***"
UNPARSABLE = "<unparsable URL>"

# libpq also takes a password as a query parameter (`?password=…`, `sslpassword=…`) or as a `password=…` word
# of a key=value connection string: all of them are hidden, quoted values included.
_PASSWORD_PARAM = re.compile(r"""((?:^|[?&\s])(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)""", re.I)

# A libpq key=value connection string, word by word (a value is quoted or runs to the next blank).
_CONNINFO_WORD = r"""[A-Za-z_]+\s*=\s*(?:'(?:[^'\\]|\\.)*'|[^\s']*)"""
_CONNINFO = re.compile(rf"""\s*(?:{_CONNINFO_WORD}\s*)+""")

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.S)
_DELIMITERS = re.compile(r"[#?/@:\[\]]")

# A URL inside free text (an exception message): up to the next blank or quote.
_URL_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>]+""")

_DATABASE_SCHEMES = ("postgresql://", "postgres://", "sqlite://")

# A path segment this long, or a path of several segments, is treated as a key (…/v2/<key>, /<token>).
_KEY_SEGMENT_LEN = 20


@dataclass(frozen=True)
class _Parts:
    """A URL split fail-closed: the raw credentials apart, the rest parsed (None when it cannot be)."""

    scheme: str
    userinfo: str | None  # everything before the last '@', raw: it may hold a password
    rest: SplitResult | None  # scheme://host[:port]/path?query#fragment without the credentials

    @property
    def user(self) -> str:
        return (self.userinfo or "").partition(":")[0]

    @property
    def password(self) -> str:
        return (self.userinfo or "").partition(":")[2]

    @property
    def password_pieces(self) -> list[str]:
        """The password and its pieces between delimiters (a parser that splits there echoes a piece)."""
        return [self.password, *_DELIMITERS.split(self.password)]


def _split(url: str) -> _Parts | None:
    match = _SCHEME.fullmatch(url.strip())
    if match is None:
        return None
    scheme, tail = match.groups()
    userinfo, at, after = tail.rpartition("@")
    try:
        rest = urlsplit(f"{scheme}://{after}")
        for host in rest.netloc.split(","):  # libpq's multi-host form: h1:5432,h2:5432
            urlsplit(f"{scheme}://{host}").port  # noqa: B018 -- ValueError on a port that is not a number
    except ValueError:
        rest = None
    return _Parts(scheme, userinfo if at else None, rest)


def redact_endpoint(url: str) -> str:
    """An RPC or webhook URL without user:password, query, or a path that may hold an API key."""
    parts = _split(url)
    if parts is None or parts.rest is None:
        return UNPARSABLE
    rest = parts.rest
    credentials = f"{HIDDEN}@" if parts.userinfo is not None else ""
    path = rest.path
    segments = [s for s in path.split("/") if s]
    if len(segments) > 1 or any(len(s) >= _KEY_SEGMENT_LEN for s in segments):
        path = f"/{HIDDEN}"
    query = f"?{HIDDEN}" if rest.query else ""
    return f"{parts.scheme}://{credentials}{rest.netloc}{path}{query}"


def redact_dsn(url: str) -> str:
    """A database URL (or libpq key=value connection string) without its passwords."""
    parts = _split(url)
    if parts is None:
        if _CONNINFO.fullmatch(url):
            return _PASSWORD_PARAM.sub(rf"\1{HIDDEN}", url)
        return UNPARSABLE
    if parts.rest is None:
        return UNPARSABLE
    rest = parts.rest
    credentials = ""
    if parts.userinfo is not None:
        credentials = f"{parts.user}:{HIDDEN}@" if ":" in parts.userinfo else f"{parts.user}@"
    query = "?" + _PASSWORD_PARAM.sub(rf"\1{HIDDEN}", rest.query) if rest.query else ""
    return f"{parts.scheme}://{credentials}{rest.netloc}{rest.path}{query}"


def _endpoint_secrets(url: str) -> list[str]:
    """The parts of `url` that may be secret on their own (libraries quote them apart from the URL)."""
    parts = _split(url)
    if parts is None:
        return [url]
    secrets = [parts.userinfo or "", *parts.password_pieces]
    if parts.rest is None:
        return [*secrets, url.strip()]
    secrets.append(parts.rest.query)
    if redact_endpoint(url).endswith(f"/{HIDDEN}") or f"/{HIDDEN}?" in redact_endpoint(url):
        secrets.append(parts.rest.path)  # HTTP client errors quote the path alone ("with url: /v3/<key>")
    return secrets


def scrub_endpoints(text: str, urls: Iterable[str]) -> str:
    """`text` with every secret part of the given endpoint URLs replaced (libraries echo URLs in errors)."""
    for url in sorted(urls, key=len, reverse=True):
        shown = redact_endpoint(url)
        text = text.replace(url, shown).replace(url.rstrip("/"), shown)
        for secret in sorted(filter(None, _endpoint_secrets(url)), key=len, reverse=True):
            if len(secret) > 2:  # a very short "secret" would shred the message and hide nothing
                text = text.replace(secret, HIDDEN)
    return text


def _is_database(url: str) -> bool:
    return url.strip().lower().startswith(_DATABASE_SCHEMES)


def scrub_text(text: str, urls: Iterable[str] = ()) -> str:
    """`text` safe to print: the given URLs' secrets and every URL written in it redacted (database URLs as
    `redact_dsn` shows them, every other URL as an endpoint)."""
    urls = list(urls)
    for url in sorted(filter(_is_database, urls), key=len, reverse=True):
        text = scrub_dsn(text, url)
    text = scrub_endpoints(text, [u for u in urls if not _is_database(u)])

    def redact(match: re.Match[str]) -> str:
        url = match.group(0)
        return redact_dsn(url) if _is_database(url) else redact_endpoint(url)

    text = _URL_IN_TEXT.sub(redact, text)
    return _PASSWORD_PARAM.sub(rf"\1{HIDDEN}", text)


def scrub_dsn(text: str, url: str) -> str:
    """`text` (a driver's error, which may quote the URL or its password) with `url` shown redacted."""
    text = text.replace(url, redact_dsn(url))
    parts = _split(url)
    if parts is not None:
        for secret in sorted(filter(None, [parts.userinfo, *parts.password_pieces]), key=len, reverse=True):
            if len(secret) > 2 and secret != parts.user:
                text = text.replace(secret, HIDDEN)
    return _PASSWORD_PARAM.sub(rf"\1{HIDDEN}", text)
