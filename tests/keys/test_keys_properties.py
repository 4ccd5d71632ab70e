"""Property tests: random mutations of valid keystores never crash the loader and never echo a secret."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keys_fixtures import ANVIL_MNEMONIC, FEE_RECIPIENT

from ha_sequencer.keys import KeystoreError, PasswordSource, load_keystore
from ha_sequencer.keys.keystore import inspect_keystore

ATTESTER = "0x" + "a1" * 31 + "c3"
BLS = "0x" + "0b" * 31 + "d4"
PUBLISHERS = ["0x" + "b1" * 31 + "e5", "0x" + "b2" * 31 + "f6"]
FUNDING = "0x" + "c1" * 31 + "a7"
PASSWORD = "correct horse battery staple"
SECRETS = [ATTESTER, BLS, *PUBLISHERS, FUNDING]

BASES: list[dict[str, Any]] = [
    {
        "schemaVersion": 1,
        "validators": [
            {
                "attester": {"eth": ATTESTER, "bls": BLS},
                "publisher": PUBLISHERS,
                "feeRecipient": FEE_RECIPIENT,
                "coinbase": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
                "fundingAccount": FUNDING,
            }
        ],
    },
    {
        "schemaVersion": 2,
        "publisher": PUBLISHERS[0],
        "feeRecipient": FEE_RECIPIENT,
        "remoteSigner": {"remoteSignerUrl": "https://localhost:9000", "certPass": PASSWORD},
        "validators": [
            {"attester": [ATTESTER, {"mnemonic": ANVIL_MNEMONIC, "addressIndex": 3, "addressCount": 2}]},
            {"attester": {"eth": PUBLISHERS[1], "bls": {"path": "missing.json", "password": PASSWORD}}},
        ],
    },
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=70)
    | st.sampled_from([*SECRETS, ANVIL_MNEMONIC, PASSWORD, "0x" + "00" * 32, "0x" + "ff" * 20]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _containers(node: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_containers(value, (*path, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_containers(value, (*path, i)))
    return out


def _get(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    document = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _containers(document)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "delete", "insert", "rename", "swap"]))
        if not path:
            if op == "replace":
                document = draw(json_values)
            continue
        parent = _get(document, path[:-1])
        last = path[-1]
        if op == "replace":
            parent[last] = draw(json_values)
        elif op == "delete":
            del parent[last]
        elif op == "insert" and isinstance(parent, dict):
            parent[draw(st.text(max_size=12) | st.sampled_from(SECRETS))] = draw(json_values)
        elif op == "insert" and isinstance(parent, list):
            parent.insert(draw(st.integers(0, len(parent))), draw(json_values))
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from([*SECRETS, ANVIL_MNEMONIC, "path", "eth", "mnemonic"]))] = parent.pop(
                last
            )
        elif op == "swap":
            # move a secret somewhere it may be echoed: a path, a URL, an address slot, a key name
            parent[last] = draw(
                st.sampled_from([{"path": s} for s in SECRETS] + [ANVIL_MNEMONIC, {"path": ANVIL_MNEMONIC}])
            )
    text = json.dumps(document, indent=2)
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.text(max_size=3)) + text[cut + draw(st.integers(0, 3)) :]
    return text


def _assert_no_secret(message: str) -> None:
    lowered = message.lower()
    for secret in SECRETS:
        assert secret[2:].lower() not in lowered, message
    assert ANVIL_MNEMONIC not in message, message
    assert PASSWORD not in message, message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents())
def test_mutations_only_raise_clean_keystore_errors(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keystore.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            loaded = load_keystore(path, passwords=PasswordSource(default="pw"))
        except KeystoreError as exc:
            assert exc.exit_code == 2
            assert str(path) in str(exc)
            _assert_no_secret(str(exc))
        else:
            _assert_no_secret(repr(loaded) + repr(loaded.validators))
        report = inspect_keystore(path)
        _assert_no_secret(repr(report))
        for error in report.all_errors():
            _assert_no_secret(str(error))
        for warning in report.all_warnings():
            _assert_no_secret(warning.message)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_clean_keystore_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keystore.json"
        path.write_bytes(data)
        try:
            load_keystore(path)
        except KeystoreError as exc:
            assert str(path) in str(exc)
