"""Credentials in URLs never reach messages: the shared redaction helpers and the L1 client that uses them."""

from __future__ import annotations

import pytest

from ha_sequencer.l1.anvil import free_port
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.l1.errors import RpcUnavailable
from ha_sequencer.monitoring.l1 import L1Wallet
from ha_sequencer.redact import (
    UNPARSABLE,
    redact_dsn,
    redact_endpoint,
    scrub_dsn,
    scrub_endpoints,
    scrub_text,
)

KEY = "abcdefghijklmnopqrstuvwxyz0123"
PASSWORD = "hunter2hunter2"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("https://rpc.example/", "https://rpc.example/"),
        (f"https://mainnet.example/v3/{KEY}", "https://mainnet.example/***"),
        (f"https://eth-mainnet.example/v2/{KEY}", "https://eth-mainnet.example/***"),
        (f"https://u:{PASSWORD}@rpc.example:8545/", "https://***@rpc.example:8545/"),
        (f"https://rpc.example/?apikey={KEY}", "https://rpc.example/?***"),
        ("http://host:notaport/", "<unparsable URL>"),
        ("http://u:12#secretsecret@rpc.example/", "http://***@rpc.example/"),
        ("http://u:pa/ss?wo#rd@rpc.example:8545", "http://***@rpc.example:8545"),
        ("http://[::1/x", "<unparsable URL>"),
        ("not a url", "<unparsable URL>"),
    ],
)
def test_redact_endpoint(url, shown):
    assert redact_endpoint(url) == shown


def test_redact_dsn_keeps_what_an_operator_needs():
    assert redact_dsn(f"postgresql://u:{PASSWORD}@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_dsn("postgresql://u@h/db?sslmode=require") == "postgresql://u@h/db?sslmode=require"
    assert redact_dsn(f"host=h password='{PASSWORD} x' dbname=d") == "host=h password=*** dbname=d"
    # libpq's multi-host form (a replicated store): every host stays visible, the password does not
    multi = f"postgresql://u:{PASSWORD}@h1:5432,h2:5433/db?target_session_attrs=read-write"
    assert redact_dsn(multi) == "postgresql://u:***@h1:5432,h2:5433/db?target_session_attrs=read-write"
    assert redact_dsn(f"postgresql://u:{PASSWORD}@h1:5432,h2:x/db") == "<unparsable URL>"


# Passwords libpq accepts unescaped (it takes the credentials up to the '@'): every one of them stays hidden.
ODD_PASSWORDS = ["p#ss" + PASSWORD, "p?ss" + PASSWORD, "p/ss" + PASSWORD, "p@ss" + PASSWORD, "a#b?c/d@e:f"]


@pytest.mark.parametrize("password", ODD_PASSWORDS)
def test_redact_dsn_fails_closed_on_delimiters_in_the_password(password):
    url = f"postgresql://u:{password}@db.example:5432/duties?sslmode=require"
    assert redact_dsn(url) == "postgresql://u:***@db.example:5432/duties?sslmode=require"
    assert redact_endpoint(url) == "postgresql://***@db.example:5432/duties?***"
    for shown in (redact_dsn(url), redact_endpoint(url), scrub_text(f"boom: {url}", [url])):
        assert password not in shown and password[1:] not in shown and password[-6:] not in shown


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u:{PASSWORD}@[::1/x",  # unterminated IPv6 host
        f"postgresql://u:{PASSWORD}@h:port/x",  # port not a number
        f"{PASSWORD}",  # no scheme, not a key=value string
        f"host=h password={PASSWORD} 'dangling",
    ],
)
def test_redact_dsn_shows_nothing_it_cannot_parse(url):
    assert redact_dsn(url) == UNPARSABLE


def test_scrub_dsn_hides_a_password_the_driver_quotes():
    url = f"postgresql://u:{PASSWORD}@[::1/x"
    text = f'end of string reached in URI: "{url}" (password {PASSWORD})'
    assert PASSWORD not in scrub_dsn(text, url)


def test_scrub_endpoints_hides_a_path_quoted_alone():
    url = f"https://u:{PASSWORD}@rpc.example/v3/{KEY}"
    text = f"failed: {url}; Max retries exceeded with url: /v3/{KEY} (password {PASSWORD})"
    scrubbed = scrub_endpoints(text, [url])
    assert KEY not in scrubbed and PASSWORD not in scrubbed
    assert "rpc.example" in scrubbed


def test_rollup_client_never_shows_rpc_credentials():
    url = f"http://u:{PASSWORD}@127.0.0.1:{free_port()}/v3/{KEY}"  # nothing listens there
    client = RollupClient([url], "0x" + "11" * 20, timeout=0.5, retries=0)
    with pytest.raises(RpcUnavailable) as failure:
        client.current_slot()
    shown = " ".join([str(failure.value), repr(client), repr(client.endpoints)])
    assert KEY not in shown and PASSWORD not in shown
    assert "127.0.0.1" in shown
    assert not client.healthy


def test_wallet_never_shows_rpc_credentials():
    url = f"http://u:{PASSWORD}@127.0.0.1:{free_port()}/v3/{KEY}"  # nothing listens there
    wallet = L1Wallet([url], timeout=0.5)
    with pytest.raises(RpcUnavailable) as failure:
        wallet.balance("0x" + "22" * 20)
    shown = " ".join([str(failure.value), repr(wallet), repr(wallet.transport.endpoints)])
    assert KEY not in shown and PASSWORD not in shown
    assert "127.0.0.1" in shown


def test_scrub_text_keeps_a_database_url_readable():
    url = f"postgresql://u:{PASSWORD}#x@db.example:5432/duties_database_name?sslmode=require"
    text = scrub_text(f"connection to {url} failed; password {PASSWORD}", [url])
    assert PASSWORD not in text
    assert "postgresql://u:***@db.example:5432/duties_database_name?sslmode=require" in text
