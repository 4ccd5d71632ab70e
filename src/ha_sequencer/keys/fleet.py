"""A fleet of node keystores for one HA identity: split a base keystore per node, and lint a fleet.

The HA guide's rule: every node of a group runs the same attester(s) (ETH and BLS) and its own publisher.
Two nodes with one publisher key submit the same proposals from one account (duplicate transactions, nonce
races); a publisher equal to an attester spends the identity's key on gas.
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ha_sequencer.errors import InputError
from ha_sequencer.keys.discovery import DISK_KEY_FILES, insecure_keystore_files
from ha_sequencer.keys.errors import KeystoreError, OutputExistsError, show_path
from ha_sequencer.keys.files import (
    PRIVATE_DIR_MODE,
    ensure_private_dir,
    loose_permissions,
    shred_file,
    write_private_file,
)
from ha_sequencer.keys.keystore import PasswordSource, inspect_keystore, loaded_from_report
from ha_sequencer.keys.report import Finding, NodeReport, Severity
from ha_sequencer.keys.resolution import NODE_KEYS_DIR, resolve_key_path
from ha_sequencer.keys.resolved import ResolvedAccount

NODE_DIR = "node{k}"
NODE_KEYSTORE = "keystore.json"
NODE_PLACEHOLDER = "{node}"  # in an install directory: node1, node2, …


class SplitError(InputError):
    """The base keystore cannot be split as asked."""


@dataclass(frozen=True)
class NodeKeystore:
    """One node produced by `split`."""

    node: int
    path: Path
    attesters: Sequence[str]
    publisher: Sequence[str]


@dataclass
class FleetReport:
    """What `check` found across a fleet of node keystores."""

    nodes: list[NodeReport]
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        """Findings of severity error."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """Findings of severity warning."""
        return [f for f in self.findings if f.severity == "warning"]

    def to_json(self) -> dict[str, Any]:
        """A machine-readable report (`check --json`)."""
        return {
            "ok": not self.errors,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "nodes": [
                {
                    "path": str(node.path),
                    "attesters": sorted(_attesters(node)),
                    "publishers": sorted(_publishers(node)),
                }
                for node in self.nodes
            ],
            "problems": [
                {
                    "severity": f.severity,
                    "code": f.code,
                    "file": str(f.file) if f.file else None,
                    "jsonPath": f.json_path,
                    "line": f.line,
                    "col": f.col,
                    "message": f.message,
                }
                for f in self.findings
            ],
        }


def check_fleet(paths: list[Path], *, passwords: PasswordSource | None = None) -> FleetReport:
    """Lint node keystores (one path per node, file or directory) meant to run one HA group."""
    nodes = [inspect_keystore(Path(p), passwords=passwords) for p in paths]
    report = FleetReport(nodes=nodes)
    for node in nodes:
        report.findings.extend(Finding.from_error(e) for e in node.all_errors())
        report.findings.extend(node.all_warnings())
        report.findings.extend(_file_mode_findings(node))
        report.findings.extend(_publisher_is_attester(node))
    # nodes whose files did not parse are already reported; comparing them would only add noise
    parsed = [n for n in nodes if n.files and all(f.keystore is not None for f in n.files)]
    if len(parsed) > 1:
        report.findings.extend(_attesters_differ(parsed))
        report.findings.extend(_bls_differs(parsed))
        report.findings.extend(_shared_publishers(parsed))
    return report


def split_keystore(
    base: Path,
    out_dir: Path,
    *,
    nodes: int | None = None,
    shred_source: bool = False,
    passwords: PasswordSource | None = None,
    install_dir: Path | None = None,
) -> list[NodeKeystore]:
    """Write `out_dir/nodeK/keystore.json` for K = 1..N: same attesters, one distinct publisher each.

    Key files a node needs are copied into its `keys/` folder and named by absolute path: Aztec's node
    resolves a relative `path` against its working directory, so only an absolute one loads from anywhere in
    both. The path is where the node folder will live on its host: `install_dir` (the same for every node,
    one node per host), or by default where it is written. Copy the folder there as a whole.
    """
    base = Path(base)
    if not base.is_file():
        raise SplitError(f"{base}: the base keystore must be one keystore file")
    report = inspect_keystore(base, passwords=passwords)
    errors = report.all_errors()
    if errors:
        raise errors[0]
    file_report = report.files[0]
    raw = file_report.raw
    blocks = file_report.blocks
    if not blocks:
        raise SplitError(f"{base}: no validators to split")
    for block in blocks:
        if block.publisher_source == "attester":
            raise SplitError(
                f"{base}: {block.json_path} has no publisher; split gives each node its own publisher "
                "(create the keys with --publisher-count N)"
            )
        addresses = [p.address for p in block.publishers]
        if len(set(addresses)) != len(addresses):
            raise SplitError(f"{base}: {block.json_path} lists one publisher twice")
    available = min(len(b.publishers) for b in blocks)
    count = available if nodes is None else nodes
    if count < 1:
        raise SplitError("--nodes must be at least 1")
    if count > available:
        raise SplitError(
            f"{base}: {count} nodes need {count} publishers per validator; a validator has only {available}"
        )
    node_paths = [out_dir / NODE_DIR.format(k=k) / NODE_KEYSTORE for k in range(1, count + 1)]
    for path in node_paths:
        if path.exists() or (path.parent / NODE_KEYS_DIR).exists():
            raise OutputExistsError(f"{path.parent}: already holds a keystore; refusing to overwrite it")

    created: list[Path] = []
    try:
        ensure_private_dir(out_dir)
        results = []
        for k, path in enumerate(node_paths, start=1):
            node_dir = path.parent
            if not node_dir.exists():
                node_dir.mkdir(mode=PRIVATE_DIR_MODE)
                created.append(node_dir)
            installed = node_dir.absolute()
            if install_dir is not None:
                installed = Path(str(install_dir).replace(NODE_PLACEHOLDER, node_dir.name))
            copier = _KeyFileCopier(base, node_dir, installed, created)
            document = _node_document(raw, blocks, k - 1, copier)
            write_private_file(path, (json.dumps(document, indent=2) + "\n").encode("utf-8"))
            created.append(path)
            results.append(path)
        outputs = _validate_split(report, node_paths, passwords)
    except BaseException:
        for path in reversed(created):
            with contextlib.suppress(OSError):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        raise
    if shred_source:
        shred_file(base)
    return outputs


def _node_document(
    raw: dict[str, Any], blocks: list[Any], index: int, copier: _KeyFileCopier
) -> dict[str, Any]:
    document = copy.deepcopy(raw)
    document.pop("publisher", None)  # v2 top-level publishers become one publisher per validator
    for block, entry in zip(blocks, document["validators"], strict=True):
        entry["publisher"] = _publisher_entry(block.publishers[index], copier)
    return copier.rewrite(document)


def _publisher_entry(publisher: ResolvedAccount, copier: _KeyFileCopier) -> Any:
    if publisher.kind == "file" and publisher.key_file is not None:
        entry: dict[str, Any] = {"path": copier.copy(publisher.key_file)}
        if publisher.password is not None:
            entry["password"] = publisher.password.reveal()
        return entry
    assert publisher.account is not None  # the base loaded without errors, so every publisher is local
    # a mnemonic-derived publisher is written as its key: one node must not receive the whole mnemonic
    return "0x" + bytes(publisher.account.key).hex()


class _KeyFileCopier:
    """Copies key files referenced by `{path, password}` into a node's `keys/` and rewrites the paths."""

    def __init__(self, base: Path, node_dir: Path, installed: Path, created: list[Path]) -> None:
        self.base = base
        self.node_dir = node_dir
        self.installed = installed  # where node_dir will be on its host
        self.created = created
        self.copied: dict[Path, str] = {}

    def copy(self, source: Path) -> str:
        source = source.resolve()
        if source in self.copied:
            return self.copied[source]
        keys_dir = self.node_dir / NODE_KEYS_DIR
        if not keys_dir.exists():
            keys_dir.mkdir(mode=PRIVATE_DIR_MODE)
            self.created.append(keys_dir)
        name = source.name
        n = 2
        while (keys_dir / name).exists():
            name = f"{source.stem}-{n}{source.suffix}"
            n += 1
        if source.is_dir():
            target_dir = keys_dir / name
            target_dir.mkdir(mode=PRIVATE_DIR_MODE)
            for child in sorted(source.iterdir()):
                if child.is_file() and child.suffix.lower() == ".json":
                    write_private_file(target_dir / child.name, child.read_bytes())
        else:
            write_private_file(keys_dir / name, source.read_bytes())
        installed = str(self.installed / NODE_KEYS_DIR / name)
        self.copied[source] = installed
        return installed

    def rewrite(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.rewrite(item) for item in node]
        if not isinstance(node, dict):
            return node
        if isinstance(node.get("path"), str) and set(node) <= {"path", "password"}:
            if node["path"] in self.copied.values():
                return node  # already copied for this node
            source = resolve_key_path(self.base, node["path"], DISK_KEY_FILES).path
            if source.exists():
                return {**node, "path": self.copy(source)}
            return node  # e.g. a prover/slasher file on another machine: not ours to move
        return {key: self.rewrite(value) for key, value in node.items()}


