// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Rollup: the L1 contract of ha-sequencer protocol v1 (DESIGN.md: The network).
/// @notice Staking registry, committee and proposer selection, block proposals checked against
///         EIP-712 signatures of the proposer and a committee quorum, and slashing of equivocations.
///         Python mirrors: ha_sequencer.protocol.{constants,messages,committee}.
contract Rollup {
    // ------------------------------------------------------------------ types

    struct Config {
        uint256 genesisTime; // 0 = the deployment block's timestamp
        uint256 slotDuration;
        uint256 epochLength;
        uint256 committeeSize;
        bytes32 genesisSeed;
        uint256 minStake;
        uint256 slashAmount;
        bytes32 genesisArchive; // archive of L2 block 0, computed off-chain from the genesis allocation
    }

    /// Validators active from epoch 0; the constructor's msg.value must be minStake per validator.
    struct GenesisValidator {
        address attester;
        address withdrawer;
        bytes32 blsPublicKey;
    }

    /// Everything a block's proposer vouches for: the fee recipient is signed, so a copy of a gossiped quorum
    /// submitted with another recipient fails the proposer signature check.
    struct Proposal {
        uint256 slot;
        bytes32 parentArchive;
        bytes32 archive;
        bytes32 txsHash;
        bytes32 feeRecipient;
    }

    struct Attestation {
        uint256 slot;
        bytes32 archive;
    }

    /// One storage word per registered attester, read once per committee draw that lands on it.
    struct Entry {
        address attester;
        uint48 activationEpoch;
        uint48 exitEpoch;
    }

    struct Validator {
        address withdrawer;
        uint96 stake;
        bytes32 blsPublicKey;
        uint256 entryIndex; // index + 1 into _entries; 0 = not registered
    }

    struct BlockLog {
        bytes32 archive;
        uint64 slot;
        address proposer;
    }

    enum Offense {
        DuplicateProposal,
        DuplicateAttestation
    }

    // ------------------------------------------------------------------ errors

    error Rollup__InvalidConfig(string field);
    error Rollup__GenesisAllocationMismatch(uint256 accounts, uint256 balances);
    error Rollup__BeforeGenesis(uint256 timestamp, uint256 genesisTime);
    error Rollup__SlotAlreadyInChain(uint256 lastSlot, uint256 slot);
    error Rollup__NotCurrentSlot(uint256 currentSlot, uint256 slot);
    error Rollup__InvalidParentArchive(bytes32 expected, bytes32 given);
    error Rollup__TxsHashMismatch(bytes32 expected, bytes32 actual);
    error Rollup__EmptyCommittee(uint256 epoch);
    error Rollup__InvalidCommittee(uint256 epoch, bytes32 expected, bytes32 given);
    error Rollup__InvalidProposerSignature();
    error Rollup__InvalidProposer(address expected, address signer);
    error Rollup__InsufficientAttestations(uint256 required, uint256 given);
    error Rollup__InvalidAttestationSignature(uint256 index);
    error Rollup__NotCommitteeMember(address attester);
    error Rollup__DuplicateAttester(address attester);
    error Rollup__InvalidAttester(address attester);
    error Rollup__AlreadyRegistered(address attester);
    error Rollup__InsufficientStake(uint256 required, uint256 given);
    error Rollup__NotRegistered(address attester);
    error Rollup__NotWithdrawer(address caller, address withdrawer);
    error Rollup__AlreadyExiting(address attester, uint256 exitEpoch);
    error Rollup__NotExiting(address attester);
    error Rollup__WithdrawalNotReady(address attester, uint256 withdrawableEpoch, uint256 currentEpoch);
    error Rollup__NothingToWithdraw(address attester);
    error Rollup__TransferFailed(address to, uint256 amount);
    error Rollup__IdenticalMessages(bytes32 digest);
    error Rollup__DifferentSlots(uint256 slotA, uint256 slotB);
    error Rollup__DifferentSigners(address signerA, address signerB);
    error Rollup__InvalidSlashingSignature();
    error Rollup__AlreadySlashed(address attester, Offense offense, uint256 slot);
    error Rollup__NothingToSlash(address attester);
    error Rollup__BlockNotFound(uint256 blockNumber, uint256 tip);

    // ------------------------------------------------------------------ events

    event Deposited(address indexed attester, address withdrawer, bytes32 blsPublicKey, uint256 stake,
        uint256 activationEpoch);
    event ExitInitiated(address indexed attester, uint256 exitEpoch);
    event Withdrawn(address indexed attester, address withdrawer, uint256 amount);
    event BlockProposed(uint256 indexed slot, uint256 indexed blockNumber, bytes32 archive,
        address indexed proposer, address publisher, address[] attesters);
    event Slashed(address indexed attester, Offense offense, uint256 slot, address reporter, uint256 amount,
        uint256 reward);

    // ------------------------------------------------------------------ constants

    bytes32 public constant PROPOSAL_TYPEHASH = keccak256(
        "Proposal(uint256 slot,bytes32 parentArchive,bytes32 archive,bytes32 txsHash,bytes32 feeRecipient)"
    );
    bytes32 public constant ATTESTATION_TYPEHASH = keccak256("Attestation(uint256 slot,bytes32 archive)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    uint256 public constant ACTIVATION_DELAY_EPOCHS = 2;
    /// Stake stays slashable this many epochs after the exit epoch, so late equivocation evidence still lands.
    uint256 public constant WITHDRAWAL_DELAY_EPOCHS = 2;
    uint256 public constant MAX_COMMITTEE_SIZE = 256; // positions fit one uint256 bitmap
    /// Registry positions drawn per committee seat at most: bounds the committee's cost by its size.
    uint256 public constant COMMITTEE_DRAWS_PER_SEAT = 4;
    uint256 public constant SLASH_REPORTER_SHARE_BPS = 5_000;
    uint256 private constant BPS = 10_000;
    uint256 private constant SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    uint48 private constant NEVER = type(uint48).max;

    bytes32 public immutable DOMAIN_SEPARATOR;
    uint256 public immutable GENESIS_TIME;
    uint256 public immutable SLOT_DURATION;
    uint256 public immutable EPOCH_LENGTH;
    uint256 public immutable COMMITTEE_SIZE;
    bytes32 public immutable GENESIS_SEED;
    uint256 public immutable MIN_STAKE;
    uint256 public immutable SLASH_AMOUNT;

    // ------------------------------------------------------------------ state

    Entry[] private _entries;
    mapping(address => Validator) private _validators;
    mapping(uint256 => BlockLog) private _blocks;
    uint256 private _tip;
    mapping(bytes32 => bool) private _slashed;
    /// keccak256(abi.encodePacked(committee)) of each epoch in which a block was proposed: later
    /// proposals of the epoch pass the committee as calldata instead of sampling it again.
    mapping(uint256 => bytes32) private _committeeCommitments;
    address[] private _genesisAccounts;
    uint256[] private _genesisBalances;

    constructor(
        Config memory config,
        GenesisValidator[] memory genesisValidators,
        address[] memory genesisAccounts,
        uint256[] memory genesisBalances
    ) payable {
        if (config.slotDuration == 0) revert Rollup__InvalidConfig("slotDuration");
        if (config.epochLength == 0) revert Rollup__InvalidConfig("epochLength");
        if (config.committeeSize == 0 || config.committeeSize > MAX_COMMITTEE_SIZE) {
            revert Rollup__InvalidConfig("committeeSize");
        }
        if (config.minStake == 0 || config.minStake > type(uint96).max) revert Rollup__InvalidConfig("minStake");
        if (config.slashAmount > config.minStake) revert Rollup__InvalidConfig("slashAmount");
        if (genesisAccounts.length != genesisBalances.length) {
            revert Rollup__GenesisAllocationMismatch(genesisAccounts.length, genesisBalances.length);
        }
        uint256 required = genesisValidators.length * config.minStake;
        if (msg.value != required) revert Rollup__InsufficientStake(required, msg.value);

        DOMAIN_SEPARATOR = keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("HASequencer"), keccak256("1"), block.chainid, address(this))
        );
        GENESIS_TIME = config.genesisTime == 0 ? block.timestamp : config.genesisTime;
        SLOT_DURATION = config.slotDuration;
        EPOCH_LENGTH = config.epochLength;
        COMMITTEE_SIZE = config.committeeSize;
        GENESIS_SEED = config.genesisSeed;
        MIN_STAKE = config.minStake;
        SLASH_AMOUNT = config.slashAmount;

        // A zero genesisArchive means "derive it from the allocation" (protocol.block.genesis_archive).
        bytes32 genesisArchive = config.genesisArchive == bytes32(0)
            ? keccak256(abi.encode(genesisAccounts, genesisBalances))
            : config.genesisArchive;
        _blocks[0] = BlockLog({archive: genesisArchive, slot: 0, proposer: address(0)});
        _genesisAccounts = genesisAccounts;
        _genesisBalances = genesisBalances;
        for (uint256 i; i < genesisValidators.length; ++i) {
            GenesisValidator memory v = genesisValidators[i];
            _register(v.attester, v.withdrawer, v.blsPublicKey, config.minStake, 0);
        }
    }

    // ------------------------------------------------------------------ time

    function getCurrentSlot() public view returns (uint256) {
        if (block.timestamp < GENESIS_TIME) revert Rollup__BeforeGenesis(block.timestamp, GENESIS_TIME);
        return (block.timestamp - GENESIS_TIME) / SLOT_DURATION;
    }

    function getCurrentEpoch() public view returns (uint256) {
        return getCurrentSlot() / EPOCH_LENGTH;
    }

    /// Epoch used for registry changes: 0 before genesis.
    function _clockEpoch() internal view returns (uint256) {
        if (block.timestamp < GENESIS_TIME) return 0;
        return (block.timestamp - GENESIS_TIME) / SLOT_DURATION / EPOCH_LENGTH;
    }

    function getConfig()
        external
        view
        returns (
            uint256 genesisTime,
            uint256 slotDuration,
            uint256 epochLength,
            uint256 committeeSize,
            bytes32 genesisSeed,
            uint256 minStake,
            uint256 slashAmount
        )
    {
        return (GENESIS_TIME, SLOT_DURATION, EPOCH_LENGTH, COMMITTEE_SIZE, GENESIS_SEED, MIN_STAKE, SLASH_AMOUNT);
    }

    function getGenesisAllocation() external view returns (address[] memory accounts, uint256[] memory balances) {
        return (_genesisAccounts, _genesisBalances);
    }

    // ------------------------------------------------------------------ staking registry

    /// Registers `attester` with msg.value as stake; active from two epochs after the current one.
    function deposit(address attester, address withdrawer, bytes32 blsPublicKey) external payable {
        _register(attester, withdrawer, blsPublicKey, msg.value, _clockEpoch() + ACTIVATION_DELAY_EPOCHS);
    }

    function _register(address attester, address withdrawer, bytes32 bls, uint256 stake, uint256 activation)
        internal
    {
        if (attester == address(0) || withdrawer == address(0)) revert Rollup__InvalidAttester(attester);
        if (_validators[attester].entryIndex != 0) revert Rollup__AlreadyRegistered(attester);
        if (stake < MIN_STAKE || stake > type(uint96).max) revert Rollup__InsufficientStake(MIN_STAKE, stake);
        _entries.push(Entry({attester: attester, activationEpoch: uint48(activation), exitEpoch: NEVER}));
        _validators[attester] = Validator({
            withdrawer: withdrawer, stake: uint96(stake), blsPublicKey: bls, entryIndex: _entries.length
        });
        emit Deposited(attester, withdrawer, bls, stake, activation);
    }

    /// Leaves the set two epochs from now (the committees of this and the next epoch stay fixed).
    function initiateExit(address attester) external {
        Validator storage v = _validators[attester];
        if (v.entryIndex == 0) revert Rollup__NotRegistered(attester);
        if (msg.sender != v.withdrawer) revert Rollup__NotWithdrawer(msg.sender, v.withdrawer);
        Entry storage e = _entries[v.entryIndex - 1];
        if (e.exitEpoch != NEVER) revert Rollup__AlreadyExiting(attester, e.exitEpoch);
        _scheduleExit(e);
    }

    function _scheduleExit(Entry storage e) internal {
        uint48 exitEpoch = uint48(_clockEpoch() + ACTIVATION_DELAY_EPOCHS);
        if (exitEpoch < e.exitEpoch) {
            e.exitEpoch = exitEpoch;
            emit ExitInitiated(e.attester, exitEpoch);
        }
    }

    /// Pays the remaining stake to the withdrawer WITHDRAWAL_DELAY_EPOCHS after the exit epoch.
    function withdraw(address attester) external {
        Validator storage v = _validators[attester];
        if (v.entryIndex == 0) revert Rollup__NotRegistered(attester);
        if (msg.sender != v.withdrawer) revert Rollup__NotWithdrawer(msg.sender, v.withdrawer);
        uint256 exitEpoch = _entries[v.entryIndex - 1].exitEpoch;
        if (exitEpoch == NEVER) revert Rollup__NotExiting(attester);
        uint256 epoch = _clockEpoch();
        if (epoch < exitEpoch + WITHDRAWAL_DELAY_EPOCHS) {
            revert Rollup__WithdrawalNotReady(attester, exitEpoch + WITHDRAWAL_DELAY_EPOCHS, epoch);
        }
        uint256 amount = v.stake;
        if (amount == 0) revert Rollup__NothingToWithdraw(attester);
        v.stake = 0;
        emit Withdrawn(attester, v.withdrawer, amount);
        _pay(v.withdrawer, amount);
    }

    function getValidator(address attester)
        external
        view
        returns (address withdrawer, uint256 stake, bytes32 blsPublicKey, uint256 activationEpoch, uint256 exitEpoch)
    {
        Validator storage v = _validators[attester];
        if (v.entryIndex == 0) revert Rollup__NotRegistered(attester);
        Entry storage e = _entries[v.entryIndex - 1];
        return (v.withdrawer, v.stake, v.blsPublicKey, e.activationEpoch, e.exitEpoch);
    }

    function validatorCount() external view returns (uint256) {
        return _entries.length;
    }

    // ------------------------------------------------------------------ committee

    /// Attesters active in `epoch`, in registration order.
    function getActiveAttesters(uint256 epoch) public view returns (address[] memory set) {
        uint256 n = _entries.length;
        set = new address[](n);
        uint256 count;
        for (uint256 i; i < n; ++i) {
            Entry memory e = _entries[i];
            if (e.activationEpoch <= epoch && epoch < e.exitEpoch) set[count++] = e.attester;
        }
        assembly {
            mstore(set, count)
        }
    }

    function epochSeed(uint256 epoch) public view returns (bytes32) {
        return keccak256(abi.encode(epoch, GENESIS_SEED));
    }

    /// Every registry entry in registration order (for off-chain mirrors of the committee; O(registry)).
    function getRegistry()
        external
        view
        returns (address[] memory attesters, uint256[] memory activationEpochs, uint256[] memory exitEpochs)
    {
        uint256 n = _entries.length;
        attesters = new address[](n);
        activationEpochs = new uint256[](n);
        exitEpochs = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            Entry memory e = _entries[i];
            (attesters[i], activationEpochs[i], exitEpochs[i]) = (e.attester, e.activationEpoch, e.exitEpoch);
        }
    }

    /// Partial Fisher-Yates over registry positions, never materialising the registry: draw i takes position
    /// j = i + keccak256(abi.encode(seed, i)) % (n - i) and keeps the entry there when it is active in `epoch`.
    /// At most COMMITTEE_DRAWS_PER_SEAT draws per seat, so the cost follows the committee size, not the
    /// registry size; mirrored by protocol.committee.committee_for (docs/committee-sampling.md).
    function getEpochCommittee(uint256 epoch) public view returns (address[] memory committee) {
        uint256 n = _entries.length;
        uint256 size = COMMITTEE_SIZE;
        uint256 draws = size * COMMITTEE_DRAWS_PER_SEAT;
        if (draws > n) draws = n;
        committee = new address[](size);
        // The positions earlier draws moved: open addressing, a slot holds (position + 1) << 128 | entry index.
        uint256 mask = 1;
        while (mask < 2 * draws) mask <<= 1;
        uint256[] memory moved = new uint256[](mask);
        mask -= 1;
        bytes32 seed = epochSeed(epoch);
        uint256 count;
        for (uint256 i; i < draws && count < size; ++i) {
            uint256 r;
            assembly {
                // keccak256(abi.encode(seed, i)) in scratch space: no memory allocation per draw
                mstore(0x00, seed)
                mstore(0x20, i)
                r := keccak256(0x00, 0x40)
            }
            uint256 j = i + r % (n - i);
            uint256 pick = _movedAt(moved, mask, j);
            if (j != i) _move(moved, mask, j, _movedAt(moved, mask, i));
            Entry memory e = _entries[pick];
            if (e.activationEpoch <= epoch && epoch < e.exitEpoch) committee[count++] = e.attester;
        }
        assembly {
            mstore(committee, count)
        }
    }

    /// The entry index now at `position` of the virtual shuffled registry (the position itself if unmoved).
    function _movedAt(uint256[] memory moved, uint256 mask, uint256 position) internal pure returns (uint256) {
        uint256 tag = (position + 1) << 128;
        for (uint256 h = position & mask;; h = (h + 1) & mask) {
            uint256 slot = moved[h];
            if (slot == 0) return position;
            if (slot >> 128 << 128 == tag) return slot & type(uint128).max;
        }
    }

    function _move(uint256[] memory moved, uint256 mask, uint256 position, uint256 index) internal pure {
        uint256 tag = (position + 1) << 128;
        for (uint256 h = position & mask;; h = (h + 1) & mask) {
            uint256 slot = moved[h];
            if (slot == 0 || slot >> 128 << 128 == tag) {
                moved[h] = tag | index;
                return;
            }
        }
    }

    function _proposerOf(uint256 slot, address[] memory committee) internal view returns (address) {
        uint256 epoch = slot / EPOCH_LENGTH;
        if (committee.length == 0) revert Rollup__EmptyCommittee(epoch);
        return committee[uint256(keccak256(abi.encode(epoch, slot, epochSeed(epoch)))) % committee.length];
    }

    function getProposer(uint256 slot) external view returns (address) {
        return _proposerOf(slot, getEpochCommittee(slot / EPOCH_LENGTH));
    }

    /// The stored committee commitment of `epoch` (zero until its first block).
    function getCommitteeCommitment(uint256 epoch) external view returns (bytes32) {
        return _committeeCommitments[epoch];
    }

    /// Checks `committee` against the epoch's commitment, computing and storing it on first use.
    function _checkCommittee(uint256 epoch, address[] calldata committee) internal returns (address[] memory) {
        bytes32 expected = _committeeCommitments[epoch];
        bytes32 given = keccak256(abi.encodePacked(committee));
        if (expected == bytes32(0)) {
            address[] memory computed = getEpochCommittee(epoch);
            expected = keccak256(abi.encodePacked(computed));
            if (given != expected) revert Rollup__InvalidCommittee(epoch, expected, given);
            if (computed.length == 0) revert Rollup__EmptyCommittee(epoch);
            _committeeCommitments[epoch] = expected;
            return computed;
        }
        if (given != expected) revert Rollup__InvalidCommittee(epoch, expected, given);
        return committee;
    }

    // ------------------------------------------------------------------ EIP-712

    function hashProposal(Proposal calldata p) public view returns (bytes32) {
        return _typedDigest(
            keccak256(abi.encode(PROPOSAL_TYPEHASH, p.slot, p.parentArchive, p.archive, p.txsHash, p.feeRecipient))
        );
    }

    function hashAttestation(Attestation calldata a) public view returns (bytes32) {
        return _attestationDigest(a.slot, a.archive);
    }

    function _attestationDigest(uint256 slot, bytes32 archive) internal view returns (bytes32) {
        return _typedDigest(keccak256(abi.encode(ATTESTATION_TYPEHASH, slot, archive)));
    }

    function _typedDigest(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR, structHash));
    }

    /// ecrecover with the checks of protocol.messages.check_signature_format; address(0) when malformed.
    function _recover(bytes32 digest, bytes calldata sig) internal pure returns (address) {
        if (sig.length != 65) return address(0);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := calldataload(sig.offset)
            s := calldataload(add(sig.offset, 32))
            v := byte(0, calldataload(add(sig.offset, 64)))
        }
        if ((v != 27 && v != 28) || r == 0 || s == 0 || uint256(s) > SECP256K1_HALF_N) return address(0);
        return ecrecover(digest, v, r, s);
    }

    // ------------------------------------------------------------------ blocks

    function getTips() external view returns (uint256 blockNumber, bytes32 archive, uint256 slot) {
        BlockLog storage b = _blocks[_tip];
        return (_tip, b.archive, b.slot);
    }

    function getBlock(uint256 blockNumber) external view returns (bytes32 archive, uint256 slot, address proposer) {
        if (blockNumber > _tip) revert Rollup__BlockNotFound(blockNumber, _tip);
        BlockLog storage b = _blocks[blockNumber];
        return (b.archive, b.slot, b.proposer);
    }

    /// Appends a block. Authority comes from the signatures: any account may publish.
    /// @param proposal signed by the slot's proposer; its feeRecipient is not read here (L2 sync reads it back
    ///        from the calldata), but it is signed, so nobody can publish the block paying someone else.
    /// @param attestations 65-byte signatures (r‖s‖v) over Attestation(slot, archive), one per distinct
    ///        committee member, in any order; at least floor(2n/3)+1 of them.
    /// @param committee the epoch's committee, as getEpochCommittee returns it (checked against a commitment).
    /// @param txs the block's transactions (opaque here; keccak256(txs) must equal proposal.txsHash).
    function propose(
        Proposal calldata proposal,
        bytes calldata proposerSignature,
        bytes[] calldata attestations,
        address[] calldata committee,
        bytes calldata txs
    ) external {
        _checkPosition(proposal);
        _checkTxs(proposal.txsHash, txs);
        address[] memory members = _checkCommittee(proposal.slot / EPOCH_LENGTH, committee);
        (address proposer, address[] memory attesters) =
            _verifySignatures(proposal, proposerSignature, attestations, members);
        _append(proposal, proposer, attesters);
    }

    function _checkTxs(bytes32 expected, bytes calldata txs) internal pure {
        bytes32 actual = keccak256(txs);
        if (actual != expected) revert Rollup__TxsHashMismatch(expected, actual);
    }

    function _append(Proposal calldata proposal, address proposer, address[] memory attesters) internal {
        uint256 blockNumber = _tip + 1;
        _tip = blockNumber;
        _blocks[blockNumber] = BlockLog({archive: proposal.archive, slot: uint64(proposal.slot), proposer: proposer});
        emit BlockProposed(proposal.slot, blockNumber, proposal.archive, proposer, msg.sender, attesters);
    }

    function _verifySignatures(
        Proposal calldata proposal,
        bytes calldata proposerSignature,
        bytes[] calldata attestations,
        address[] memory committee
    ) internal view returns (address proposer, address[] memory attesters) {
        proposer = _proposerOf(proposal.slot, committee);
        address signer = _recover(hashProposal(proposal), proposerSignature);
        if (signer == address(0)) revert Rollup__InvalidProposerSignature();
        if (signer != proposer) revert Rollup__InvalidProposer(proposer, signer);
        attesters = _verifyAttestations(proposal.slot, proposal.archive, committee, attestations);
    }

    function _checkPosition(Proposal calldata proposal) internal view {
        BlockLog storage tip = _blocks[_tip];
        uint256 lastSlot = tip.slot;
        if (proposal.slot <= lastSlot) revert Rollup__SlotAlreadyInChain(lastSlot, proposal.slot);
        uint256 current = getCurrentSlot();
        if (proposal.slot != current) revert Rollup__NotCurrentSlot(current, proposal.slot);
        if (proposal.parentArchive != tip.archive) {
            revert Rollup__InvalidParentArchive(tip.archive, proposal.parentArchive);
        }
    }

    function _verifyAttestations(
        uint256 slot,
        bytes32 archive,
        address[] memory committee,
        bytes[] calldata attestations
    ) internal view returns (address[] memory attesters) {
        uint256 size = committee.length;
        uint256 required = size * 2 / 3 + 1;
        if (attestations.length < required) revert Rollup__InsufficientAttestations(required, attestations.length);
        bytes32 digest = _attestationDigest(slot, archive);
        attesters = new address[](attestations.length);
        uint256 seen; // bitmap of committee positions
        for (uint256 i; i < attestations.length; ++i) {
            address attester = _recover(digest, attestations[i]);
            if (attester == address(0)) revert Rollup__InvalidAttestationSignature(i);
            uint256 pos = _positionOf(committee, attester);
            if (pos == size) revert Rollup__NotCommitteeMember(attester);
            if (seen & (1 << pos) != 0) revert Rollup__DuplicateAttester(attester);
            seen |= 1 << pos;
            attesters[i] = attester;
        }
    }

    /// Index of `attester` in `committee`, or committee.length when absent (assembly: the checked loop costs
    /// ~150 gas more per comparison, ~70k per block at committee 48).
    function _positionOf(address[] memory committee, address attester) internal pure returns (uint256 pos) {
        assembly {
            let n := mload(committee)
            let first := add(committee, 0x20)
            for {} lt(pos, n) { pos := add(pos, 1) } {
                if eq(mload(add(first, shl(5, pos))), attester) { break }
            }
        }
    }

    // ------------------------------------------------------------------ slashing

    /// Two different proposals for one slot signed by one attester: slash it, reward the reporter.
    function slashDuplicateProposal(Proposal calldata a, bytes calldata sigA, Proposal calldata b, bytes calldata sigB)
        external
    {
        if (a.slot != b.slot) revert Rollup__DifferentSlots(a.slot, b.slot);
        _slash(hashProposal(a), sigA, hashProposal(b), sigB, Offense.DuplicateProposal, a.slot);
    }

    /// Two different attestations for one slot signed by one attester: slash it, reward the reporter.
    function slashDuplicateAttestation(
        Attestation calldata a,
        bytes calldata sigA,
        Attestation calldata b,
        bytes calldata sigB
    ) external {
        if (a.slot != b.slot) revert Rollup__DifferentSlots(a.slot, b.slot);
        _slash(hashAttestation(a), sigA, hashAttestation(b), sigB, Offense.DuplicateAttestation, a.slot);
    }

    function _slash(
        bytes32 digestA,
        bytes calldata sigA,
        bytes32 digestB,
        bytes calldata sigB,
        Offense offense,
        uint256 slot
    ) internal {
        if (digestA == digestB) revert Rollup__IdenticalMessages(digestA);
        address signerA = _recover(digestA, sigA);
        address signerB = _recover(digestB, sigB);
        if (signerA == address(0) || signerB == address(0)) revert Rollup__InvalidSlashingSignature();
        if (signerA != signerB) revert Rollup__DifferentSigners(signerA, signerB);
        bytes32 key = keccak256(abi.encode(signerA, offense, slot));
        if (_slashed[key]) revert Rollup__AlreadySlashed(signerA, offense, slot);
        Validator storage v = _validators[signerA];
        if (v.stake == 0) revert Rollup__NothingToSlash(signerA);
        _slashed[key] = true;
        uint256 amount = v.stake < SLASH_AMOUNT ? v.stake : SLASH_AMOUNT;
        v.stake -= uint96(amount);
        if (v.stake < MIN_STAKE) _scheduleExit(_entries[v.entryIndex - 1]);
        uint256 reward = amount * SLASH_REPORTER_SHARE_BPS / BPS;
        emit Slashed(signerA, offense, slot, msg.sender, amount, reward);
        _pay(msg.sender, reward);
    }

    function _pay(address to, uint256 amount) internal {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert Rollup__TransferFailed(to, amount);
    }
}
