"""L1 errors: the Rollup contract's custom errors as named Python exceptions, and RPC/toolchain failures."""

from __future__ import annotations

from typing import Any, ClassVar

from requests import RequestException
from web3.exceptions import Web3Exception

from ha_sequencer.errors import EXIT_FAILURE_FOUND, HASequencerError


class L1Error(HASequencerError):
    """Something went wrong talking to L1 or building/deploying the contract."""

    exit_code = EXIT_FAILURE_FOUND


# What a caller of L1 expects while an endpoint is unreachable or misbehaving (retry later); anything else is
# a bug and must stop the node loudly.
L1_ERRORS: tuple[type[Exception], ...] = (L1Error, Web3Exception, RequestException, OSError)


class ToolchainError(L1Error):
    """node/solcjs/anvil missing or failing."""

    exit_code = 2


class RpcUnavailable(L1Error):
    """No configured RPC endpoint answered."""


class ReceiptTimeout(L1Error):
    """A transaction was not mined before its deadline."""


class TransactionFailed(L1Error):
    """A mined transaction reverted without a decodable reason."""


class RollupError(L1Error):
    """A revert of the Rollup contract, decoded from its custom error by name.

    `args_by_name` maps the Solidity error's parameter names to decoded values; each is also an attribute
    in snake_case (e.g. `SlotAlreadyInChain(...).last_slot`).
    """

    solidity_name: ClassVar[str] = ""
    fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *values: Any) -> None:
        self.values = values
        self.args_by_name = dict(zip(self.fields, values, strict=False))
        for name, value in self.args_by_name.items():
            setattr(self, _snake(name), value)
        shown = ", ".join(f"{_snake(k)}={_show(v)}" for k, v in self.args_by_name.items())
        super().__init__(f"Rollup reverted: {self.solidity_name or type(self).__name__}({shown})")


class UnknownRevert(RollupError):
    """A revert whose data matches no error in the Rollup ABI."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        L1Error.__init__(self, f"Rollup reverted with unknown data 0x{data.hex()}")


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def _define(solidity_name: str, fields: tuple[str, ...]) -> type[RollupError]:
    short = solidity_name.removeprefix("Rollup__")
    return type(
        short,
        (RollupError,),
        {
            "solidity_name": solidity_name,
            "fields": fields,
            "__doc__": f"Rollup custom error {solidity_name}.",
            "__module__": __name__,
        },
    )


# One class per Solidity error; tests/l1/test_artifacts.py checks this table against the ABI.
InvalidConfig = _define("Rollup__InvalidConfig", ("field",))
GenesisAllocationMismatch = _define("Rollup__GenesisAllocationMismatch", ("accounts", "balances"))
BeforeGenesis = _define("Rollup__BeforeGenesis", ("timestamp", "genesisTime"))
SlotAlreadyInChain = _define("Rollup__SlotAlreadyInChain", ("lastSlot", "slot"))
NotCurrentSlot = _define("Rollup__NotCurrentSlot", ("currentSlot", "slot"))
InvalidParentArchive = _define("Rollup__InvalidParentArchive", ("expected", "given"))
TxsHashMismatch = _define("Rollup__TxsHashMismatch", ("expected", "actual"))
EmptyCommittee = _define("Rollup__EmptyCommittee", ("epoch",))
InvalidCommittee = _define("Rollup__InvalidCommittee", ("epoch", "expected", "given"))
InvalidProposerSignature = _define("Rollup__InvalidProposerSignature", ())
InvalidProposer = _define("Rollup__InvalidProposer", ("expected", "signer"))
InsufficientAttestations = _define("Rollup__InsufficientAttestations", ("required", "given"))
InvalidAttestationSignature = _define("Rollup__InvalidAttestationSignature", ("index",))
NotCommitteeMember = _define("Rollup__NotCommitteeMember", ("attester",))
DuplicateAttester = _define("Rollup__DuplicateAttester", ("attester",))
InvalidAttester = _define("Rollup__InvalidAttester", ("attester",))
AlreadyRegistered = _define("Rollup__AlreadyRegistered", ("attester",))
InsufficientStake = _define("Rollup__InsufficientStake", ("required", "given"))
NotRegistered = _define("Rollup__NotRegistered", ("attester",))
NotWithdrawer = _define("Rollup__NotWithdrawer", ("caller", "withdrawer"))
AlreadyExiting = _define("Rollup__AlreadyExiting", ("attester", "exitEpoch"))
NotExiting = _define("Rollup__NotExiting", ("attester",))
WithdrawalNotReady = _define("Rollup__WithdrawalNotReady", ("attester", "withdrawableEpoch", "currentEpoch"))
NothingToWithdraw = _define("Rollup__NothingToWithdraw", ("attester",))
TransferFailed = _define("Rollup__TransferFailed", ("to", "amount"))
IdenticalMessages = _define("Rollup__IdenticalMessages", ("digest",))
DifferentSlots = _define("Rollup__DifferentSlots", ("slotA", "slotB"))
DifferentSigners = _define("Rollup__DifferentSigners", ("signerA", "signerB"))
InvalidSlashingSignature = _define("Rollup__InvalidSlashingSignature", ())
AlreadySlashed = _define("Rollup__AlreadySlashed", ("attester", "offense", "slot"))
NothingToSlash = _define("Rollup__NothingToSlash", ("attester",))
BlockNotFound = _define("Rollup__BlockNotFound", ("blockNumber", "tip"))

ERRORS_BY_NAME: dict[str, type[RollupError]] = {
    cls.solidity_name: cls for cls in RollupError.__subclasses__() if cls.solidity_name
}
