// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Capacity: proof-of-capacity commitments, batched proofs, verifier attestations, rewards.
/// @notice Providers register units (CPU or GPU) with collateral. Every epoch, each unit proves it
/// holds its hardware by finding nonces whose hash (RandomX for CPU units, capminer's GPU
/// challenge for GPU units, keyed by the epoch seed and the unit id) is at most the epoch's
/// target for its kind. Providers submit nonces in cheap batches; the EVM does not recompute
/// hashes. Registered verifiers recompute them off chain and attest per (unit, epoch) over the
/// digest of the submitted nonces; a quorum of attestations makes the unit-epoch rewardable, a
/// quorum of reports of one invalid nonce makes it failed and slashes collateral. Rewards are
/// pulled per unit over a range of epochs from a funded pool.
///
/// Storage and gas design:
/// - One word per (unit, epoch): `lastNonce u64 | count u32 << 64 | flags << 96`
///   (HAS_PROOF, ATTESTED, FAILED, and the attestation count in bits 104..119), plus one word for
///   the running digest of the accepted nonces. A batch reads and writes each once per unit.
/// - A unit's hot fields (provider, kind, start and end epoch) share one slot.
/// - An epoch record is two words: its seed and the parameter version in force.
/// - Nonces must strictly increase per (unit, epoch): duplicates and stale nonces are skipped,
///   never counted twice, so resubmitting a batch after a crash, a replacement or a reorg is
///   harmless. Skipping instead of reverting keeps one stale proof from sinking a batch.
contract Capacity {
    // ---------------------------------------------------------------- constants

    uint8 public constant KIND_CPU = 0;
    uint8 public constant KIND_GPU = 1;
    uint8 internal constant KINDS = 2;
    uint256 internal constant BPS = 10_000;
    uint256 internal constant GROUP_HEADER_BYTES = 6; // uint32 unit ‖ uint16 count
    uint256 internal constant NONCE_BYTES = 8;

    uint256 internal constant COUNT_SHIFT = 64;
    uint256 internal constant HAS_PROOF = 1 << 96;
    uint256 internal constant ATTESTED = 1 << 97;
    uint256 internal constant FAILED = 1 << 98;
    uint256 internal constant ATTESTATIONS_SHIFT = 104;
    uint256 internal constant ATTESTATIONS_MASK = 0xffff;
    uint64 internal constant NO_END = type(uint64).max;

    // ---------------------------------------------------------------- types

    /// Parameters of one unit kind.
    struct KindParams {
        bytes32 target; // a proof's hash, read big-endian, must be <= target
        uint32 minProofs; // per unit per epoch, to earn the reward
        uint32 maxProofs; // per unit per epoch, more are skipped
        uint128 reward; // wei per rewardable unit-epoch
        uint128 collateral; // wei per unit at registration
    }

    struct Unit {
        address provider;
        uint8 kind;
        uint64 startEpoch; // first epoch it may prove
        uint64 endEpoch; // first epoch it may no longer prove
        bytes32 id;
        uint128 collateral; // what remains after slashing
        uint128 registeredCollateral; // what was deposited
        uint64 claimedUpTo; // next epoch to claim
    }

    struct EpochRecord {
        bytes32 seed;
        uint64 version; // index into paramsVersions
    }

    // ---------------------------------------------------------------- storage

    address public owner;
    uint256 public immutable genesisTime;
    uint256 public immutable epochDuration;
    uint256 public immutable graceWindow;
    uint256 public immutable slashRateBps;

    KindParams[KINDS][] internal paramsVersions;
    uint64 internal pendingVersion; // 0: none pending (version 0 is the constructor's)
    uint64 internal pendingFrom;
    uint64 internal activeVersion;

    mapping(uint64 => EpochRecord) internal epochs;
    Unit[] internal units;
    mapping(bytes32 => uint256) internal unitIndexPlusOne;

    mapping(uint256 => uint256) internal unitEpochWord;
    mapping(uint256 => bytes32) internal unitEpochDigest;

    mapping(address => bool) public isVerifier;
    uint32 public verifierCount;
    uint32 public quorum;
    mapping(bytes32 => bool) internal attested; // keccak(unit-epoch key, verifier)
    mapping(bytes32 => bool) internal reported; // keccak(unit-epoch key, nonce, verifier)
    mapping(bytes32 => uint256) internal reportCount; // keccak(unit-epoch key, nonce)

    uint256 public rewardPool;
    uint256 internal locked = 1;

    // ---------------------------------------------------------------- events

    event UnitRegistered(uint32 indexed index, bytes32 indexed id, address indexed provider, uint8 kind, uint64 startEpoch);
    event UnitRetired(uint32 indexed index, uint64 endEpoch);
    event CollateralWithdrawn(uint32 indexed index, address indexed provider, uint256 amount);
    event EpochStarted(uint64 indexed epoch, bytes32 seed, uint64 version);
    event KindParamsSet(uint8 indexed kind, uint64 version, uint64 fromEpoch, bytes32 target, uint32 minProofs, uint32 maxProofs, uint128 reward, uint128 collateral);
    event ProofsAccepted(uint64 indexed epoch, uint32 indexed unit, uint32 count, uint64 lastNonce, bytes nonces);
    event VerifierAdded(address indexed verifier);
    event VerifierRemoved(address indexed verifier);
    event QuorumSet(uint32 quorum);
    event Attested(uint32 indexed unit, uint64 indexed epoch, address indexed verifier, bytes32 digest);
    event UnitEpochAttested(uint32 indexed unit, uint64 indexed epoch);
    event InvalidProofReported(uint32 indexed unit, uint64 indexed epoch, uint64 nonce, uint8 reason, address indexed verifier);
    event UnitEpochFailed(uint32 indexed unit, uint64 indexed epoch, uint256 slashed);
    event PoolFunded(address indexed from, uint256 amount);
    event RewardsClaimed(address indexed provider, uint256 amount, uint64 toEpoch);
    event OwnershipTransferred(address indexed from, address indexed to);

    // ---------------------------------------------------------------- errors

    error OnlyOwner();
    error UnknownKind(uint8 kind);
    error DuplicateUnit(bytes32 id);
    error LengthMismatch();
    error WrongCollateral(uint256 expected, uint256 sent);
    error UnknownUnit(uint32 unit);
    error UnknownUnitId(bytes32 id);
    error NotUnitOwner(uint32 unit, address provider);
    error EpochClosed(uint64 epoch, uint64 current);
    error EpochNotSeeded(uint64 epoch);
    error MalformedBatch(uint256 offset);
    error NotVerifier(address account);
    error WindowOpen(uint64 epoch);
    error DigestMismatch(bytes32 expected, bytes32 given);
    error AlreadyAttested(uint32 unit, uint64 epoch, address verifier);
    error AlreadyReported(uint32 unit, uint64 epoch, uint64 nonce, address verifier);
    error NothingSubmitted(uint32 unit, uint64 epoch);
    error BadQuorum(uint32 quorum);
    error BadParams();
    error NotRetired(uint32 unit);
    error CollateralLocked(uint32 unit, uint64 untilEpoch);
    error PoolExhausted(uint256 needed, uint256 available);
    error TransferFailed();
    error Reentrancy();

    // ---------------------------------------------------------------- modifiers

    modifier onlyOwner() {
        if (msg.sender != owner) revert OnlyOwner();
        _;
    }

    modifier nonReentrant() {
        if (locked != 1) revert Reentrancy();
        locked = 2;
        _;
        locked = 1;
    }

    modifier onlyVerifier() {
        if (!isVerifier[msg.sender]) revert NotVerifier(msg.sender);
        _;
    }

    /// @param epochDuration_ seconds per epoch
    /// @param graceWindow_ seconds after an epoch ends during which its proofs are still accepted
    /// @param quorum_ attestations (and reports) needed per unit-epoch
    /// @param slashRateBps_ share of a unit's registered collateral slashed per failed unit-epoch
    /// @param initial parameters of the CPU and GPU kinds, in force from epoch 0
    constructor(uint256 epochDuration_, uint256 graceWindow_, uint32 quorum_, uint256 slashRateBps_, KindParams[KINDS] memory initial) {
        if (epochDuration_ == 0 || graceWindow_ >= epochDuration_ || slashRateBps_ > BPS) revert BadParams();
        if (quorum_ == 0) revert BadQuorum(quorum_);
        owner = msg.sender;
        genesisTime = block.timestamp;
        epochDuration = epochDuration_;
        graceWindow = graceWindow_;
        slashRateBps = slashRateBps_;
        quorum = quorum_;
        paramsVersions.push();
        for (uint8 k = 0; k < KINDS; ++k) {
            _checkParams(initial[k]);
            paramsVersions[0][k] = initial[k];
            emit KindParamsSet(k, 0, 0, initial[k].target, initial[k].minProofs, initial[k].maxProofs, initial[k].reward, initial[k].collateral);
        }
        emit OwnershipTransferred(address(0), msg.sender);
        emit QuorumSet(quorum_);
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

    /// @notice Fixes the current epoch's seed (and parameters) if nobody has yet. Permissionless.
    function advanceEpoch() external returns (bytes32 seed) {
        return _seedOf(currentEpoch());
    }

    /// @notice An epoch's seed (zero until fixed) and the parameters of both kinds in force.
    function epochInfo(uint64 e)
        external
        view
        returns (bytes32 seed, bytes32[2] memory targets, uint32[2] memory minProofs, uint32[2] memory maxProofs, uint128[2] memory rewards)
    {
        EpochRecord storage r = epochs[e];
        seed = r.seed;
        KindParams[KINDS] storage p = paramsVersions[seed == 0 ? _versionFor(e) : r.version];
        for (uint8 k = 0; k < KINDS; ++k) {
            targets[k] = p[k].target;
            minProofs[k] = p[k].minProofs;
            maxProofs[k] = p[k].maxProofs;
            rewards[k] = p[k].reward;
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
        epochs[e] = EpochRecord(seed, version);
        emit EpochStarted(e, seed, version);
    }

    // ---------------------------------------------------------------- parameters

    /// @notice Sets a kind's parameters, in force from the next epoch on.
    function setKindParams(uint8 kind, KindParams calldata p) external onlyOwner {
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
        emit KindParamsSet(kind, pendingVersion, from, p.target, p.minProofs, p.maxProofs, p.reward, p.collateral);
    }

    /// @notice Parameters of a kind that a registration made now pays and the next epochs use.
    function kindParams(uint8 kind) external view returns (KindParams memory) {
        if (kind >= KINDS) revert UnknownKind(kind);
        return paramsVersions[_versionFor(currentEpoch() + 1)][kind];
    }

    function _checkParams(KindParams memory p) internal pure {
        if (p.maxProofs == 0 || p.minProofs > p.maxProofs || p.target == 0) revert BadParams();
    }

    // ---------------------------------------------------------------- units

    /// @notice Registers units owned by the sender, each with the collateral its kind requires.
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
        firstIndex = uint32(units.length);
        uint64 start = currentEpoch() + 1;
        for (uint256 i = 0; i < ids.length; ++i) {
            bytes32 id = ids[i];
            if (unitIndexPlusOne[id] != 0 || id == 0) revert DuplicateUnit(id);
            uint128 c = p[kinds[i]].collateral;
            units.push(Unit(msg.sender, kinds[i], start, NO_END, id, c, c, start));
            uint32 index = uint32(units.length - 1);
            unitIndexPlusOne[id] = uint256(index) + 1;
            emit UnitRegistered(index, id, msg.sender, kinds[i], start);
        }
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

    /// @notice Returns retired units' remaining collateral once their last epochs are settled
    /// past the verification window (two epochs after retirement).
    function withdrawCollateral(uint32[] calldata indices) external nonReentrant {
        uint256 total;
        uint64 cur = currentEpoch();
        for (uint256 i = 0; i < indices.length; ++i) {
            Unit storage u = _ownedUnit(indices[i]);
            if (u.endEpoch == NO_END) revert NotRetired(indices[i]);
            if (cur < u.endEpoch + 2) revert CollateralLocked(indices[i], u.endEpoch + 2);
            uint256 amount = u.collateral;
            u.collateral = 0;
            total += amount;
            emit CollateralWithdrawn(indices[i], msg.sender, amount);
        }
        _pay(msg.sender, total);
    }

    function unitCount() external view returns (uint32) {
        return uint32(units.length);
    }

    function unitInfo(uint32 index) external view returns (Unit memory) {
        if (index >= units.length) revert UnknownUnit(index);
        return units[index];
    }

    function unitIndexOf(bytes32 id) external view returns (uint32) {
        uint256 i = unitIndexPlusOne[id];
        if (i == 0) revert UnknownUnitId(id);
        return uint32(i - 1);
    }

    function _ownedUnit(uint32 index) internal view returns (Unit storage u) {
        if (index >= units.length) revert UnknownUnit(index);
        u = units[index];
        if (u.provider != msg.sender) revert NotUnitOwner(index, u.provider);
    }

    function _key(uint32 unit, uint64 epoch) internal pure returns (uint256) {
        return (uint256(unit) << 64) | epoch;
    }

    // ---------------------------------------------------------------- proofs

    /// @notice Submits nonces for `epoch`. `packed` is a sequence of groups, each
    /// `uint32 unit ‖ uint16 n ‖ n × uint64 nonce`, big-endian. Per (unit, epoch) nonces must
    /// strictly increase; duplicates, stale nonces and nonces beyond the kind's maximum are
    /// skipped. Units the sender does not own revert the call.
    /// @return accepted nonces counted, skipped nonces ignored
    function submitProofs(uint64 epoch, bytes calldata packed) external returns (uint256 accepted, uint256 skipped) {
        uint64 cur = currentEpoch();
        if (epoch != cur && !(epoch + 1 == cur && block.timestamp < epochStart(cur) + graceWindow)) {
            revert EpochClosed(epoch, cur);
        }
        EpochRecord storage record = epochs[epoch];
        if (record.seed == 0) {
            if (epoch != cur) revert EpochNotSeeded(epoch);
            _seedOf(epoch);
        }
        KindParams[KINDS] storage p = paramsVersions[record.version];
        uint32[KINDS] memory maxProofs = [p[0].maxProofs, p[1].maxProofs];

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
    function _submitGroup(uint64 epoch, uint32[KINDS] memory maxProofs, bytes calldata packed, uint256 offset)
        internal
        returns (uint256 next, uint256 took, uint256 left)
    {
        if (offset + GROUP_HEADER_BYTES > packed.length) revert MalformedBatch(offset);
        uint32 unit;
        uint256 n;
        assembly {
            let head := calldataload(add(packed.offset, offset))
            unit := shr(224, head)
            n := and(shr(208, head), 0xffff)
        }
        next = offset + GROUP_HEADER_BYTES + n * NONCE_BYTES;
        if (next > packed.length) revert MalformedBatch(offset);
        if (unit >= units.length) revert UnknownUnit(unit);
        Unit storage u = units[unit];
        if (u.provider != msg.sender) revert NotUnitOwner(unit, u.provider);
        if (epoch < u.startEpoch || epoch >= u.endEpoch) return (next, 0, n);
        took = _acceptGroup(epoch, unit, maxProofs[u.kind], packed, offset + GROUP_HEADER_BYTES, n);
        left = n - took;
    }

    /// Applies one group: one read and one write of the unit-epoch word, one digest update,
    /// one event. `floor` is the smallest nonce still acceptable (last accepted + 1, or 0).
    function _acceptGroup(uint64 epoch, uint32 unit, uint256 maxProofs, bytes calldata packed, uint256 first, uint256 n)
        internal
        returns (uint256 took)
    {
        uint256 key = _key(unit, epoch);
        uint256 word = unitEpochWord[key];
        uint256 count = uint32(word >> COUNT_SHIFT);
        uint256 floor = word & HAS_PROOF != 0 ? uint256(uint64(word)) + 1 : 0;
        bytes memory acc = new bytes(n * NONCE_BYTES + 32); // +32: slack for word-wide stores
        for (uint256 i = 0; i < n; ++i) {
            uint256 nonce;
            assembly {
                nonce := shr(192, calldataload(add(packed.offset, add(first, mul(i, 8)))))
            }
            if (nonce < floor || count >= maxProofs) continue;
            floor = nonce + 1;
            ++count;
            assembly {
                mstore(add(add(acc, 32), mul(took, 8)), shl(192, nonce))
            }
            ++took;
        }
        if (took == 0) return 0;
        assembly {
            mstore(acc, mul(took, 8)) // trim to the accepted nonces
        }
        unitEpochWord[key] = (word & ~uint256(type(uint96).max)) | HAS_PROOF | (count << COUNT_SHIFT) | (floor - 1);
        unitEpochDigest[key] = keccak256(abi.encodePacked(unitEpochDigest[key], acc));
        emit ProofsAccepted(epoch, unit, uint32(count), uint64(floor - 1), acc);
    }

    /// @notice The state of a unit in an epoch.
    function unitEpoch(uint32 unit, uint64 epoch)
        external
        view
        returns (uint32 count, uint64 lastNonce, bytes32 digest, uint32 attestations, bool isAttested, bool failed)
    {
        uint256 key = _key(unit, epoch);
        uint256 word = unitEpochWord[key];
        return (
            uint32(word >> COUNT_SHIFT),
            uint64(word),
            unitEpochDigest[key],
            uint32((word >> ATTESTATIONS_SHIFT) & ATTESTATIONS_MASK),
            word & ATTESTED != 0,
            word & FAILED != 0
        );
    }

    // ---------------------------------------------------------------- verification

    function addVerifier(address v) external onlyOwner {
        if (!isVerifier[v]) {
            isVerifier[v] = true;
            ++verifierCount;
            emit VerifierAdded(v);
        }
    }

    function removeVerifier(address v) external onlyOwner {
        if (isVerifier[v]) {
            isVerifier[v] = false;
            --verifierCount;
            emit VerifierRemoved(v);
        }
    }

    /// @notice Attestations (and reports) needed per unit-epoch. It may exceed the number of
    /// verifiers; then nothing becomes rewardable until enough are added.
    function setQuorum(uint32 q) external onlyOwner {
        if (q == 0) revert BadQuorum(q);
        quorum = q;
        emit QuorumSet(q);
    }

    /// @notice True once proofs for `epoch` can no longer be submitted.
    function windowClosed(uint64 epoch) public view returns (bool) {
        return block.timestamp >= epochStart(epoch + 1) + graceWindow;
    }

    function hasAttested(uint32 unit, uint64 epoch, address v) external view returns (bool) {
        return attested[keccak256(abi.encode(_key(unit, epoch), v))];
    }

    /// @notice A verifier confirms that it recomputed the unit's nonces of the epoch (all, or a
    /// sample drawn after submission) and found them valid. `digest` must be the chained digest
    /// of the accepted nonces, so the attestation covers exactly what was submitted.
    function attest(uint32 unit, uint64 epoch, bytes32 digest) external onlyVerifier {
        if (!windowClosed(epoch)) revert WindowOpen(epoch);
        uint256 key = _key(unit, epoch);
        bytes32 expected = unitEpochDigest[key];
        if (expected == 0) revert NothingSubmitted(unit, epoch);
        if (digest != expected) revert DigestMismatch(expected, digest);
        bytes32 mark = keccak256(abi.encode(key, msg.sender));
        if (attested[mark]) revert AlreadyAttested(unit, epoch, msg.sender);
        attested[mark] = true;
        uint256 word = unitEpochWord[key];
        uint256 n = ((word >> ATTESTATIONS_SHIFT) & ATTESTATIONS_MASK) + 1;
        word = (word & ~(ATTESTATIONS_MASK << ATTESTATIONS_SHIFT)) | (n << ATTESTATIONS_SHIFT);
        emit Attested(unit, epoch, msg.sender, digest);
        if (n >= quorum && word & ATTESTED == 0) {
            word |= ATTESTED;
            emit UnitEpochAttested(unit, epoch);
        }
        unitEpochWord[key] = word;
    }

    /// @notice A verifier reports that `nonce`, submitted for the unit in the epoch, is invalid
    /// (`reason`: 1 hash above target, 2 other). At quorum the unit-epoch fails: no reward, and
    /// `slashRateBps` of the unit's registered collateral goes to the reward pool.
    function reportInvalid(uint32 unit, uint64 epoch, uint64 nonce, uint8 reason) external onlyVerifier {
        if (!windowClosed(epoch)) revert WindowOpen(epoch);
        if (unit >= units.length) revert UnknownUnit(unit);
        uint256 key = _key(unit, epoch);
        if (unitEpochWord[key] & HAS_PROOF == 0) revert NothingSubmitted(unit, epoch);
        bytes32 mark = keccak256(abi.encode(key, nonce, msg.sender));
        if (reported[mark]) revert AlreadyReported(unit, epoch, nonce, msg.sender);
        reported[mark] = true;
        bytes32 proof = keccak256(abi.encode(key, nonce));
        uint256 n = ++reportCount[proof];
        emit InvalidProofReported(unit, epoch, nonce, reason, msg.sender);
        uint256 word = unitEpochWord[key];
        if (n >= quorum && word & FAILED == 0) {
            unitEpochWord[key] = word | FAILED;
            Unit storage u = units[unit];
            uint256 slash = (uint256(u.registeredCollateral) * slashRateBps) / BPS;
            if (slash > u.collateral) slash = u.collateral;
            u.collateral -= uint128(slash);
            rewardPool += slash;
            emit UnitEpochFailed(unit, epoch, slash);
        }
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

    /// @notice What claiming `unit` up to `toEpoch` would pay now, and the epoch it would stop
    /// before.
    function claimable(uint32 unit, uint64 toEpoch) external view returns (uint256 amount, uint64 nextEpoch) {
        if (unit >= units.length) revert UnknownUnit(unit);
        return _walk(units[unit], unit, toEpoch);
    }

    /// @notice Claims the rewards of the sender's units for every settled epoch up to `toEpoch`.
    /// An epoch with enough proofs that is neither attested nor failed yet is not settled: the
    /// walk stops there, so a lagging verifier never costs a reward.
    function claim(uint32[] calldata unitIndices, uint64 toEpoch) external nonReentrant returns (uint256 paid) {
        for (uint256 i = 0; i < unitIndices.length; ++i) {
            Unit storage u = _ownedUnit(unitIndices[i]);
            (uint256 amount, uint64 next) = _walk(u, unitIndices[i], toEpoch);
            u.claimedUpTo = next;
            paid += amount;
        }
        if (paid > rewardPool) revert PoolExhausted(paid, rewardPool);
        rewardPool -= paid;
        emit RewardsClaimed(msg.sender, paid, toEpoch);
        _pay(msg.sender, paid);
    }

    /// One shared walk for `claim` and `claimable`.
    function _walk(Unit storage u, uint32 unit, uint64 toEpoch) internal view returns (uint256 amount, uint64 e) {
        e = u.claimedUpTo;
        uint64 last = u.endEpoch == NO_END ? toEpoch : (u.endEpoch - 1 < toEpoch ? u.endEpoch - 1 : toEpoch);
        while (e <= last && windowClosed(e)) {
            EpochRecord storage r = epochs[e];
            if (r.seed != 0) {
                uint256 word = unitEpochWord[_key(unit, e)];
                uint256 count = uint32(word >> COUNT_SHIFT);
                KindParams storage p = paramsVersions[r.version][u.kind];
                if (count >= p.minProofs && count > 0 && word & FAILED == 0) {
                    if (word & ATTESTED == 0) break; // not settled: verifiers have not attested yet
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

    // ---------------------------------------------------------------- ownership

    function transferOwnership(address to) external onlyOwner {
        emit OwnershipTransferred(owner, to);
        owner = to;
    }
}
