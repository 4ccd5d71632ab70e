"""Typer options that several commands share, each declared once: its flag, environment variable and help.

A command takes one as a typed parameter: `rpc_url: L1RpcUrl` (required) or `rollup: RollupFilter = None`.
Typer's `Annotated` style keeps defaults at the parameter, so a required option that follows optional ones
sits after a bare `*` (keyword-only; typer passes every parameter by name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ENV_PREFIX = "HA_SEQUENCER_"
DEVNET_ENV_PREFIX = f"{ENV_PREFIX}DEVNET_"

# --- L1 ------------------------------------------------------------------------------------------------

L1RpcUrl = Annotated[
    str, typer.Option("--rpc-url", envvar=f"{ENV_PREFIX}L1_RPC_URL", help="L1 JSON-RPC URL.")
]
RollupAddress = Annotated[
    str, typer.Option("--rollup", envvar=f"{ENV_PREFIX}ROLLUP", help="Address of the L1 Rollup contract.")
]

# --- the duty store ------------------------------------------------------------------------------------

DutyStoreUrl = Annotated[
    str,
    typer.Option(
        "--db",
        envvar=f"{ENV_PREFIX}HA_DB",
        help="Duty store URL: sqlite:///PATH or postgresql://user@host:port/db.",
    ),
]
RollupFilter = Annotated[
    str | None,
    typer.Option("--rollup", envvar=f"{ENV_PREFIX}ROLLUP", help="Only this rollup (default: all)."),
]

# --- key files -----------------------------------------------------------------------------------------

KeyFilePassword = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar=f"{ENV_PREFIX}KEYSTORE_PASSWORD",
        show_default=False,
        help="Password for key files whose entry has none.",
    ),
]
KeyFilePasswordFile = Annotated[
    Path | None, typer.Option("--password-file", help="Read that password from a file.")
]

# --- the devnet ----------------------------------------------------------------------------------------

DevnetDir = Annotated[
    Path,
    typer.Option(
        "--dir", envvar=f"{DEVNET_ENV_PREFIX}DIR", help="Directory for the devnet's state, keys and logs."
    ),
]

# --- output --------------------------------------------------------------------------------------------

JsonObject = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
