// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Capacity: proof-of-capacity commitments, batched proofs, verifier attestations, rewards.
/// @notice Providers register units (CPU or GPU) with collateral. Every epoch, each unit proves it
/// holds its hardware by finding nonces whose hash (RandomX for CPU units, capminer's GPU
/// challenge for GPU units, keyed by the epoch seed and the unit id) is at most the epoch's
/// target for its kind. Providers submit nonces in cheap batches, each bound to the seed it was
/// mined under; the EVM does not recompute hashes. Registered verifiers recompute them off chain
/// (each its own unpredictable sample) and attest per (unit, epoch) over the digest of the
/// submitted nonces; a quorum of attestations makes the unit-epoch rewardable, a quorum of
/// reports of one invalid nonce, each carrying the evidence that the nonce was accepted, makes it
/// failed and slashes collateral. Rewards are pulled per unit once an epoch is settled.
///
/// Life of a unit-epoch `e` (times from `genesisTime`):
/// ```
///  epochStart(e) ── proofs ── epochStart(e+1) ── grace ──┬── attest / report ──┬── settled
///                                                         windowClosed(e)        settleTime(e)
/// ```
/// At `settleTime(e)` the unit-epoch is final: failed (no reward, slashed), attested (reward),
/// or unsettled (no reward, no slash). Nothing waits on a verifier beyond that.
///
/// Storage and gas design:
/// - Submissions write one word per unit, reused epoch after epoch: a ring of `ringSlots` words
///   per unit (slot `epoch % ringSlots`, bought at registration), each
///   `lastNonce u64 | count u16 << 64 | groups u16 << 80 | (epoch + 1) u32 << 96 | digest`,
///   the digest in the top 128 bits. A slot holding an older epoch starts afresh; `ringSlots`
///   is chosen so that a slot is reused only after its epoch settled. A batch reads and writes
///   the word once per unit: a changed word, never a fresh one.
/// - Groups carry nonces delta-encoded (`docs/PROTOCOL.md`); each accepted run is logged in the
///   same encoding and chained into the digest: `digest = keccak256(digest ‖ logged group)`
///   with the low 128 bits cleared. At most `MAX_GROUPS` groups per unit-epoch are accepted
///   and `maxProofs` is at most `MAX_PROOFS_LIMIT`, so the evidence of a report (every group)
///   always fits in a block.
/// - Verdicts (attestation and report counts, failed, the proof count) live in one word per
///   (unit, epoch), written by the verifiers' votes; claims read only that word.
/// - A unit-epoch is attested (failed) when its attestations (reports) meet the quorum in force
///   at its settlement (`quorumFor(epoch)`), whatever the quorum was when the votes came.
/// - Hosts: each unit is assigned to one of its provider's hosts (`assignUnits`, host 0 at
///   registration); an operator key, bound to one host with its own consent
///   (`authorizeOperator` then `acceptOperator`), submits only for the units of that host.
/// - Nonces must strictly increase per (unit, epoch): duplicates and stale nonces are skipped,
///   never counted twice, so resubmitting a batch after a crash, a replacement or a reorg is
///   harmless. Skipping instead of reverting keeps one stale proof from sinking a batch.
/// - Governance: parameter and verifier-set changes go through a timelock (`schedule`, then
///   `execute` after `timelockDelay`); ownership moves in two steps; a guardian may pause
///   submissions and claims, never collateral.
contract Capacity {
    // ---------------------------------------------------------------- constants

    uint8 public constant KIND_CPU = 0;
    uint8 public constant KIND_GPU = 1;
    uint8 internal constant KINDS = 2;
    uint256 internal constant BPS = 10_000;
    uint256 internal constant GROUP_HEADER_BYTES = 15; // uint32 unit ‖ uint16 n ‖ uint8 width ‖ uint64 first
    uint256 internal constant LOGGED_HEADER_BYTES = 9; // uint8 width ‖ uint64 first

    // A proof slot (submissions): lastNonce u64 | count u16 | groups u16 | epoch + 1 u32 | digest.
    uint256 internal constant SLOT_COUNT_SHIFT = 64;
    uint256 internal constant SLOT_GROUPS_SHIFT = 80;
    uint256 internal constant SLOT_TAG_SHIFT = 96;
    uint256 internal constant DIGEST_MASK = ~uint256(type(uint128).max);
    /// A bought slot that holds no epoch yet (nonzero, so its first use is a change).
    uint256 internal constant EMPTY_SLOT = 1;
    /// Most proof slots a unit holds: unsettled epochs (grace and verification windows) at once.
    uint256 public constant MAX_RING_SLOTS = 16;
    // A verdict word (votes): count u32 | FAILED | attestations u16 | reports u16.
    uint256 internal constant FAILED = 1 << 32; // slashed: final, whatever the quorum later
    uint256 internal constant ATTESTATIONS_SHIFT = 40;
    uint256 internal constant REPORTS_SHIFT = 56;
    uint256 internal constant COUNTER_MASK = 0xffff;
    /// Groups (`ProofsAccepted` logs) accepted per unit-epoch; a later group is skipped whole.
    /// With `MAX_PROOFS_LIMIT`, this bounds a report's evidence whatever the provider's batching.
    uint256 public constant MAX_GROUPS = 256;
    /// The largest `maxProofs` a kind may have. The worst report (`MAX_GROUPS` logged groups
    /// holding `MAX_PROOFS_LIMIT` nonces at 8-byte deltas) is at most 4 + 5 × 32 + 32 +
    /// 95 × 256 + 9 × 256 + 8 × (32768 - 256) = 286,916 bytes of calldata: at most 11.5M gas
    /// under EIP-7623's floor (40 gas a non-zero byte), well within a 30M block
    /// (`tests/it/chain/attacks/evidence.rs` measures it on anvil: 10.2M).
    uint32 public constant MAX_PROOFS_LIMIT = 32_768;
    uint64 internal constant NO_END = type(uint64).max;
    /// secp256k1 order / 2: signatures with a larger s are refused (one signature per message).
    uint256 internal constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    // ---------------------------------------------------------------- types

    /// Parameters of one unit kind.
    struct KindParams {
        bytes32 target; // a proof's hash, read big-endian, must be <= target
        uint32 minProofs; // per unit per epoch, to earn the reward
        uint32 maxProofs; // per unit per epoch, more are skipped
        uint128 reward; // wei per rewardable unit-epoch
        uint128 collateral; // wei per unit at registration
        bytes32 challenge; // the kind's challenge parameters (docs/PROTOCOL.md); zero for RandomX
    }

    /// A unit. Submissions read only its first two storage words (provider to host, then
    /// endEpoch and both collaterals).
    struct Unit {
        address provider;
        uint8 kind;
        uint64 startEpoch; // first epoch it may prove
        uint16 host; // the provider's host whose operator key may submit for it (assignUnits)
        uint64 endEpoch; // first epoch it may no longer prove
        uint96 collateral; // what remains after slashing, plus top-ups
        uint96 registeredCollateral; // what its kind required at registration
        uint64 claimedUpTo; // next epoch to claim
        bytes32 id; // starts with the provider's address
    }

    struct EpochRecord {
        bytes32 seed;
        uint64 version; // index into paramsVersions
        uint64 seedBlock; // block that fixed the seed
        uint32 maxProofsCpu; // the version's maxProofs of each kind, beside it for submissions
        uint32 maxProofsGpu;
    }

    struct QuorumChange {
        uint64 since;
        uint32 quorum;
    }

    /// Times of the contract, in seconds.
    struct Schedule {
        uint64 epochDuration; // per epoch
        uint64 graceWindow; // after an epoch ends, its proofs are still accepted
        uint64 verifyWindow; // after the grace window: attestations and reports, then settlement
        uint64 timelockDelay; // between scheduling a governance call and executing it
    }

    // ---------------------------------------------------------------- storage

    address public owner;
    bool public paused;
    address public pendingOwner;
    address public guardian;
    uint256 public immutable genesisTime;
    uint256 public immutable epochDuration;
    uint256 public immutable graceWindow;
    uint256 public immutable verifyWindow;
    uint256 public immutable timelockDelay;
    uint256 public immutable slashRateBps;
    /// Proof slots per unit: `1 + ceil((graceWindow + verifyWindow) / epochDuration)`, so epoch
    /// `e + ringSlots` starts no earlier than `settleTime(e)`.
    uint256 public immutable ringSlots;

    KindParams[KINDS][] internal paramsVersions;
    uint64 internal pendingVersion; // 0: none pending (version 0 is the constructor's)
    uint64 internal pendingFrom;
    uint64 internal activeVersion;

    mapping(uint64 => EpochRecord) internal epochs;
    /// Units by index; `unitsLength` of them (an index past it reads a zero provider).
    mapping(uint256 => Unit) internal units;
    uint256 internal unitsLength;
    mapping(bytes32 => uint256) internal unitIndexPlusOne;

    /// Proof slots: `unit << 8 | epoch % ringSlots` => slot word (see the storage design).
    mapping(uint256 => uint256) internal proofSlots;
    /// Verdicts: `_key(unit, epoch)` => verdict word, written by votes.
    mapping(uint256 => uint256) internal verdicts;

    /// A provider's hosts: operator => provider. An operator submits proofs for the units of
    /// its host (`operatorHost`) and can do nothing else; collateral and rewards stay the
    /// provider's.
    mapping(address => address) public operatorProvider;
    mapping(address => uint16) public operatorHost;
    /// Offers not yet accepted: provider => operator => host + 1 (0: none).
    mapping(address => mapping(address => uint32)) public operatorOffer;
    /// A verifier party's shards: delegate => party. A delegate attests, reports and abstains
    /// for its party; the party counts once, whichever of its keys sends.
    mapping(address => address) public delegateParty;

    mapping(address => bool) public isVerifier;
    uint32 public verifierCount;
    uint32 public quorum;
    /// Every quorum in force and since when (unix time); the quorum of a unit-epoch is the one
    /// in force at its `settleTime`.
    QuorumChange[] internal quorumHistory;
    mapping(bytes32 => bool) internal attested; // keccak(unit-epoch key, verifier)
    mapping(bytes32 => bool) internal reported; // keccak(unit-epoch key, verifier)

    /// Timelocked calls: keccak256(calldata) => earliest execution time.
    mapping(bytes32 => uint256) public scheduledAt;

    uint256 public rewardPool;
    /// Rewards a claim could not pay because the pool was short; paid by later claims.
    mapping(address => uint256) public owed;
    uint256 internal locked = 1;

    // ---------------------------------------------------------------- events

    event UnitRegistered(uint32 indexed index, bytes32 indexed id, address indexed provider, uint8 kind, uint64 startEpoch);
    event UnitRetired(uint32 indexed index, uint64 endEpoch);
    event CollateralToppedUp(uint32 indexed index, uint256 amount, uint256 collateral);
    event CollateralWithdrawn(uint32 indexed index, address indexed provider, uint256 amount);
    event EpochStarted(uint64 indexed epoch, bytes32 seed, uint64 version);
    event KindParamsSet(uint8 indexed kind, uint64 version, uint64 fromEpoch, KindParams params);
    event ProofsAccepted(uint64 indexed epoch, uint32 indexed unit, uint32 count, uint64 lastNonce, bytes group);
    event OperatorOffered(address indexed provider, address indexed operator, uint16 host);
    event OperatorAuthorized(address indexed provider, address indexed operator, uint16 host);
    event UnitsAssigned(address indexed provider, uint16 indexed host, uint32[] indices);
    event OperatorRevoked(address indexed provider, address indexed operator);
    event DelegateAuthorized(address indexed party, address indexed delegate);
    event DelegateRevoked(address indexed party, address indexed delegate);
    event VerifierAdded(address indexed verifier);
    event VerifierRemoved(address indexed verifier);
    event QuorumSet(uint32 quorum);
    event Attested(uint32 indexed unit, uint64 indexed epoch, address indexed verifier, bytes32 digest, uint32 checked, bytes sampleSignature);
    event UnitEpochAttested(uint32 indexed unit, uint64 indexed epoch);
    event InvalidProofReported(uint32 indexed unit, uint64 indexed epoch, uint64 nonce, uint8 reason, address indexed verifier);
    event UnitEpochFailed(uint32 indexed unit, uint64 indexed epoch, uint256 slashed);
    event VerificationAbstained(uint32 indexed unit, uint64 indexed epoch, address indexed verifier, uint8 reason);
    event PoolFunded(address indexed from, uint256 amount);
    event RewardsClaimed(address indexed provider, uint256 amount, uint64 toEpoch);
    event RewardsOwed(address indexed provider, uint256 amount);
    event OwnershipTransferStarted(address indexed from, address indexed to);
    event OwnershipTransferred(address indexed from, address indexed to);
    event GuardianSet(address indexed guardian);
    event Paused(bool paused);
    event CallScheduled(bytes32 indexed id, uint256 eta, bytes data);
    event CallExecuted(bytes32 indexed id);
    event CallCancelled(bytes32 indexed id);

    // ---------------------------------------------------------------- errors

    error OnlyOwner();
    error OnlyGuardian();
    error OnlyTimelock();
    error IsPaused();
    error ZeroAddress();
    error UnknownKind(uint8 kind);
    error DuplicateUnit(bytes32 id);
    error IdNotBound(bytes32 id, address provider);
    error LengthMismatch();
    error WrongCollateral(uint256 expected, uint256 sent);
    error UnknownUnit(uint32 unit);
    error UnknownUnitId(bytes32 id);
    error NotUnitOwner(uint32 unit, address provider);
    error EpochClosed(uint64 epoch, uint64 current);
    error EpochNotSeeded(uint64 epoch);
    error SeedMismatch(uint64 epoch, bytes32 expected, bytes32 given);
    error MalformedBatch(uint256 offset);
    error NotVerifier(address account);
    error KeyTaken(address key, address holder);
    error NotYours(address key, address holder);
    error NoOffer(address provider, address operator);
    error WindowOpen(uint64 epoch);
    error VerificationClosed(uint64 epoch, uint256 settledAt);
    error DigestMismatch(bytes32 expected, bytes32 given);
    error BadSampleSignature(address signer, address verifier);
    error AlreadyAttested(uint32 unit, uint64 epoch, address verifier);
    error AlreadyReported(uint32 unit, uint64 epoch, uint64 nonce, address verifier);
    error AlreadyFailed(uint32 unit, uint64 epoch);
    error NothingSubmitted(uint32 unit, uint64 epoch);
    error BadEvidence(bytes32 expected, bytes32 computed);
    error NonceNotSubmitted(uint32 unit, uint64 epoch, uint64 nonce);
    error BadQuorum(uint32 quorum, uint32 verifiers);
    error BadParams();
    error NotRetired(uint32 unit);
    error CollateralLocked(uint32 unit, uint256 untilTime);
    error NotScheduled(bytes32 id);
    error AlreadyScheduled(bytes32 id);
    error TimelockPending(bytes32 id, uint256 eta);
    error NotTimelocked(bytes4 selector);
    error TransferFailed();
    error Reentrancy();

    // ---------------------------------------------------------------- modifiers

    modifier onlyOwner() {
        if (msg.sender != owner) revert OnlyOwner();
        _;
    }

    /// Governance calls come only through `execute`, after the timelock.
    modifier onlyTimelock() {
        if (msg.sender != address(this)) revert OnlyTimelock();
        _;
    }

    modifier whenNotPaused() {
        if (paused) revert IsPaused();
        _;
    }

    modifier nonReentrant() {
        if (locked != 1) revert Reentrancy();
        locked = 2;
        _;
        locked = 1;
    }

    /// The verifier party the sender acts for: itself, or the party that authorized it as a
    /// delegate (while that party is a verifier).
    function _party() internal view returns (address party) {
        if (isVerifier[msg.sender]) return msg.sender;
        party = delegateParty[msg.sender];
        if (party == address(0) || !isVerifier[party]) revert NotVerifier(msg.sender);
    }

    /// @param s epoch, grace, verification and timelock times
    /// @param quorum_ attestations (and reports) needed per unit-epoch, at most the verifiers
    /// @param slashRateBps_ share of a unit's registered collateral slashed per failed unit-epoch
    /// @param verifiers_ the initial verifier set
    /// @param guardian_ may pause submissions and claims (zero: nobody until set)
    /// @param initial parameters of the CPU and GPU kinds, in force from epoch 0
    constructor(
        Schedule memory s,
        uint32 quorum_,
        uint256 slashRateBps_,
        address[] memory verifiers_,
        address guardian_,
        KindParams[KINDS] memory initial
    ) {
        if (s.epochDuration == 0 || s.graceWindow >= s.epochDuration || s.verifyWindow == 0 || slashRateBps_ > BPS) {
            revert BadParams();
        }
        owner = msg.sender;
        genesisTime = block.timestamp;
        epochDuration = s.epochDuration;
        graceWindow = s.graceWindow;
        verifyWindow = s.verifyWindow;
        timelockDelay = s.timelockDelay;
        slashRateBps = slashRateBps_;
        uint256 ring = 1 + (uint256(s.graceWindow) + s.verifyWindow + s.epochDuration - 1) / s.epochDuration;
        if (ring > MAX_RING_SLOTS) revert BadParams();
        ringSlots = ring;
        for (uint256 i = 0; i < verifiers_.length; ++i) {
            _addVerifier(verifiers_[i]);
        }
        _setQuorum(quorum_);
        guardian = guardian_;
        paramsVersions.push();
        for (uint8 k = 0; k < KINDS; ++k) {
            _checkParams(initial[k]);
            paramsVersions[0][k] = initial[k];
            emit KindParamsSet(k, 0, 0, initial[k]);
        }
        emit OwnershipTransferred(address(0), msg.sender);
        emit GuardianSet(guardian_);
    }

    // ---------------------------------------------------------------- epochs

    /// @notice The current epoch: `(block.timestamp - genesisTime) / epochDuration`.
    function currentEpoch() public view returns (uint64) {
        return uint64((block.timestamp - genesisTime) / epochDuration);
    }

    /// @notice When epoch `e` starts.
    function epochStart(uint64 e) public view returns (uint256) {
        return genesisTime + uint256(e) * epochDuration;
    }

    /// @notice When epoch `e`'s unit-epochs are settled: no attestation or report after it.
    function settleTime(uint64 e) public view returns (uint256) {
        return epochStart(e + 1) + graceWindow + verifyWindow;
    }

    /// @notice True once proofs for `epoch` can no longer be submitted.
    function windowClosed(uint64 epoch) public view returns (bool) {
        return block.timestamp >= epochStart(epoch + 1) + graceWindow;
    }

    /// @notice Fixes the current epoch's seed (and parameters) if nobody has yet. Permissionless.
    /// The seed mixes the hash of the previous block: a reorg that drops the fixing block
    /// changes it, which is why clients wait for `seedBlock` to be final before mining and
    /// every batch names the seed it was mined under.
    function advanceEpoch() external returns (bytes32 seed) {
        return _seedOf(currentEpoch());
    }

    /// @notice An epoch's seed (zero until fixed), the block that fixed it, and the parameters
    /// of both kinds in force.
    function epochInfo(uint64 e)
        external
        view
        returns (
            bytes32 seed,
            uint64 seedBlock,
            bytes32[2] memory targets,
            uint32[2] memory minProofs,
            uint32[2] memory maxProofs,
            uint128[2] memory rewards,
            bytes32[2] memory challenges
        )
    {
        EpochRecord storage r = epochs[e];
        seed = r.seed;
        seedBlock = r.seedBlock;
        KindParams[KINDS] storage p = paramsVersions[seed == 0 ? _versionFor(e) : r.version];
        for (uint8 k = 0; k < KINDS; ++k) {
            targets[k] = p[k].target;
            minProofs[k] = p[k].minProofs;
            maxProofs[k] = p[k].maxProofs;
            rewards[k] = p[k].reward;
            challenges[k] = p[k].challenge;
        }
    }

    function _versionFor(uint64 e) internal view returns (uint64) {
        return pendingVersion != 0 && e >= pendingFrom ? pendingVersion : activeVersion;
    }

    function _seedOf(uint64 e) internal returns (bytes32 seed) {
        seed = epochs[e].seed;
        if (seed != 0) return seed;
        uint64 version = _versionFor(e);
        if (version == pendingVersion && pendingVersion != 0) {
            activeVersion = pendingVersion;
            pendingVersion = 0;
        }
        seed = keccak256(abi.encode(block.chainid, address(this), e, blockhash(block.number - 1)));
        KindParams[KINDS] storage p = paramsVersions[version];
        epochs[e] = EpochRecord(seed, version, uint64(block.number), p[0].maxProofs, p[1].maxProofs);
        emit EpochStarted(e, seed, version);
    }

    // ---------------------------------------------------------------- governance

    /// @notice Schedules a governance call (`setKindParams`, `addVerifier`, `removeVerifier`,
    /// `setQuorum`, `setGuardian`), executable after `timelockDelay`.
    function schedule(bytes calldata data) external onlyOwner returns (bytes32 id, uint256 eta) {
        _checkTimelocked(data);
        id = keccak256(data);
        if (scheduledAt[id] != 0) revert AlreadyScheduled(id);
        eta = block.timestamp + timelockDelay;
        scheduledAt[id] = eta;
        emit CallScheduled(id, eta, data);
    }

    /// @notice Executes a scheduled call whose delay has passed.
    function execute(bytes calldata data) external onlyOwner {
        bytes32 id = keccak256(data);
        uint256 eta = scheduledAt[id];
        if (eta == 0) revert NotScheduled(id);
        if (block.timestamp < eta) revert TimelockPending(id, eta);
        delete scheduledAt[id];
        (bool ok, bytes memory ret) = address(this).call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        emit CallExecuted(id);
    }

    /// @notice Drops a scheduled call.
    function cancel(bytes32 id) external onlyOwner {
        if (scheduledAt[id] == 0) revert NotScheduled(id);
        delete scheduledAt[id];
        emit CallCancelled(id);
    }

    function _checkTimelocked(bytes calldata data) internal pure {
        if (data.length < 4) revert NotTimelocked(bytes4(0));
        bytes4 selector = bytes4(data[:4]);
        if (
            selector != this.setKindParams.selector && selector != this.addVerifier.selector
                && selector != this.removeVerifier.selector && selector != this.setQuorum.selector
                && selector != this.setGuardian.selector
        ) revert NotTimelocked(selector);
    }

    /// @notice First step of an ownership transfer; `to` takes over with `acceptOwnership`.
    function transferOwnership(address to) external onlyOwner {
        if (to == address(0)) revert ZeroAddress();
        pendingOwner = to;
        emit OwnershipTransferStarted(owner, to);
    }

    /// @notice Second step: the pending owner takes over.
    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert OnlyOwner();
        emit OwnershipTransferred(owner, msg.sender);
        owner = msg.sender;
        pendingOwner = address(0);
    }

    /// @notice Sets the pause guardian (timelocked).
    /// Refused to zero while paused: someone must remain able to resume.
    function setGuardian(address g) external onlyTimelock {
        if (g == address(0) && paused) revert ZeroAddress();
        guardian = g;
        emit GuardianSet(g);
    }

    /// @notice Stops or resumes submissions and claims. Collateral never moves by it.
    function setPaused(bool p) external {
        if (msg.sender != guardian) revert OnlyGuardian();
        paused = p;
        emit Paused(p);
    }

    // ---------------------------------------------------------------- parameters

    /// @notice Sets a kind's parameters, in force from the epoch after the one it executes in
    /// (timelocked).
    function setKindParams(uint8 kind, KindParams calldata p) external onlyTimelock {
        if (kind >= KINDS) revert UnknownKind(kind);
        _checkParams(p);
        uint64 from = currentEpoch() + 1;
        if (pendingVersion != 0 && pendingFrom <= currentEpoch()) {
            // The pending version is already in force (no epoch was seeded since): make it the
            // active one, so the new change starts a version of its own.
            activeVersion = pendingVersion;
            pendingVersion = 0;
        }
        uint64 base = pendingVersion != 0 ? pendingVersion : activeVersion;
        if (pendingVersion == 0) {
            paramsVersions.push();
            pendingVersion = uint64(paramsVersions.length - 1);
            for (uint8 k = 0; k < KINDS; ++k) {
                paramsVersions[pendingVersion][k] = paramsVersions[base][k];
            }
        }
        pendingFrom = from;
        paramsVersions[pendingVersion][kind] = p;
        emit KindParamsSet(kind, pendingVersion, from, p);
    }

    /// @notice Parameters of a kind that a registration made now pays and the next epochs use.
    function kindParams(uint8 kind) external view returns (KindParams memory) {
        if (kind >= KINDS) revert UnknownKind(kind);
        return paramsVersions[_versionFor(currentEpoch() + 1)][kind];
    }

    function _checkParams(KindParams memory p) internal pure {
        if (
            p.maxProofs == 0 || p.maxProofs > MAX_PROOFS_LIMIT || p.minProofs > p.maxProofs || p.target == 0
                || p.collateral > type(uint96).max
        ) {
            revert BadParams();
        }
    }

    // ---------------------------------------------------------------- units

    /// @notice Registers units owned by the sender, each with the collateral its kind requires.
    /// An id must start with the sender's address (nobody can take another provider's ids).
    /// Units prove from the next epoch on.
    function registerUnits(bytes32[] calldata ids, uint8[] calldata kinds) external payable returns (uint32 firstIndex) {
        if (ids.length != kinds.length || ids.length == 0) revert LengthMismatch();
        KindParams[KINDS] storage p = paramsVersions[_versionFor(currentEpoch() + 1)];
        uint256 expected;
        for (uint256 i = 0; i < kinds.length; ++i) {
            if (kinds[i] >= KINDS) revert UnknownKind(kinds[i]);
            expected += p[kinds[i]].collateral;
        }
        if (msg.value != expected) revert WrongCollateral(expected, msg.value);
        firstIndex = uint32(unitsLength);
        uint64 start = currentEpoch() + 1;
        for (uint256 i = 0; i < ids.length; ++i) {
            bytes32 id = ids[i];
            if (address(bytes20(id)) != msg.sender) revert IdNotBound(id, msg.sender);
            if (unitIndexPlusOne[id] != 0) revert DuplicateUnit(id);
            uint128 c = p[kinds[i]].collateral; // at most uint96's maximum (_checkParams)
            uint32 index = uint32(unitsLength++);
            units[index] = Unit(msg.sender, kinds[i], start, 0, NO_END, uint96(c), uint96(c), start, id);
            for (uint256 r = 0; r < ringSlots; ++r) {
                proofSlots[(uint256(index) << 8) | r] = EMPTY_SLOT;
            }
            unitIndexPlusOne[id] = uint256(index) + 1;
            emit UnitRegistered(index, id, msg.sender, kinds[i], start);
        }
    }

    /// @notice Restores a slashed unit's collateral; until then its proofs are skipped.
    function topUp(uint32 index) external payable {
        Unit storage u = _ownedUnit(index);
        uint256 need = u.registeredCollateral - u.collateral;
        if (msg.value == 0 || msg.value > need) revert WrongCollateral(need, msg.value);
        u.collateral += uint96(msg.value);
        emit CollateralToppedUp(index, msg.value, u.collateral);
    }

    /// @notice Stops units from proving from the next epoch on.
    function retireUnits(uint32[] calldata indices) external {
        uint64 end = currentEpoch() + 1;
        for (uint256 i = 0; i < indices.length; ++i) {
            Unit storage u = _ownedUnit(indices[i]);
            if (u.endEpoch == NO_END) {
                u.endEpoch = end;
                emit UnitRetired(indices[i], end);
            }
        }
    }

    /// @notice Returns retired units' remaining collateral once every epoch they could prove in
    /// is settled (`settleTime` of their last epoch).
    function withdrawCollateral(uint32[] calldata indices) external nonReentrant {
        uint256 total;
        for (uint256 i = 0; i < indices.length; ++i) {
            Unit storage u = _ownedUnit(indices[i]);
            if (u.endEpoch == NO_END) revert NotRetired(indices[i]);
            if (u.endEpoch > u.startEpoch) {
                uint256 until = settleTime(u.endEpoch - 1);
                if (block.timestamp < until) revert CollateralLocked(indices[i], until);
            }
            uint256 amount = u.collateral;
            u.collateral = 0;
            u.registeredCollateral = 0;
            total += amount;
            emit CollateralWithdrawn(indices[i], msg.sender, amount);
        }
        _pay(msg.sender, total);
    }

    function unitCount() external view returns (uint32) {
        return uint32(unitsLength);
    }

    function unitInfo(uint32 index) external view returns (Unit memory) {
        if (index >= unitsLength) revert UnknownUnit(index);
        return units[index];
    }

    /// @notice `unitInfo` of each of `indices`, in one call: a client with thousands of units
    /// reads their records in a few calls instead of one each.
    function unitInfos(uint32[] calldata indices) external view returns (Unit[] memory out) {
        out = new Unit[](indices.length);
        for (uint256 i = 0; i < indices.length; ++i) {
            if (indices[i] >= unitsLength) revert UnknownUnit(indices[i]);
            out[i] = units[indices[i]];
        }
    }

    function unitIndexOf(bytes32 id) external view returns (uint32) {
        uint256 i = unitIndexPlusOne[id];
        if (i == 0) revert UnknownUnitId(id);
        return uint32(i - 1);
    }

    /// @notice The index plus one of each of `ids`, 0 for an id not registered, in one call.
    function unitIndicesOf(bytes32[] calldata ids) external view returns (uint32[] memory plusOne) {
        plusOne = new uint32[](ids.length);
        for (uint256 i = 0; i < ids.length; ++i) {
            plusOne[i] = uint32(unitIndexPlusOne[ids[i]]);
        }
    }

    // ---------------------------------------------------------------- hosts and shards

    /// @notice Offers `operator` (one host's key) the right to submit proofs for the sender's
    /// units assigned to `host`, and nothing else. The key takes it with `acceptOperator`: nobody
    /// binds a key without its consent, so nobody can capture a provider's key first.
    function authorizeOperator(address operator, uint16 host) external {
        if (operator == address(0)) revert ZeroAddress();
        if (operator == msg.sender) revert KeyTaken(operator, msg.sender);
        operatorOffer[msg.sender][operator] = uint32(host) + 1;
        emit OperatorOffered(msg.sender, operator, host);
    }

    /// @notice The sender (an operator key) accepts `provider`'s offer: from now on it submits
    /// proofs for `provider`'s units of the offered host. A key serves one provider at a time;
    /// it may move to another host of the same provider.
    function acceptOperator(address provider) external {
        uint32 offer = operatorOffer[provider][msg.sender];
        if (offer == 0) revert NoOffer(provider, msg.sender);
        address holder = operatorProvider[msg.sender];
        if (holder != address(0) && holder != provider) revert KeyTaken(msg.sender, holder);
        delete operatorOffer[provider][msg.sender];
        uint16 host = uint16(offer - 1);
        operatorProvider[msg.sender] = provider;
        operatorHost[msg.sender] = host;
        emit OperatorAuthorized(provider, msg.sender, host);
    }

    /// @notice Withdraws `operator`'s right (or pending offer) to submit the sender's proofs,
    /// at once.
    function revokeOperator(address operator) external {
        bool offered = operatorOffer[msg.sender][operator] != 0;
        delete operatorOffer[msg.sender][operator];
        if (operatorProvider[operator] == msg.sender) {
            operatorProvider[operator] = address(0);
            operatorHost[operator] = 0;
        } else if (!offered) {
            revert NotYours(operator, operatorProvider[operator]);
        }
        emit OperatorRevoked(msg.sender, operator);
    }

    /// @notice The sender (an operator key) leaves its provider.
    function releaseOperator() external {
        address provider = operatorProvider[msg.sender];
        if (provider == address(0)) revert NotYours(msg.sender, address(0));
        operatorProvider[msg.sender] = address(0);
        operatorHost[msg.sender] = 0;
        emit OperatorRevoked(provider, msg.sender);
    }

    /// @notice Assigns the sender's units `indices` to `host`: from now on only the operator
    /// keys of that host (and the provider) submit for them. Units start on host 0.
    function assignUnits(uint32[] calldata indices, uint16 host) external {
        for (uint256 i = 0; i < indices.length; ++i) {
            _ownedUnit(indices[i]).host = host;
        }
        emit UnitsAssigned(msg.sender, host, indices);
    }

    /// @notice Lets `delegate` (one shard's key) attest, report and abstain for the sender's
    /// verifier party. A key serves one party at a time, and a verifier cannot be a delegate.
    function authorizeDelegate(address delegate) external {
        if (!isVerifier[msg.sender]) revert NotVerifier(msg.sender);
        if (isVerifier[delegate]) revert KeyTaken(delegate, delegate);
        _bind(delegateParty, delegate);
        emit DelegateAuthorized(msg.sender, delegate);
    }

    /// @notice Withdraws `delegate`'s right to act for the sender's party.
    function revokeDelegate(address delegate) external {
        _unbind(delegateParty, delegate);
        emit DelegateRevoked(msg.sender, delegate);
    }

    /// @notice The sender (a delegate key) leaves its party: a key bound without its wish
    /// frees itself.
    function releaseDelegate() external {
        address party = delegateParty[msg.sender];
        if (party == address(0)) revert NotYours(msg.sender, address(0));
        delegateParty[msg.sender] = address(0);
        emit DelegateRevoked(party, msg.sender);
    }

    function _bind(mapping(address => address) storage holders, address key) internal {
        if (key == address(0)) revert ZeroAddress();
        address holder = holders[key];
        if (key == msg.sender || (holder != address(0) && holder != msg.sender)) revert KeyTaken(key, holder);
        holders[key] = msg.sender;
    }

    function _unbind(mapping(address => address) storage holders, address key) internal {
        address holder = holders[key];
        if (holder != msg.sender) revert NotYours(key, holder);
        holders[key] = address(0);
    }

    function _ownedUnit(uint32 index) internal view returns (Unit storage u) {
        if (index >= unitsLength) revert UnknownUnit(index);
        u = units[index];
        if (u.provider != msg.sender) revert NotUnitOwner(index, u.provider);
    }

    function _key(uint32 unit, uint64 epoch) internal pure returns (uint256) {
        return (uint256(unit) << 64) | epoch;
    }

    /// Where unit `unit`'s proof slot for `epoch` lives.
    function _slotKey(uint32 unit, uint64 epoch) internal view returns (uint256) {
        return (uint256(unit) << 8) | (epoch % ringSlots);
    }

    /// Unit `unit`'s proof slot word for `epoch`: zero if the slot holds another epoch.
    function _slotOf(uint32 unit, uint64 epoch) internal view returns (uint256 word) {
        word = proofSlots[_slotKey(unit, epoch)];
        if ((word >> SLOT_TAG_SHIFT) & 0xffffffff != uint256(epoch) + 1) word = 0;
    }

    // ---------------------------------------------------------------- proofs

    /// @notice Submits nonces for `epoch`, mined under `seed`. `packed` is a sequence of
    /// groups, each `uint32 unit ‖ uint16 n ‖ uint8 w ‖ uint64 first ‖ (n - 1) × w-byte delta`,
    /// big-endian: the nonces are `first` and then each the previous plus its delta (at least
    /// 1, so they strictly increase); `w` is 1 to 8. Per (unit, epoch) nonces must strictly
    /// increase across groups too: stale nonces (at most the last accepted) and nonces beyond the
    /// kind's maximum are skipped, and so are the nonces of units short of collateral or not
    /// active in the epoch. Units the sender may not submit for revert the call, and so do a
    /// seed that is not the epoch's and a malformed group.
    /// @return accepted nonces counted, skipped nonces ignored
    function submitProofs(uint64 epoch, bytes32 seed, bytes calldata packed)
        external
        whenNotPaused
        returns (uint256 accepted, uint256 skipped)
    {
        uint64 cur = currentEpoch();
        if (epoch != cur && !(epoch + 1 == cur && block.timestamp < epochStart(cur) + graceWindow)) {
            revert EpochClosed(epoch, cur);
        }
        EpochRecord storage record = epochs[epoch];
        bytes32 fixedSeed = record.seed;
        if (fixedSeed == 0) revert EpochNotSeeded(epoch);
        if (fixedSeed != seed) revert SeedMismatch(epoch, fixedSeed, seed);
        uint256 maxProofs = uint256(record.maxProofsCpu) | (uint256(record.maxProofsGpu) << 32);

        uint256 offset = 0;
        while (offset < packed.length) {
            uint256 took;
            uint256 left;
            (offset, took, left) = _submitGroup(epoch, maxProofs, packed, offset);
            accepted += took;
            skipped += left;
        }
    }

    /// Reads the group at `offset` and applies it; returns the offset of the next group.
    /// `maxProofs`: the epoch's maximum of each kind, 32 bits each (CPU in the low ones).
    function _submitGroup(uint64 epoch, uint256 maxProofs, bytes calldata packed, uint256 offset)
        internal
        returns (uint256 next, uint256 took, uint256 left)
    {
        if (offset + GROUP_HEADER_BYTES > packed.length) revert MalformedBatch(offset);
        uint256 head;
        uint32 unit;
        uint256 n;
        uint256 w;
        assembly ("memory-safe") {
            head := add(packed.offset, offset)
            let word := calldataload(head)
            unit := shr(224, word)
            n := and(shr(208, word), 0xffff)
            w := byte(6, word)
        }
        if (n == 0 || w == 0 || w > 8) revert MalformedBatch(offset);
        next = offset + GROUP_HEADER_BYTES + (n - 1) * w;
        if (next > packed.length) revert MalformedBatch(offset);
        Unit storage u = units[unit];
        address provider = u.provider;
        if (provider == address(0)) revert UnknownUnit(unit); // never registered
        if (provider != msg.sender && (operatorProvider[msg.sender] != provider || operatorHost[msg.sender] != u.host)) {
            revert NotUnitOwner(unit, provider);
        }
        if (epoch < u.startEpoch || epoch >= u.endEpoch || u.collateral < u.registeredCollateral) {
            return (next, 0, n);
        }
        uint256 max = uint32(maxProofs >> (32 * uint256(u.kind)));
        took = _acceptGroup(epoch, unit, max, head, n, w);
        if (took == type(uint256).max) revert MalformedBatch(offset);
        left = n - took;
    }

    /// Applies one group (`n` nonces of `w`-byte deltas, its header at calldata `head`): one read
    /// and one write of the unit's proof slot, one event. The accepted nonces are one run of
    /// the group (those above the last accepted, up to the maximum), logged and digested as
    /// `uint8 w ‖ uint64 first accepted ‖ their deltas`, copied from the calldata. Returns the
    /// nonces accepted, or `type(uint256).max` for a malformed group.
    function _acceptGroup(uint64 epoch, uint32 unit, uint256 maxProofs, uint256 head, uint256 n, uint256 w)
        internal
        returns (uint256 took)
    {
        uint256 slotKey = _slotKey(unit, epoch);
        uint256 word = proofSlots[slotKey];
        if ((word >> SLOT_TAG_SHIFT) & 0xffffffff != uint256(epoch) + 1) {
            word = (uint256(epoch) + 1) << SLOT_TAG_SHIFT; // an older epoch's slot: start afresh
        }
        if ((word >> SLOT_GROUPS_SHIFT) & COUNTER_MASK >= MAX_GROUPS) return 0;
        uint256 count = (word >> SLOT_COUNT_SHIFT) & COUNTER_MASK;
        (uint256 copyFrom, uint256 first, uint256 floor, uint256 taken) =
            _scan(head, n, w, count == 0 ? 0 : uint256(uint64(word)) + 1, maxProofs > count ? maxProofs - count : 0);
        if (taken == type(uint256).max || taken == 0) return taken;
        count += taken;
        // The logged group: w ‖ first accepted nonce ‖ the deltas after it, from the calldata.
        bytes memory logged = new bytes(LOGGED_HEADER_BYTES + (taken - 1) * w);
        bytes32 d = bytes32(word & DIGEST_MASK);
        assembly ("memory-safe") {
            let data := add(logged, 32)
            mstore(data, or(shl(248, w), shl(184, first)))
            calldatacopy(add(data, 9), copyFrom, mul(sub(taken, 1), w))
            // keccak256(digest ‖ logged), hashed in place over logged's length word.
            let len := mload(logged)
            mstore(logged, d)
            d := and(keccak256(logged, add(32, len)), not(0xffffffffffffffffffffffffffffffff))
            mstore(logged, len)
        }
        uint256 groups = ((word >> SLOT_GROUPS_SHIFT) & COUNTER_MASK) + 1;
        proofSlots[slotKey] = uint256(d) | ((uint256(epoch) + 1) << SLOT_TAG_SHIFT) | (groups << SLOT_GROUPS_SHIFT)
            | (count << SLOT_COUNT_SHIFT) | (floor - 1);
        emit ProofsAccepted(epoch, unit, uint32(count), uint64(floor - 1), logged);
        return taken;
    }

    /// The accept loop over the group at calldata `head` (`n` nonces, `w`-byte deltas): a nonce
    /// counts if at least `floor` while `room` is left, so the accepted ones are one run: the
    /// stale nonces before it are skipped one by one, then its length is known and its deltas
    /// (and those after it) are only summed and checked. Returns the calldata of the deltas after
    /// the run's first nonce, that nonce, the new floor (last accepted + 1) and how many were
    /// accepted (`type(uint256).max`: a zero delta or a nonce past 2^64 - 1, so malformed).
    function _scan(uint256 head, uint256 n, uint256 w, uint256 floor, uint256 room)
        internal
        pure
        returns (uint256 copyFrom, uint256 first, uint256 newFloor, uint256 taken)
    {
        assembly ("memory-safe") {
            // Sums the deltas in [src, end) onto `nonce`; `bad` if one is zero.
            function sum(from, to, width, sh, start) -> total, zero {
                total := start
                for {} lt(from, to) { from := add(from, width) } {
                    let delta := shr(sh, calldataload(from))
                    zero := or(zero, iszero(delta))
                    total := add(total, delta)
                }
            }
            let shift := sub(256, shl(3, w))
            let src := add(head, 15)
            let end := add(src, mul(sub(n, 1), w))
            let nonce := shr(192, calldataload(add(head, 7)))
            let bad := 0
            // The stale nonces (below the floor), usually none.
            for {} and(lt(nonce, floor), lt(src, end)) { src := add(src, w) } {
                let delta := shr(shift, calldataload(src))
                bad := or(bad, iszero(delta))
                nonce := add(nonce, delta)
            }
            newFloor := floor
            let last := nonce
            if iszero(or(lt(nonce, floor), iszero(room))) {
                copyFrom := src
                first := nonce
                taken := add(div(sub(end, src), w), 1)
                if lt(room, taken) { taken := room }
                let runEnd := add(src, mul(sub(taken, 1), w))
                let b1 := 0
                last, b1 := sum(src, runEnd, w, shift, nonce)
                newFloor := add(last, 1)
                bad := or(bad, b1)
                src := runEnd
            }
            let b2 := 0
            nonce, b2 := sum(src, end, w, shift, last)
            if or(or(bad, b2), gt(nonce, 0xffffffffffffffff)) { taken := not(0) }
        }
    }

    /// @notice The state of a unit in an epoch. `isAttested` and `failed` are judged with
    /// `quorumFor(epoch)`: the quorum in force now until the epoch settles, then the one in force
    /// at its settlement. `lastNonce`, `digest` and `groups` are kept until the epoch settles
    /// (its proof slot is then reused); `count` from then on is the one its votes recorded.
    function unitEpoch(uint32 unit, uint64 epoch)
        external
        view
        returns (
            uint32 count,
            uint64 lastNonce,
            bytes32 digest,
            uint32 attestations,
            bool isAttested,
            bool failed,
            uint32 reports,
            uint32 groups
        )
    {
        uint256 slot = _slotOf(unit, epoch);
        uint256 verdict = verdicts[_key(unit, epoch)];
        uint256 q = quorumFor(epoch);
        return (
            slot != 0 ? uint32((slot >> SLOT_COUNT_SHIFT) & COUNTER_MASK) : uint32(verdict),
            uint64(slot),
            bytes32(slot & DIGEST_MASK),
            uint32((verdict >> ATTESTATIONS_SHIFT) & COUNTER_MASK),
            _attested(verdict, q),
            _failed(verdict, q),
            uint32((verdict >> REPORTS_SHIFT) & COUNTER_MASK),
            uint32((slot >> SLOT_GROUPS_SHIFT) & COUNTER_MASK)
        );
    }

    /// Failed: slashed already, or reports meet the quorum `q`.
    function _failed(uint256 verdict, uint256 q) internal pure returns (bool) {
        return verdict & FAILED != 0 || (verdict >> REPORTS_SHIFT) & COUNTER_MASK >= q;
    }

    /// Attested: attestations meet the quorum `q`, and not failed.
    function _attested(uint256 verdict, uint256 q) internal pure returns (bool) {
        return !_failed(verdict, q) && (verdict >> ATTESTATIONS_SHIFT) & COUNTER_MASK >= q;
    }

    /// @notice The quorum that judges epoch `e`'s unit-epochs: the one in force at its
    /// settlement, i.e. set before `settleTime(e)` (the last second votes are taken is the one
    /// before); the current one until then.
    function quorumFor(uint64 e) public view returns (uint32) {
        uint256 t = settleTime(e);
        uint256 i = quorumHistory.length;
        while (i > 1 && quorumHistory[i - 1].since >= t) --i;
        return quorumHistory[i - 1].quorum;
    }

    /// @notice `unitEpoch(indices[i], epoch).count` of each of `indices`, in one call.
    function unitEpochCounts(uint32[] calldata indices, uint64 epoch) external view returns (uint32[] memory counts) {
        counts = new uint32[](indices.length);
        for (uint256 i = 0; i < indices.length; ++i) {
            uint256 slot = _slotOf(indices[i], epoch);
            counts[i] = slot != 0
                ? uint32((slot >> SLOT_COUNT_SHIFT) & COUNTER_MASK)
                : uint32(verdicts[_key(indices[i], epoch)]);
        }
    }

    // ---------------------------------------------------------------- verification

    /// @notice Adds a verifier (timelocked).
    function addVerifier(address v) external onlyTimelock {
        _addVerifier(v);
    }

    /// @notice Removes a verifier (timelocked); refused if fewer than the quorum would remain.
    function removeVerifier(address v) external onlyTimelock {
        if (!isVerifier[v]) return;
        if (verifierCount - 1 < quorum) revert BadQuorum(quorum, verifierCount - 1);
        isVerifier[v] = false;
        --verifierCount;
        emit VerifierRemoved(v);
    }

    /// @notice Attestations (and reports) needed per unit-epoch (timelocked): at least one, at
    /// most the number of verifiers.
    function setQuorum(uint32 q) external onlyTimelock {
        _setQuorum(q);
    }

    function _addVerifier(address v) internal {
        if (v == address(0)) revert ZeroAddress();
        // Votes are counted in 16 bits of the unit-epoch word.
        if (verifierCount >= COUNTER_MASK) revert BadQuorum(quorum, verifierCount);
        if (!isVerifier[v]) {
            isVerifier[v] = true;
            ++verifierCount;
            emit VerifierAdded(v);
        }
    }

    function _setQuorum(uint32 q) internal {
        if (q == 0 || q > verifierCount) revert BadQuorum(q, verifierCount);
        quorum = q;
        uint256 n = quorumHistory.length;
        if (n > 0 && quorumHistory[n - 1].since == block.timestamp) {
            quorumHistory[n - 1].quorum = q;
        } else {
            quorumHistory.push(QuorumChange(uint64(block.timestamp), q));
        }
        emit QuorumSet(q);
    }

    function hasAttested(uint32 unit, uint64 epoch, address v) external view returns (bool) {
        return attested[keccak256(abi.encode(_key(unit, epoch), v))];
    }

    /// @notice What a verifier signs (a bare secp256k1 signature over this hash) to draw its
    /// sample of the unit-epoch: keccak256 of the signature seeds the sample (docs/PROTOCOL.md).
    /// Neither the provider nor a block producer can predict it; anyone can audit it from the
    /// `Attested` event.
    function sampleHash(uint32 unit, uint64 epoch, bytes32 digest) public view returns (bytes32) {
        return keccak256(abi.encode("capminer/sample/v1", block.chainid, address(this), unit, epoch, digest));
    }

    function _checkVerifying(uint64 epoch) internal view {
        if (!windowClosed(epoch)) revert WindowOpen(epoch);
        uint256 until = settleTime(epoch);
        if (block.timestamp >= until) revert VerificationClosed(epoch, until);
    }

    /// @notice A verifier confirms that it recomputed `checked` of the unit's nonces of the
    /// epoch, drawn from `sampleSignature` (its signature over `sampleHash`), and found them
    /// valid. `digest` must be the chained digest of the accepted nonces.
    function attest(uint32 unit, uint64 epoch, bytes32 digest, uint32 checked, bytes calldata sampleSignature)
        external
    {
        address party = _party();
        _checkVerifying(epoch);
        uint256 slot = _slotOf(unit, epoch);
        if (slot == 0) revert NothingSubmitted(unit, epoch);
        bytes32 expected = bytes32(slot & DIGEST_MASK);
        if (digest != expected) revert DigestMismatch(expected, digest);
        uint256 key = _key(unit, epoch);
        uint256 verdict = _withCount(verdicts[key], slot);
        uint256 q = quorum;
        if (_failed(verdict, q)) revert AlreadyFailed(unit, epoch);
        address signer = _recover(sampleHash(unit, epoch, digest), sampleSignature);
        if (signer != msg.sender) revert BadSampleSignature(signer, msg.sender);
        bytes32 mark = keccak256(abi.encode(key, party));
        if (attested[mark]) revert AlreadyAttested(unit, epoch, party);
        attested[mark] = true;
        uint256 n = ((verdict >> ATTESTATIONS_SHIFT) & COUNTER_MASK) + 1;
        verdicts[key] = verdict + (1 << ATTESTATIONS_SHIFT);
        emit Attested(unit, epoch, party, digest, checked, sampleSignature);
        // Informational: whether it is attested is judged at settlement (`quorumFor`).
        if (n == q) emit UnitEpochAttested(unit, epoch);
    }

    /// @notice A verifier reports that `nonce`, accepted for the unit in the epoch, is invalid
    /// (`reason`: 1 hash above target, 2 other). `groups` is the evidence: the accepted nonces of
    /// every `ProofsAccepted` log of the unit-epoch, in log order; their chained digest must be
    /// the contract's and one of them must hold `nonce`. One report per verifier and unit-epoch;
    /// the verifiers of a quorum may each name another invalid nonce (each from its own sample).
    /// At quorum the unit-epoch fails (no reward, even if attested) and `slashRateBps` of the
    /// unit's registered collateral goes to the reward pool. Only between the window's close and
    /// `settleTime`.
    function reportInvalid(uint32 unit, uint64 epoch, uint64 nonce, uint8 reason, bytes[] calldata groups)
        external
    {
        address party = _party();
        _checkVerifying(epoch);
        if (unit >= unitsLength) revert UnknownUnit(unit);
        uint256 slot = _slotOf(unit, epoch);
        if (slot == 0) revert NothingSubmitted(unit, epoch);
        _checkEvidence(unit, epoch, nonce, bytes32(slot & DIGEST_MASK), groups);
        uint256 key = _key(unit, epoch);
        bytes32 mark = keccak256(abi.encode(key, party));
        if (reported[mark]) revert AlreadyReported(unit, epoch, nonce, party);
        reported[mark] = true;
        uint256 verdict = _withCount(verdicts[key], slot) + (1 << REPORTS_SHIFT);
        verdicts[key] = verdict;
        emit InvalidProofReported(unit, epoch, nonce, reason, party);
        if (_failed(verdict, quorum)) _slash(unit, epoch, key, verdict);
    }

    /// @notice Slashes a unit-epoch whose reports meet `quorumFor(epoch)` but that no report
    /// slashed (the quorum was lowered after the reports came). Permissionless; a no-op
    /// otherwise. Its reward is withheld either way (`_walk` judges with `quorumFor`).
    function enforceFailure(uint32 unit, uint64 epoch) external {
        if (unit >= unitsLength) revert UnknownUnit(unit);
        uint256 key = _key(unit, epoch);
        uint256 verdict = verdicts[key];
        if (_failed(verdict, quorumFor(epoch))) _slash(unit, epoch, key, verdict);
    }

    /// `verdict` with the unit-epoch's proof count from its proof `slot` (final once the window
    /// closed; votes come only after): the count claims judge by after the slot is reused.
    function _withCount(uint256 verdict, uint256 slot) internal pure returns (uint256) {
        return (verdict & ~uint256(type(uint32).max)) | ((slot >> SLOT_COUNT_SHIFT) & COUNTER_MASK);
    }

    /// Marks the unit-epoch failed (final) and moves `slashRateBps` of the unit's registered
    /// collateral, rounded up, into the pool; once per unit-epoch.
    function _slash(uint32 unit, uint64 epoch, uint256 key, uint256 verdict) internal {
        if (verdict & FAILED != 0) return;
        verdicts[key] = verdict | FAILED;
        Unit storage u = units[unit];
        uint256 slash = (uint256(u.registeredCollateral) * slashRateBps + BPS - 1) / BPS;
        if (slash > u.collateral) slash = u.collateral;
        u.collateral -= uint96(slash);
        rewardPool += slash;
        emit UnitEpochFailed(unit, epoch, slash);
    }

    /// Checks that `groups` (logged groups, `uint8 w ‖ uint64 first ‖ w-byte deltas`) replays
    /// to `expected` and holds `nonce`. Hashes each group in one scratch area (memory does not
    /// grow with the evidence) and decodes its nonces in assembly: the worst report at
    /// `MAX_PROOFS_LIMIT` stays a few million gas of execution.
    function _checkEvidence(uint32 unit, uint64 epoch, uint64 nonce, bytes32 expected, bytes[] calldata groups)
        internal
        pure
    {
        bytes32 d;
        bool found;
        uint256 scratch;
        assembly ("memory-safe") {
            scratch := mload(0x40)
        }
        for (uint256 g = 0; g < groups.length; ++g) {
            bytes calldata b = groups[g];
            assembly ("memory-safe") {
                mstore(scratch, d)
                calldatacopy(add(scratch, 32), b.offset, b.length)
                d := and(keccak256(scratch, add(32, b.length)), not(0xffffffffffffffffffffffffffffffff))
            }
            if (found) continue;
            if (b.length < LOGGED_HEADER_BYTES) revert MalformedBatch(g);
            uint256 w = uint8(b[0]);
            if (w == 0 || w > 8 || (b.length - LOGGED_HEADER_BYTES) % w != 0) revert MalformedBatch(g);
            assembly ("memory-safe") {
                let v := shr(192, calldataload(add(b.offset, 1)))
                found := eq(v, nonce)
                let shift := sub(256, mul(w, 8))
                let end := add(b.offset, b.length)
                for { let p := add(b.offset, 9) } and(lt(p, end), iszero(found)) { p := add(p, w) } {
                    v := add(v, shr(shift, calldataload(p)))
                    found := eq(v, nonce)
                }
            }
        }
        if (d != expected) revert BadEvidence(expected, d);
        if (!found) revert NonceNotSubmitted(unit, epoch, nonce);
    }

    /// @notice A verifier states on chain that it could not check a unit-epoch (`reason`:
    /// 1 unsupported kind, 2 challenge parameters differ, 3 logs do not replay to the digest,
    /// 4 recomputation failed), instead of skipping it silently.
    function abstain(uint32 unit, uint64 epoch, uint8 reason) external {
        address party = _party();
        _checkVerifying(epoch);
        emit VerificationAbstained(unit, epoch, party, reason);
    }

    function _recover(bytes32 hash, bytes calldata sig) internal pure returns (address) {
        if (sig.length != 65) return address(0);
        bytes32 r = bytes32(sig[0:32]);
        bytes32 s = bytes32(sig[32:64]);
        uint8 v = uint8(sig[64]);
        // Only 27 or 28 (and low s): one byte string per signature, so one sample per verifier.
        if ((v != 27 && v != 28) || uint256(s) > HALF_ORDER) return address(0);
        return ecrecover(hash, v, r, s);
    }

    // ---------------------------------------------------------------- rewards

    /// @notice Adds to the reward pool.
    function fundPool() external payable {
        rewardPool += msg.value;
        emit PoolFunded(msg.sender, msg.value);
    }

    receive() external payable {
        rewardPool += msg.value;
        emit PoolFunded(msg.sender, msg.value);
    }

    /// @notice What claiming `unit` up to `toEpoch` would earn now (before what the pool can
    /// pay), and the epoch it would stop before.
    function claimable(uint32 unit, uint64 toEpoch) external view returns (uint256 amount, uint64 nextEpoch) {
        if (unit >= unitsLength) revert UnknownUnit(unit);
        return _walk(units[unit], unit, toEpoch);
    }

    /// @notice `claimable(indices[i], toEpoch).amount` of each of `indices`, in one call.
    function claimables(uint32[] calldata indices, uint64 toEpoch) external view returns (uint256[] memory amounts) {
        amounts = new uint256[](indices.length);
        for (uint256 i = 0; i < indices.length; ++i) {
            if (indices[i] >= unitsLength) revert UnknownUnit(indices[i]);
            (amounts[i],) = _walk(units[indices[i]], indices[i], toEpoch);
        }
    }

    /// @notice Claims the rewards of the sender's units for every settled epoch up to `toEpoch`,
    /// plus what earlier claims still owe. Never reverts for lack of funds: what the pool cannot
    /// pay now is recorded in `owed` (event `RewardsOwed`) and paid by a later claim.
    function claim(uint32[] calldata unitIndices, uint64 toEpoch) external whenNotPaused nonReentrant returns (uint256 paid) {
        uint256 due = owed[msg.sender];
        for (uint256 i = 0; i < unitIndices.length; ++i) {
            Unit storage u = _ownedUnit(unitIndices[i]);
            (uint256 amount, uint64 next) = _walk(u, unitIndices[i], toEpoch);
            u.claimedUpTo = next;
            due += amount;
        }
        paid = due > rewardPool ? rewardPool : due;
        rewardPool -= paid;
        owed[msg.sender] = due - paid;
        emit RewardsClaimed(msg.sender, paid, toEpoch);
        if (due > paid) emit RewardsOwed(msg.sender, due - paid);
        _pay(msg.sender, paid);
    }

    /// One shared walk for `claim` and `claimable`: every settled epoch pays if its unit-epoch
    /// was attested, not failed and had enough proofs; unsettled ones pay nothing and never
    /// block the later ones.
    function _walk(Unit storage u, uint32 unit, uint64 toEpoch) internal view returns (uint256 amount, uint64 e) {
        e = u.claimedUpTo;
        uint256 h = quorumHistory.length; // checkpoints in force at settleTime(e), found below
        uint64 last = u.endEpoch == NO_END ? toEpoch : (u.endEpoch - 1 < toEpoch ? u.endEpoch - 1 : toEpoch);
        while (e <= last && block.timestamp >= settleTime(e)) {
            EpochRecord storage r = epochs[e];
            if (r.seed != 0) {
                uint256 verdict = verdicts[_key(unit, e)];
                uint256 count = uint32(verdict);
                KindParams storage p = paramsVersions[r.version][u.kind];
                uint256 t = settleTime(e);
                while (h > 1 && quorumHistory[h - 1].since >= t) --h;
                while (h < quorumHistory.length && quorumHistory[h].since < t) ++h;
                if (_attested(verdict, quorumHistory[h - 1].quorum) && count >= p.minProofs && count > 0) {
                    amount += p.reward;
                }
            }
            ++e;
        }
    }

    function _pay(address to, uint256 amount) internal {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }
}
