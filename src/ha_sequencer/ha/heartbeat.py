"""Node-id liveness: each node heartbeats its id; a second live node with the same id refuses to start."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid

from ha_sequencer.ha.errors import DuplicateNodeError
from ha_sequencer.ha.store import DutyStore

HEARTBEAT_INTERVAL_S = 1.0
HEARTBEAT_STALE_S = 5.0  # an id whose heartbeat is older than this may be taken by a new instance


class NodeLiveness:
    """Registers `node_id` on `start()` (raising `DuplicateNodeError` if a live instance holds it), then
    heartbeats in a daemon thread; `stop()` releases the id so a restart does not wait for staleness."""

    def __init__(
        self,
        store: DutyStore,
        node_id: str,
        *,
        interval_s: float = HEARTBEAT_INTERVAL_S,
        stale_s: float = HEARTBEAT_STALE_S,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.instance = uuid.uuid4().hex
        self.interval_s = interval_s
        self.stale_s = stale_s
        self.displaced = False  # another instance took our id (we were presumed dead): stop signing
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Take the node id or raise `DuplicateNodeError` naming the id."""
        if not self.store.register_node(
            self.node_id, self.instance, socket.gethostname(), os.getpid(), self.stale_s
        ):
            raise DuplicateNodeError(
                f"node id {self.node_id!r} is in use by a live node (heartbeat within {self.stale_s:g} s in "
                f"the duty store): give each node its own --node-id, or stop the other one first"
            )
        self._thread = threading.Thread(target=self._run, name=f"ha-heartbeat-{self.node_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            # Store errors are the health probe's business; liveness only cares about being displaced.
            with contextlib.suppress(Exception):
                if not self.store.heartbeat_node(self.node_id, self.instance):
                    self.displaced = True

    def stop(self) -> None:
        """Stop heartbeating and release the id."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with contextlib.suppress(Exception):
            self.store.unregister_node(self.node_id, self.instance)

    def __enter__(self) -> NodeLiveness:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
