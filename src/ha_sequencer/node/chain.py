"""The node's L2 chain: blocks by number and archive, the tip state, executions cached (DESIGN.md: Node)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ha_sequencer.errors import EXIT_FAILURE_FOUND, HASequencerError
from ha_sequencer.protocol.block import SignedTx, genesis_archive
from ha_sequencer.protocol.constants import NetworkParams
from ha_sequencer.protocol.execution import Execution, ExecutionError, execute_block
from ha_sequencer.protocol.state import L2State, genesis_state
from ha_sequencer.protocol.wire import Block

# Executions of proposals kept for reuse when the same block arrives again (from L1 sync or a peer)
_EXECUTION_CACHE = 64


class ChainError(HASequencerError):
    """A block that does not extend the local chain or whose re-execution disagrees (names the slot)."""

    exit_code = EXIT_FAILURE_FOUND


@dataclass(frozen=True)
class ChainBlock:
    """One applied L2 block and where it came from on L1."""

    number: int
    slot: int
    archive: bytes
    parent_archive: bytes
    state_root: bytes
    fee_recipient: bytes
    txs: tuple[SignedTx, ...] = field(repr=False)
    proposer: str | None = None
    publisher: str | None = None
    attesters: tuple[str, ...] = ()
    l1_block: int | None = None
    l1_tx: str | None = None

    def to_json(self) -> dict[str, object]:
        """The JSON-RPC `node_getBlock` form."""
        return {
            "number": self.number,
            "slot": self.slot,
            "archive": "0x" + self.archive.hex(),
            "parentArchive": "0x" + self.parent_archive.hex(),
            "stateRoot": "0x" + self.state_root.hex(),
            "feeRecipient": "0x" + self.fee_recipient.hex(),
            "proposer": self.proposer,
            "publisher": self.publisher,
            "attesters": list(self.attesters),
            "l1Block": self.l1_block,
            "l1Tx": self.l1_tx,
            "txs": [
                {
                    "from": t.sender,
                    "to": t.to,
                    "amount": str(t.tx.amount),
                    "fee": str(t.tx.fee),
                    "nonce": t.tx.nonce,
                }
                for t in self.txs
            ],
        }


class Chain:
    """Blocks applied in order from genesis; the tip state; executions cached by archive."""

    def __init__(self, params: NetworkParams, allocation: Sequence[tuple[str, int]]) -> None:
        self.params = params
        self.genesis_archive = genesis_archive(allocation)
        state = genesis_state(allocation)
        genesis = ChainBlock(0, 0, self.genesis_archive, bytes(32), state.root, bytes(32), ())
        self._blocks: list[ChainBlock] = [genesis]
        self._by_archive: dict[bytes, ChainBlock] = {genesis.archive: genesis}
        self._state = state
        self._executions: OrderedDict[bytes, Execution] = OrderedDict()

    @property
    def tip(self) -> ChainBlock:
        """The latest applied block (number 0 is genesis)."""
        return self._blocks[-1]

    @property
    def state(self) -> L2State:
        """The L2 state after the tip."""
        return self._state

    @property
    def height(self) -> int:
        """The tip's block number."""
        return self._blocks[-1].number

    def by_number(self, number: int) -> ChainBlock | None:
        """The block with this number, or None."""
        return self._blocks[number] if 0 <= number < len(self._blocks) else None

    def by_archive(self, archive: bytes) -> ChainBlock | None:
        """The block with this archive, or None."""
        return self._by_archive.get(archive)

    def execute(self, block: Block) -> Execution:
        """Re-execute a block that claims to extend the tip (cached); raises ChainError if it does not."""
        # the extension checks come before the cache: a block built or checked on an older tip must not
        # pass as extending the current one
        if block.parent_archive != self.tip.archive:
            raise ChainError(
                f"slot {block.slot}: parent 0x{block.parent_archive.hex()[:12]}… is not the local tip "
                f"0x{self.tip.archive.hex()[:12]}… (block {self.tip.number})"
            )
        if block.slot <= self.tip.slot:
            raise ChainError(f"slot {block.slot}: not after the tip's slot {self.tip.slot}")
        cached = self._executions.get(block.archive)
        if cached is not None and cached.block == block:
            return cached
        try:
            execution = execute_block(self.params, self._state, block)
        except ExecutionError as exc:
            raise ChainError(str(exc)) from exc
        self.remember(execution)
        return execution

    def remember(self, execution: Execution) -> None:
        """Cache an execution (e.g. our own built block) for when it comes back from L1."""
        self._executions[execution.block.archive] = execution
        while len(self._executions) > _EXECUTION_CACHE:
            self._executions.popitem(last=False)

    def append(
        self,
        block: Block,
        *,
        number: int,
        proposer: str | None = None,
        publisher: str | None = None,
        attesters: Sequence[str] = (),
        l1_block: int | None = None,
        l1_tx: str | None = None,
    ) -> ChainBlock:
        """Apply a block from L1 at `number` (must be tip + 1); raises ChainError on any mismatch."""
        if number != self.height + 1:
            raise ChainError(f"slot {block.slot}: L1 block number {number}, expected {self.height + 1}")
        execution = self.execute(block)
        applied = ChainBlock(
            number=number,
            slot=block.slot,
            archive=block.archive,
            parent_archive=block.parent_archive,
            state_root=execution.state_root,
            fee_recipient=block.fee_recipient,
            txs=execution.txs,
            proposer=proposer,
            publisher=publisher,
            attesters=tuple(attesters),
            l1_block=l1_block,
            l1_tx=l1_tx,
        )
        self._blocks.append(applied)
        self._by_archive[applied.archive] = applied
        self._state = execution.state
        self._executions.pop(block.archive, None)
        return applied
