"""`protocol/` does no I/O (DESIGN.md: Layout): it imports pure stdlib, the Ethereum codecs and itself."""

from __future__ import annotations

import ast
from pathlib import Path

import ha_sequencer.protocol

PROTOCOL_DIR = Path(ha_sequencer.protocol.__file__).parent
# Pure helpers only: anything that opens files, sockets, threads or processes (web3, trio, requests, sqlite3,
# os, the node's packages) is I/O and belongs outside protocol/.
ALLOWED_ROOTS = {
    "__future__",
    "collections",
    "dataclasses",
    "enum",
    "functools",
    "struct",
    "types",
    "typing",
    "eth_abi",
    "eth_account",
    "eth_keys",
    "eth_typing",
    "eth_utils",
}
ALLOWED_PROJECT = ("ha_sequencer.errors", "ha_sequencer.protocol")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            names.append(node.module or "")
    return names


def test_protocol_modules_import_only_pure_code() -> None:
    offending = []
    for path in sorted(PROTOCOL_DIR.glob("*.py")):
        for name in _imports(path):
            if name.startswith("ha_sequencer"):
                ok = name.startswith(ALLOWED_PROJECT)
            else:
                ok = name.split(".")[0] in ALLOWED_ROOTS
            if not ok:
                offending.append(f"{path.name}: {name}")
    assert offending == []
    assert {p.stem for p in PROTOCOL_DIR.glob("*.py")} >= {"wire", "execution", "messages", "state", "block"}
