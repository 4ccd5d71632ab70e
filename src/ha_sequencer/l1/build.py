"""Compile the Solidity sources with solcjs (standard JSON) into committed ABI + bytecode artifacts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ha_sequencer.l1.errors import ToolchainError

PACKAGE_DIR = Path(__file__).resolve().parent
CONTRACTS_DIR = PACKAGE_DIR / "contracts"
ARTIFACTS_DIR = PACKAGE_DIR / "artifacts"
NODE_MODULES_ENV = "HA_SEQUENCER_NODE_MODULES"
SOLC_VERSION = "0.8.37"
# Pinned compiler settings: the artifacts are a pure function of the sources and these.
SOLC_SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "none"},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


_NODE_COMPILE = """
const [solcDir, outPath] = process.argv.slice(1);
const solc = require(solcDir);
const input = require("fs").readFileSync(0, "utf8");
require("fs").writeFileSync(outPath, solc.compile(input));
"""


def find_node_modules() -> Path:
    """The toolchain's node_modules: $HA_SEQUENCER_NODE_MODULES, else the nearest above the package or cwd."""
    env = os.environ.get(NODE_MODULES_ENV)
    if env:
        path = Path(env)
        if not path.is_dir():
            raise ToolchainError(f"{NODE_MODULES_ENV}={env} is not a directory")
        return path
    for start in (PACKAGE_DIR, Path.cwd().resolve()):
        for parent in (start, *start.parents):
            candidate = parent / "node_modules"
            if (candidate / "solc").is_dir() or (candidate / "@foundry-rs").is_dir():
                return candidate
    raise ToolchainError(
        "node_modules with solc/anvil not found above the package or the current directory; "
        f"run `npm ci` in the repository root or set {NODE_MODULES_ENV}"
    )


def compile_sources(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, dict[str, Any]]:
    """Compile every .sol file in `contracts_dir`; returns {contract name: artifact dict}."""
    solc_dir = find_node_modules() / "solc"
    node = shutil.which("node")
    if node is None or not (solc_dir / "index.js").is_file():
        raise ToolchainError(f"need `node` on PATH and solcjs in {solc_dir}")
    sources = {p.name: {"content": p.read_text()} for p in sorted(contracts_dir.glob("*.sol"))}
    request = {"language": "Solidity", "sources": sources, "settings": SOLC_SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "solc-output.json"
        # The solcjs CLI can exit before a piped stdout is flushed (truncated JSON); write a file instead.
        proc = subprocess.run(
            [node, "-e", _NODE_COMPILE, str(solc_dir), str(out_path)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0 or not out_path.is_file():
            raise ToolchainError(f"solcjs failed (exit {proc.returncode}): {proc.stderr.strip()[:2000]}")
        output = json.loads(out_path.read_text())
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ToolchainError("solc: " + "\n".join(e.get("formattedMessage", e["message"]) for e in errors))
    artifacts: dict[str, dict[str, Any]] = {}
    for source, contracts in output["contracts"].items():
        for name, out in contracts.items():
            artifacts[name] = {
                "contractName": name,
                "sourceName": source,
                "compiler": {"name": "solcjs", "version": SOLC_VERSION, "settings": SOLC_SETTINGS},
                "abi": out["abi"],
                "bytecode": "0x" + out["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + out["evm"]["deployedBytecode"]["object"],
            }
    return artifacts


def render(artifact: dict[str, Any]) -> str:
    """Canonical JSON text of an artifact (what is committed)."""
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def build(artifacts_dir: Path = ARTIFACTS_DIR) -> list[Path]:
    """Compile and write `<Contract>.json` artifacts; returns the written paths."""
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, artifact in compile_sources().items():
        path = artifacts_dir / f"{name}.json"
        path.write_text(render(artifact))
        written.append(path)
    return written


def load_artifact(name: str = "Rollup") -> dict[str, Any]:
    """The committed artifact of contract `name`."""
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ToolchainError(f"{path} missing; run `ha-sequencer l1 build`") from exc