def _validate_split(
    base_report: NodeReport, node_paths: list[Path], passwords: PasswordSource | None
) -> list[NodeKeystore]:
    expected_attesters = _attesters(base_report)
    fleet = check_fleet(node_paths, passwords=passwords)
    if fleet.errors:
        first = fleet.errors[0]
        raise KeystoreError(f"a written node keystore failed validation: {first.message}", file=first.file)
    outputs = []
    seen_publishers: set[str] = set()
    for k, (path, node) in enumerate(zip(node_paths, fleet.nodes, strict=True), start=1):
        loaded = loaded_from_report(node)
        if set(loaded.attester_addresses) != expected_attesters:
            raise KeystoreError("a written node keystore has different attesters than the base", file=path)
        publishers = [p.address for p in loaded.publisher_accounts]
        if seen_publishers & set(publishers):
            raise KeystoreError("two written node keystores share a publisher", file=path)
        seen_publishers.update(publishers)
        outputs.append(NodeKeystore(k, path, loaded.attester_addresses, publishers))
    return outputs


# --- fleet checks ---------------------------------------------------------------------------------------


def _attesters(node: NodeReport) -> set[str]:
    return {a.eth.address for _, b in node.blocks() for a in b.attesters if a.eth.address}


def _publishers(node: NodeReport) -> set[str]:
    out: set[str] = set()
    for _, block in node.blocks():
        if block.publisher_source == "attester":
            out.update(a.eth.address for a in block.attesters if a.eth.address)
        else:
            out.update(p.address for p in block.publishers if p.address)
    return out


