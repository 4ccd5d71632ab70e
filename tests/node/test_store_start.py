"""At start, a node whose --ha-db names several hosts refuses a primary without a synchronous standby (exit 2)
unless --ha-db-allow-async; a single host is not checked (one server: nothing to fail over to)."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from ha_sequencer.errors import EXIT_USAGE
from ha_sequencer.ha.errors import NoSynchronousStandby
from ha_sequencer.keys import load_keystore
from ha_sequencer.l1.client import RollupClient
from ha_sequencer.localnet.nodes import generate_validators, keystore_document, write_keystore
from ha_sequencer.node.app import Node
from ha_sequencer.node.config import build_config

pytestmark = pytest.mark.postgres


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node(tmp_path: Path, ha_db: str, *, allow_async: bool = False) -> Node:
    validators = generate_validators(1, publishers_each=1)
    document = keystore_document([(v, range(1)) for v in validators])
    keystore = write_keystore(tmp_path / f"keystore-{uuid.uuid4().hex[:6]}.json", document)
    config = build_config(
        keystore=keystore,
        l1_rpc_urls="http://127.0.0.1:9",
        rollup="0x" + "11" * 20,
        data_dir=tmp_path / "data",
        ha_db=ha_db,
        node_id="n1",
        network="devnet",
        host="127.0.0.1",
        port=0,
        p2p_port=0,
        p2p_host="127.0.0.1",
        bootstrap_nodes=None,
        allow_insecure_keystore=False,
        keystore_password_file=None,
        keystore_password=None,
        ha_db_allow_async=allow_async,
    )
    return Node(config, load_keystore(keystore), RollupClient(["http://127.0.0.1:9"], config.rollup))


def test_a_multi_host_store_without_a_synchronous_standby_stops_the_start(
    tmp_path: Path, database: tuple[str, int, str]
) -> None:
    host, port, name = database
    url = f"postgresql://postgres@{host}:{port},127.0.0.1:{_free_port()}/{name}"
    with pytest.raises(NoSynchronousStandby) as info:
        _node(tmp_path, url)._open_store()
    assert info.value.exit_code == EXIT_USAGE and "--ha-db-allow-async" in str(info.value)
    _node(tmp_path, url, allow_async=True)._open_store().close()
    _node(tmp_path, f"postgresql://postgres@{host}:{port}/{name}")._open_store().close()
