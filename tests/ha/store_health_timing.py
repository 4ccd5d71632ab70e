"""How long /status takes to call a duty store unhealthy: a PostgreSQL store reached through a TCP proxy
that freezes (a hang: bytes held, no reset) or refuses, read by the node's own `StoreHealthWatch`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import trio

from ha_sequencer.ha.backends import open_store
from ha_sequencer.localnet.proxy import TcpProxy
from ha_sequencer.node.health import Health, StoreHealthWatch
from ha_sequencer.node.metrics import NodeMetrics


def through_proxy(pg_url: str) -> tuple[str, TcpProxy]:
    """`pg_url` rewritten to pass through a new proxy."""
    parts = urlsplit(pg_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    return parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}").geturl(), proxy


def seconds_to_unhealthy(pg_url: str, fault: Callable[[TcpProxy], None], give_up_s: float = 30.0) -> float:
    """Seconds from `fault(proxy)` until the node's health state says the store is unhealthy."""
    url, proxy = through_proxy(pg_url)
    store = open_store(url, migrate=True)
    health = Health(NodeMetrics(), lambda text: text)
    result: list[float] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(StoreHealthWatch(health, lambda: store.healthy).run)
            with trio.fail_after(give_up_s):
                while health.store_healthy is not True:
                    await trio.sleep(0.01)
            await trio.sleep(0.5)  # a steady state: a few pings through
            started = time.monotonic()
            await trio.to_thread.run_sync(fault, proxy)
            with trio.fail_after(give_up_s):
                while health.store_healthy:
                    await trio.sleep(0.005)
            result.append(time.monotonic() - started)
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        proxy.resume()
        threading.Thread(target=store.close, daemon=True).start()  # a frozen connection may linger
        proxy.close()
    return result[0]