def _file_mode_findings(node: NodeReport) -> list[Finding]:
    refused = insecure_keystore_files(node.path)
    files: dict[Path, str | None] = {}
    for report in node.files:
        files.setdefault(report.file, None)
    for _, block in node.blocks():
        for attester in block.attesters:
            if attester.eth.key_file:
                files.setdefault(attester.eth.key_file, attester.eth.json_path)
            if attester.bls_key_file:
                files.setdefault(attester.bls_key_file, attester.bls_json_path)
        for publisher in block.publishers:
            if publisher.key_file:
                files.setdefault(publisher.key_file, publisher.json_path)
    for path in refused:  # also key files kept beside the keystores: `node start` checks them alike
        files.setdefault(path, None)
    out = []
    for path, json_path in files.items():
        mode = loose_permissions(path)
        if mode is None:
            continue
        shown = show_path(path)  # a key file's path is user-written: it may be a pasted key
        fix = f"chmod 600 {shown}"
        if mode & 0o022:
            severity: Severity = "error"
            message = f"{shown} is writable by group/others (mode {mode:04o}): they could swap keys; {fix}"
        elif path in refused:
            severity = "error"
            message = f"{shown} is readable by group/others (mode {mode:04o}): `node start` refuses it; {fix}"
        else:
            severity = "warning"
            message = f"{shown} is readable by group/others (mode {mode:04o}); {fix}"
        out.append(Finding(severity, "file-mode", message, path, json_path))
    return out


def _publisher_is_attester(node: NodeReport) -> list[Finding]:
    attesters = _attesters(node)
    out = []
    for report, block in node.blocks():
        if block.publisher_source == "attester":
            continue
        for publisher in block.publishers:
            if publisher.address in attesters:
                out.append(
                    Finding(
                        "error",
                        "publisher-is-attester",
                        f"publisher {publisher.address} is also an attester: the identity's key would pay "
                        "for L1 gas; use a separate publisher key",
                        report.file,
                        publisher.json_path,
                    )
                )
    return out


def _attesters_differ(nodes: list[NodeReport]) -> list[Finding]:
    reference = nodes[0]
    expected = _attesters(reference)
    out = []
    for node in nodes[1:]:
        got = _attesters(node)
        if got == expected:
            continue
        missing = sorted(expected - got)
        extra = sorted(got - expected)
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"extra {', '.join(extra)}" if extra else "",
            )
            if part
        )
        out.append(
            Finding(
                "error",
                "attesters-differ",
                f"attesters differ from {reference.path} ({detail}); every node of an HA group runs the same "
                "attesters",
                node.path,
            )
        )
    return out


def _bls_differs(nodes: list[NodeReport]) -> list[Finding]:
    first: dict[str, tuple[bytes | None, Path]] = {}
    out = []
    for node in nodes:
        for report, block in node.blocks():
            for attester in block.attesters:
                address = attester.eth.address
                if not address:
                    continue
                if address not in first:
                    first[address] = (attester.bls_public, node.path)
                elif first[address][0] != attester.bls_public:
                    out.append(
                        Finding(
                            "error",
                            "bls-differs",
                            f"attester {address} has a different BLS key than in {first[address][1]}",
                            report.file,
                            attester.bls_json_path or attester.eth.json_path,
                        )
                    )
    return out


def _shared_publishers(nodes: list[NodeReport]) -> list[Finding]:
    users: dict[str, list[NodeReport]] = defaultdict(list)
    for node in nodes:
        for address in _publishers(node):
            users[address].append(node)
    out = []
    for address, holders in sorted(users.items()):
        if len(holders) > 1:
            names = ", ".join(str(n.path) for n in holders)
            out.append(
                Finding(
                    "error",
                    "shared-publisher",
                    f"publisher {address} is used by {len(holders)} nodes ({names}): they would submit the "
                    "same proposals from one account (duplicate proposals, nonce races); "
                    "give each node its own publisher",
                    holders[1].path,
                )
            )
    return out
