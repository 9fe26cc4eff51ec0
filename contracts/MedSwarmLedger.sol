// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title MedSwarmLedger: who contributed what to a swarm-learning task, and the reward split.
/// @notice An admin (the consortium) registers member nodes and creates training tasks. Sponsors
/// fund a task's pool. In every round each member commits the keccak256 digest of its model
/// update, then scores the peers that committed (0..10000) and attests the digest of the merged
/// model it holds after the round. Finalizing a round credits each committer the median of the
/// scores it received. When the admin closes the task, each member withdraws
/// pool * contribution / total contribution (pull payment).
/// @dev Security assumptions and rules:
/// - The admin is trusted to register real institutions; members are not trusted. A minority of
///   lying scorers cannot move a median outside the honest scorers' range.
/// - At most MAX_MEMBERS (64) distinct member addresses per deployment; a member keeps its slot
///   index for life (removal deactivates it, re-registration reactivates it). Every loop is
///   bounded by 64; withdraw, claimDust and refund contain no loop at all.
/// - Round deadline = timestamp of the round's first commit + the task's round duration. A
///   round r > 1 opens (takes its first commit) only once round r - 1 has `quorum` committers.
///   Commits are accepted while block.timestamp < deadline; finalize needs every committer to
///   have scored (and at least `quorum` committers), or block.timestamp >= deadline + round
///   duration (scores ride on the next round's commits). A round finalized with fewer than
///   `quorum` committers credits nobody.
/// - A digest already committed by another member in the same task round is rejected
///   (DuplicateDigest), so a copied update earns nothing.
/// - Model attestations ride on the score sheet, so each committer attests at most one merged
///   model per round; modelAttestations counts them. A node that catches up adopts a model only
///   if a majority of the round's committers attested it: a minority of lying members cannot
///   make a model of their own look agreed upon.
/// - Median of the scores a committer received: odd count -> the middle value; even count ->
///   floor of the mean of the two middle values; nobody scored it -> 0.
/// - Dust rule: at close, payout_i = floor(pool * c_i / total); dust = pool - sum(payout_i)
///   (fewer wei than earning members) is claimable by the admin with claimDust. So
///   payouts + dust == pool exactly.
/// - Nobody-earned rule: if total contribution is 0 at close, every sponsor reclaims exactly
///   what it funded with refund.
/// - Pull payments, checks-effects-interactions and a (transient) reentrancy guard on every
///   function that sends ETH. Every state change emits one event carrying enough data to
///   rebuild the history from logs alone (member slot indices map to addresses through
///   MemberRegistered).
contract MedSwarmLedger {
    /// @notice Maximum number of distinct member addresses (bounds every loop).
    uint256 public constant MAX_MEMBERS = 64;
    /// @notice Highest score a member may give.
    uint16 public constant MAX_SCORE = 10000;

    // Round word: one storage slot per task round, so a commit or a score sheet touches one slot
    // for all of the round's bookkeeping. Its fields are named by the private helpers at the end.
    //   bits   0..63   committed mask (bit j: slot j committed)
    //   bits  64..127  scored mask (bit j: slot j submitted scores)
    //   bits 128..191  bloom filter of the committed digests (bit digest % 64)
    //   bits 192..231  timestamp of the first commit (uint40)
    //   bit  232       finalized
    uint256 private constant _MASK64 = 0xFFFFFFFFFFFFFFFF;
    uint256 private constant _MASK40 = 0xFFFFFFFFFF;
    uint256 private constant _SCORED_SHIFT = 64;
    uint256 private constant _BLOOM_SHIFT = 128;
    uint256 private constant _START_SHIFT = 192;
    uint256 private constant _FINAL_BIT = 1 << 232;
    // Score sheets: 16 lanes of 16 bits per word, lane p % 16 of word p / 16 for slot p.
    uint256 private constant _LANE_MASK = 0xFFFF;

    struct MemberInfo {
        uint8 index;
        bool registered;
        bool active;
        string peerId;
        string name;
    }

    struct Task {
        // slot 0
        uint128 pool;
        uint64 totalContribution;
        uint32 roundDuration;
        uint16 quorum; // > 0 for every existing task
        bool closed;
        // slot 1
        uint128 dust;
        uint128 paid; // sum withdrawn by members
        // slot 2
        uint64 withdrawnMask;
        bool dustClaimed;
        // 16 slots, four contributions per slot
        uint64[64] contributions;
        string modelId;
    }

    /// @notice The consortium account that manages members and tasks.
    address public immutable admin;
    /// @notice Number of tasks created; task ids run from 1 to taskCount.
    uint256 public taskCount;
    /// @notice Number of member slots in use (registered at least once).
    uint8 public memberCount;

    mapping(address => MemberInfo) private _members;
    address[64] private _memberAt;
    mapping(uint256 => Task) private _tasks;
    mapping(uint256 => mapping(uint256 => uint256)) private _rounds;
    mapping(uint256 => mapping(uint256 => bytes32[64])) private _digests;
    // task => round => scorer slot => 4 words of 16 packed uint16 (score + 1; 0 = not scored)
    mapping(uint256 => mapping(uint256 => uint256[4][64])) private _scoreRows;
    // task => round => merged-model digest => number of committers that attested it
    mapping(uint256 => mapping(uint256 => mapping(bytes32 => uint256))) private _attestations;
    mapping(uint256 => mapping(address => uint256)) private _funded;
    bool private transient _locked;

    // ---------------------------------------------------------------- events
    /// @notice A member was registered (or re-registered) in slot `index`.
    event MemberRegistered(address indexed member, uint8 index, string peerId, string name);
    /// @notice A member was deactivated; it can no longer commit or score.
    event MemberRemoved(address indexed member, uint8 index);
    /// @notice A task was created.
    event TaskCreated(uint256 indexed taskId, uint16 quorum, uint32 roundDuration, string modelId);
    /// @notice `sponsor` added `amount` wei to the pool, which is now `pool`.
    event Funded(uint256 indexed taskId, address indexed sponsor, uint256 amount, uint256 pool);
    /// @notice `member` committed `digest` for `round`; `index` is its slot.
    event Committed(uint256 indexed taskId, uint32 indexed round, address indexed member, uint8 index, bytes32 digest);
    /// @notice `scorer` scored peers: lane p (16 bits, word p / 16) of `rows` = score + 1 for slot p, 0 = none.
    /// @param model the merged-model digest `scorer` attested for `round` (zero: no attestation)
    event ScoresSubmitted(
        uint256 indexed taskId, uint32 indexed round, address indexed scorer, bytes32 model, uint256[] rows
    );
    /// @notice A round was finalized: `committers[i]` was credited `credits[i]`.
    /// @param counted false when the round had fewer committers than the quorum (nobody credited)
    event RoundFinalized(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed caller,
        address[] committers,
        uint256[] credits,
        bool counted
    );
    /// @notice The task closed; payouts are now fixed. `dust` goes to the admin via claimDust.
    event TaskClosed(uint256 indexed taskId, uint256 pool, uint256 totalContribution, uint256 dust);
    /// @notice `member` withdrew its payout.
    event Withdrawn(uint256 indexed taskId, address indexed member, uint256 amount);
    /// @notice The admin claimed the rounding dust.
    event DustClaimed(uint256 indexed taskId, address indexed to, uint256 amount);
    /// @notice A sponsor got its funding back (task closed with nobody earning anything).
    event Refunded(uint256 indexed taskId, address indexed sponsor, uint256 amount);

    // ---------------------------------------------------------------- errors
    /// @notice An admin-only function was called by another account.
    /// @param caller the account that called
    error NotAdmin(address caller);
    /// @notice The caller is not an active member (never registered, or removed).
    /// @param caller the account that called
    error NotMember(address caller);
    /// @notice registerMember was called for a member that is already active.
    /// @param member the member's address
    error AlreadyMember(address member);
    /// @notice removeMember was called for an address that is not an active member.
    /// @param member the address
    error UnknownMember(address member);
    /// @notice All MAX_MEMBERS slots are taken; a new address cannot be registered.
    error TooManyMembers();
    /// @notice registerMember was called with the zero address.
    error ZeroAddress();
    /// @notice registerMember was called with an empty libp2p peer id.
    error EmptyPeerId();
    /// @notice createTask was called with a quorum of 0 or above MAX_MEMBERS.
    /// @param quorum the quorum given
    error InvalidQuorum(uint256 quorum);
    /// @notice createTask was called with a round duration of 0.
    /// @param duration the duration given (seconds)
    error InvalidRoundDuration(uint256 duration);
    /// @notice No task has this id.
    /// @param taskId the id given
    error UnknownTask(uint256 taskId);
    /// @notice The task is closed: no more commits, scores, funding, finalizing or closing.
    /// @param taskId the task
    error TaskAlreadyClosed(uint256 taskId);
    /// @notice Payouts, dust and refunds need a closed task.
    /// @param taskId the task
    error TaskNotClosed(uint256 taskId);
    /// @notice Rounds are numbered from 1.
    /// @param round the round given
    error InvalidRound(uint256 round);
    /// @notice A commit to a round whose previous round has fewer than `quorum` committers: no
    /// member may open (and start the clock of) rounds the swarm has not reached.
    /// @param round the round given
    error RoundNotOpen(uint256 round);
    /// @notice A commit must carry a non-zero digest.
    error ZeroDigest();
    /// @notice fund was called without ETH.
    error ZeroAmount();
    /// @notice The member already committed in this round.
    /// @param member the member
    /// @param round the round
    error AlreadyCommitted(address member, uint256 round);
    /// @notice Another member already committed this digest in the same round (a copied update).
    /// @param digest the digest
    /// @param committedBy the member that committed it first
    error DuplicateDigest(bytes32 digest, address committedBy);
    /// @notice The round's deadline has passed: no more commits.
    /// @param deadline the round's deadline (unix seconds)
    error RoundExpired(uint256 deadline);
    /// @notice The round is finalized: no more commits, scores or finalizing.
    /// @param taskId the task
    /// @param round the round
    error AlreadyFinalized(uint256 taskId, uint256 round);
    /// @notice Only a member that committed in a round may score in it.
    /// @param member the scorer
    error NotCommitted(address member);
    /// @notice A score was given to a slot that did not commit in the round.
    /// @param peer the slot index scored
    error PeerNotCommitted(uint256 peer);
    /// @notice A member tried to score itself.
    /// @param member the member
    error SelfScore(address member);
    /// @notice The member already submitted scores (and its model attestation) for this round.
    /// @param member the member
    error AlreadyScored(address member);
    /// @notice More than 4 score words (64 slots) were sent.
    /// @param rows the number of words sent
    error TooManyRows(uint256 rows);
    /// @notice A score above MAX_SCORE.
    /// @param score the score given
    error ScoreOutOfRange(uint256 score);
    /// @notice finalize was called for a round nobody committed in.
    /// @param taskId the task
    /// @param round the round
    error RoundNotStarted(uint256 taskId, uint256 round);
    /// @notice finalize was called before every committer scored (or below quorum) and before the
    /// scoring window closed (the round's deadline plus one round duration).
    /// @param scoringEnd when the round's scoring window closes (unix seconds)
    error FinalizeTooEarly(uint256 scoringEnd);
    /// @notice The caller has no payout in this task (no contribution, or it rounds to 0 wei).
    /// @param member the caller
    error NothingOwed(address member);
    /// @notice The member already withdrew its payout from this task.
    /// @param member the member
    error AlreadyWithdrawn(address member);
    /// @notice The task has no dust, or the admin already claimed it.
    /// @param taskId the task
    error NoDust(uint256 taskId);
    /// @notice refund needs a task closed with zero total contribution and funding from the caller.
    /// @param sponsor the caller
    error NothingToRefund(address sponsor);
    /// @notice Sending ETH failed (the receiver reverted); the amount stays claimable.
    /// @param to the receiver
    /// @param amount wei
    error TransferFailed(address to, uint256 amount);
    /// @notice A function that sends ETH was re-entered.
    error Reentrancy();

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        _;
    }

    modifier nonReentrant() {
        if (_locked) revert Reentrancy();
        _locked = true;
        _;
        _locked = false;
    }

    constructor() {
        admin = msg.sender;
    }

    // ---------------------------------------------------------------- admin
    /// @notice Register a member node, or reactivate (and update) a removed one.
    /// @param member the node's Ethereum address (signs its commits and scores)
    /// @param peerId the node's libp2p peer id (base58)
    /// @param name a human-readable institution name
    function registerMember(address member, string calldata peerId, string calldata name) external onlyAdmin {
        if (member == address(0)) revert ZeroAddress();
        if (bytes(peerId).length == 0) revert EmptyPeerId();
        MemberInfo storage m = _members[member];
        if (m.active) revert AlreadyMember(member);
        uint8 index;
        if (m.registered) {
            index = m.index;
        } else {
            uint8 count = memberCount;
            if (count >= MAX_MEMBERS) revert TooManyMembers();
            index = count;
            memberCount = count + 1;
            _memberAt[index] = member;
            m.index = index;
            m.registered = true;
        }
        m.active = true;
        m.peerId = peerId;
        m.name = name;
        emit MemberRegistered(member, index, peerId, name);
    }

    /// @notice Deactivate a member: it can no longer commit or score; what it earned stays claimable.
    /// @param member the member's address
    function removeMember(address member) external onlyAdmin {
        MemberInfo storage m = _members[member];
        if (!m.active) revert UnknownMember(member);
        m.active = false;
        emit MemberRemoved(member, m.index);
    }

    /// @notice Create a training task.
    /// @param quorum minimum number of committers for a round to earn credits (>= 1, <= 64)
    /// @param modelId identifier of the model and data set being trained
    /// @param roundDuration seconds from a round's first commit to its deadline (> 0)
    /// @return taskId the new task's id (ids start at 1)
    function createTask(uint16 quorum, string calldata modelId, uint32 roundDuration)
        external
        onlyAdmin
        returns (uint256 taskId)
    {
        if (quorum == 0 || quorum > MAX_MEMBERS) revert InvalidQuorum(quorum);
        if (roundDuration == 0) revert InvalidRoundDuration(roundDuration);
        taskId = ++taskCount;
        Task storage t = _tasks[taskId];
        t.quorum = quorum;
        t.roundDuration = roundDuration;
        t.modelId = modelId;
        emit TaskCreated(taskId, quorum, roundDuration, modelId);
    }

    /// @notice Close a task: no more rounds, funding or finalizing; payouts and dust become fixed.
    /// @dev Loops over at most 64 member slots to compute the dust exactly.
    /// @param taskId the task
    function closeTask(uint256 taskId) external onlyAdmin {
        Task storage t = _openTask(taskId);
        t.closed = true;
        uint256 pool = t.pool;
        uint256 total = t.totalContribution;
        uint256 dust;
        if (total != 0) {
            uint256 sum;
            uint256 count = memberCount;
            for (uint256 j; j < count; ++j) {
                sum += _payout(pool, t.contributions[j], total);
            }
            dust = pool - sum;
            t.dust = uint128(dust);
        }
        emit TaskClosed(taskId, pool, total, dust);
    }

    /// @notice Send the task's rounding dust to the admin (pull; once).
    /// @param taskId a closed task with dust > 0
    /// @return amount wei sent
    function claimDust(uint256 taskId) external onlyAdmin nonReentrant returns (uint256 amount) {
        Task storage t = _closedTask(taskId);
        amount = t.dust;
        if (amount == 0 || t.dustClaimed) revert NoDust(taskId);
        t.dustClaimed = true;
        emit DustClaimed(taskId, msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ---------------------------------------------------------------- anyone
    /// @notice Add the sent ETH to a task's reward pool (any account; until the task closes).
    /// @param taskId an open task
    function fund(uint256 taskId) external payable {
        if (msg.value == 0) revert ZeroAmount();
        Task storage t = _openTask(taskId);
        uint256 pool = t.pool + msg.value;
        t.pool = uint128(pool);
        _funded[taskId][msg.sender] += msg.value;
        emit Funded(taskId, msg.sender, msg.value, pool);
    }

    /// @notice Finalize a round: credit each committer the median of the scores it received.
    /// @dev Allowed once every committer scored (with at least `quorum` committers) or once
    /// block.timestamp >= deadline + roundDuration: scores for a round ride on the next round's
    /// commits, so a round that ran to its deadline gets one more round's time for them, and
    /// nobody can finalize early to cut the honest scorers out. Loops are bounded by 64 x 64.
    /// @param taskId an open task
    /// @param round a round with at least one commit
    function finalize(uint256 taskId, uint32 round) external {
        Task storage t = _openTask(taskId);
        uint256 w = _rounds[taskId][round];
        uint256 committed = _roundCommitted(w);
        if (committed == 0) revert RoundNotStarted(taskId, round);
        if (_roundFinalized(w)) revert AlreadyFinalized(taskId, round);
        uint256 scored = _roundScored(w);
        uint256 n = _popcount(committed);
        uint256 scoringEnd = _roundStart(w) + 2 * uint256(t.roundDuration);
        bool counted = n >= t.quorum;
        if (!(counted && scored == committed) && block.timestamp < scoringEnd) revert FinalizeTooEarly(scoringEnd);
        _rounds[taskId][round] = _withFinalized(w);

        address[] memory who = new address[](n);
        uint256[] memory credits = new uint256[](n);
        if (counted) {
            _credit(t, taskId, round, committed, scored, who, credits);
        } else {
            uint256 k;
            for (uint256 j; committed >> j != 0; ++j) {
                if ((committed >> j) & 1 != 0) who[k++] = _memberAt[j];
            }
        }
        emit RoundFinalized(taskId, round, msg.sender, who, credits, counted);
    }

    // ---------------------------------------------------------------- members
    /// @notice Commit the keccak256 digest of this member's update for `round` (once per round).
    /// @param taskId an open task
    /// @param round round number, from 1
    /// @param digest keccak256 of the update's exact encoded bytes; unique within the round
    function commit(uint256 taskId, uint32 round, bytes32 digest) external {
        uint256 idx = _activeIndex(msg.sender);
        _commit(_openTask(taskId), taskId, round, digest, idx);
    }

    /// @notice Score peers that committed this round and attest the merged model held after it
    /// (once per round; a subset of peers, or none, is allowed).
    /// @dev Scores are packed to keep calldata, storage and the event small: lane p (16 bits)
    /// of the whole array (word p / 16, bits 16 * (p % 16)) holds score + 1 for the member in
    /// slot p, 0 meaning "not scored". At most 4 words (64 slots).
    /// @param taskId an open task
    /// @param round a round this member committed to and that is not finalized
    /// @param model keccak256 of the merged model this member holds after `round` (zero: none)
    /// @param rows packed scores (score + 1 per lane) for committed peers, never the caller
    function submitScores(uint256 taskId, uint32 round, bytes32 model, uint256[] calldata rows) external {
        uint256 idx = _activeIndex(msg.sender);
        _openTask(taskId);
        _score(taskId, round, model, rows, idx);
    }

    /// @notice One transaction per node per round: commit to `round` and score `scoreRound`
    /// (normally round - 1). Same checks and events as commit followed by submitScores.
    /// @param taskId an open task
    /// @param round round to commit to
    /// @param digest keccak256 of this member's update for `round`
    /// @param scoreRound an earlier round this member committed to and has not scored yet
    /// @param model the merged model held after `scoreRound`, as in submitScores
    /// @param rows packed scores for `scoreRound`, as in submitScores
    function commitAndScore(
        uint256 taskId,
        uint32 round,
        bytes32 digest,
        uint32 scoreRound,
        bytes32 model,
        uint256[] calldata rows
    ) external {
        uint256 idx = _activeIndex(msg.sender);
        _commit(_openTask(taskId), taskId, round, digest, idx);
        _score(taskId, scoreRound, model, rows, idx);
    }

    /// @notice Withdraw this member's payout, pool * contribution / total (closed task, once).
    /// @param taskId a closed task
    /// @return amount wei sent to the caller
    function withdraw(uint256 taskId) external nonReentrant returns (uint256 amount) {
        Task storage t = _closedTask(taskId);
        MemberInfo storage m = _members[msg.sender];
        if (!m.registered) revert NothingOwed(msg.sender);
        uint256 idx = m.index;
        uint256 c = t.contributions[idx];
        if (c == 0) revert NothingOwed(msg.sender);
        uint64 bit = uint64(1 << idx);
        if (t.withdrawnMask & bit != 0) revert AlreadyWithdrawn(msg.sender);
        amount = _payout(t.pool, c, t.totalContribution);
        if (amount == 0) revert NothingOwed(msg.sender);
        t.withdrawnMask |= bit;
        t.paid += uint128(amount);
        emit Withdrawn(taskId, msg.sender, amount);
        _send(msg.sender, amount);
    }

    /// @notice Get back what the caller funded, when the task closed with zero total contribution.
    /// @param taskId a closed task nobody earned anything in
    /// @return amount wei sent to the caller
    function refund(uint256 taskId) external nonReentrant returns (uint256 amount) {
        Task storage t = _closedTask(taskId);
        if (t.totalContribution != 0) revert NothingToRefund(msg.sender);
        amount = _funded[taskId][msg.sender];
        if (amount == 0) revert NothingToRefund(msg.sender);
        _funded[taskId][msg.sender] = 0;
        emit Refunded(taskId, msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ---------------------------------------------------------------- views
    /// @notice A member's record.
    /// @param member the address
    /// @return index slot index (valid only if registered)
    /// @return registered ever registered
    /// @return active may commit and score
    /// @return peerId libp2p peer id
    /// @return name institution name
    function memberInfo(address member)
        external
        view
        returns (uint8 index, bool registered, bool active, string memory peerId, string memory name)
    {
        MemberInfo storage m = _members[member];
        return (m.index, m.registered, m.active, m.peerId, m.name);
    }

    /// @notice All member slots in index order.
    /// @return addrs addresses
    /// @return peerIds libp2p peer ids
    /// @return names institution names
    /// @return active whether each may commit and score
    function allMembers()
        external
        view
        returns (address[] memory addrs, string[] memory peerIds, string[] memory names, bool[] memory active)
    {
        uint256 count = memberCount;
        addrs = new address[](count);
        peerIds = new string[](count);
        names = new string[](count);
        active = new bool[](count);
        for (uint256 j; j < count; ++j) {
            MemberInfo storage m = _members[_memberAt[j]];
            addrs[j] = _memberAt[j];
            peerIds[j] = m.peerId;
            names[j] = m.name;
            active[j] = m.active;
        }
    }

    /// @notice The address in member slot `index` (zero if unused).
    /// @param index slot index
    /// @return member the address
    function memberAt(uint8 index) external view returns (address member) {
        if (index < MAX_MEMBERS) member = _memberAt[index];
    }

    /// @notice A task's parameters and accounts.
    /// @param taskId the task
    /// @return quorum minimum committers for a round to count
    /// @return roundDuration seconds from first commit to deadline
    /// @return pool wei funded
    /// @return totalContribution sum of credits
    /// @return closed whether the task is closed
    /// @return dust rounding dust (fixed at close)
    /// @return paid wei withdrawn by members
    /// @return dustClaimed whether the admin claimed the dust
    /// @return modelId model / data-set identifier
    function taskInfo(uint256 taskId)
        external
        view
        returns (
            uint16 quorum,
            uint32 roundDuration,
            uint256 pool,
            uint256 totalContribution,
            bool closed,
            uint256 dust,
            uint256 paid,
            bool dustClaimed,
            string memory modelId
        )
    {
        Task storage t = _tasks[taskId];
        if (t.quorum == 0) revert UnknownTask(taskId);
        return (t.quorum, t.roundDuration, t.pool, t.totalContribution, t.closed, t.dust, t.paid, t.dustClaimed, t.modelId);
    }

    /// @notice A round's state.
    /// @param taskId the task
    /// @param round the round
    /// @return committedMask bit j set: slot j committed
    /// @return scoredMask bit j set: slot j submitted scores
    /// @return start timestamp of the first commit (0: no commit yet)
    /// @return deadline start + roundDuration (0: no commit yet)
    /// @return finalized whether the round is finalized
    function roundInfo(uint256 taskId, uint32 round)
        external
        view
        returns (uint64 committedMask, uint64 scoredMask, uint40 start, uint40 deadline, bool finalized)
    {
        uint256 w = _rounds[taskId][round];
        committedMask = uint64(_roundCommitted(w));
        scoredMask = uint64(_roundScored(w));
        start = uint40(_roundStart(w));
        if (start != 0) deadline = start + _tasks[taskId].roundDuration;
        finalized = _roundFinalized(w);
    }

    /// @notice The digest `member` committed in a round (zero if none).
    /// @param taskId the task
    /// @param round the round
    /// @param member the member
    /// @return digest the committed digest
    function commitment(uint256 taskId, uint32 round, address member) external view returns (bytes32 digest) {
        MemberInfo storage m = _members[member];
        if (!m.registered) return bytes32(0);
        if ((_roundCommitted(_rounds[taskId][round]) >> m.index) & 1 == 0) return bytes32(0);
        return _digests[taskId][round][m.index];
    }

    /// @notice The score `scorer` gave `peer` in a round.
    /// @param taskId the task
    /// @param round the round
    /// @param scorer scorer slot index
    /// @param peer peer slot index
    /// @return given whether a score was given
    /// @return score the score (0..10000)
    function scoreOf(uint256 taskId, uint32 round, uint8 scorer, uint8 peer)
        external
        view
        returns (bool given, uint16 score)
    {
        if (scorer >= MAX_MEMBERS || peer >= MAX_MEMBERS) return (false, 0);
        uint256 v = _lane(_scoreRows[taskId][round][scorer][peer >> 4], peer);
        if (v == 0) return (false, 0);
        return (true, uint16(v - 1));
    }

    /// @notice How many of a round's committers attested `model` as the merged model after the round.
    /// @dev Meant for nodes that catch up or disagree: adopt a model only when this exceeds half
    /// of the round's committers.
    /// @param taskId the task
    /// @param round the round
    /// @param model keccak256 of the merged model
    /// @return count the number of attestations (each member counts at most once per round)
    function modelAttestations(uint256 taskId, uint32 round, bytes32 model) external view returns (uint256 count) {
        return _attestations[taskId][round][model];
    }

    /// @notice A member's accumulated contribution (sum of its round credits) in a task.
    /// @param taskId the task
    /// @param member the member
    /// @return amount the contribution
    function contribution(uint256 taskId, address member) external view returns (uint256 amount) {
        MemberInfo storage m = _members[member];
        if (m.registered) amount = _tasks[taskId].contributions[m.index];
    }

    /// @notice What `member` can withdraw now (0 before close or after withdrawing).
    /// @param taskId the task
    /// @param member the member
    /// @return amount wei
    function owed(uint256 taskId, address member) external view returns (uint256 amount) {
        Task storage t = _tasks[taskId];
        MemberInfo storage m = _members[member];
        if (!t.closed || !m.registered || t.totalContribution == 0) return 0;
        if ((t.withdrawnMask >> m.index) & 1 != 0) return 0;
        amount = _payout(t.pool, t.contributions[m.index], t.totalContribution);
    }

    /// @notice Whether `member` already withdrew from a task.
    /// @param taskId the task
    /// @param member the member
    /// @return done true once withdrawn
    function withdrawn(uint256 taskId, address member) external view returns (bool done) {
        MemberInfo storage m = _members[member];
        done = m.registered && (_tasks[taskId].withdrawnMask >> m.index) & 1 != 0;
    }

    /// @notice Wei `sponsor` funded a task with (and can still reclaim via refund, if applicable).
    /// @param taskId the task
    /// @param sponsor the sponsor
    /// @return amount wei
    function funded(uint256 taskId, address sponsor) external view returns (uint256 amount) {
        return _funded[taskId][sponsor];
    }

    // ---------------------------------------------------------------- internals
    function _commit(Task storage t, uint256 taskId, uint32 round, bytes32 digest, uint256 idx) private {
        if (round == 0) revert InvalidRound(round);
        if (digest == bytes32(0)) revert ZeroDigest();
        uint256 w = _rounds[taskId][round];
        if (_roundFinalized(w)) revert AlreadyFinalized(taskId, round);
        uint256 bit = 1 << idx;
        if (w & bit != 0) revert AlreadyCommitted(msg.sender, round);
        uint256 start = _roundStart(w);
        if (start == 0) {
            // Opening round r needs a quorum in round r - 1, so one member cannot start the
            // clocks of future rounds and have the others' commits expire before they get there.
            if (round > 1 && _popcount(_roundCommitted(_rounds[taskId][round - 1])) < t.quorum) {
                revert RoundNotOpen(round);
            }
            w = _withStart(w, block.timestamp);
        } else if (block.timestamp >= start + t.roundDuration) {
            revert RoundExpired(start + t.roundDuration);
        }
        uint256 bloomBit = _bloomBit(digest);
        bytes32[64] storage digests = _digests[taskId][round];
        if (w & bloomBit != 0) {
            // Possible duplicate: check the committed digests exactly (at most 63 reads).
            uint256 committed = _roundCommitted(w);
            for (uint256 j; committed >> j != 0; ++j) {
                if ((committed >> j) & 1 != 0 && digests[j] == digest) {
                    revert DuplicateDigest(digest, _memberAt[j]);
                }
            }
        }
        _rounds[taskId][round] = w | bit | bloomBit;
        digests[idx] = digest;
        emit Committed(taskId, round, msg.sender, uint8(idx), digest);
    }

    function _score(uint256 taskId, uint32 round, bytes32 model, uint256[] calldata rows, uint256 idx) private {
        if (rows.length > 4) revert TooManyRows(rows.length);
        uint256 w = _rounds[taskId][round];
        if (_roundFinalized(w)) revert AlreadyFinalized(taskId, round);
        uint256 committed = _roundCommitted(w);
        if ((committed >> idx) & 1 == 0) revert NotCommitted(msg.sender);
        uint256 scoredBit = _scoredBit(idx);
        if (w & scoredBit != 0) revert AlreadyScored(msg.sender);
        _rounds[taskId][round] = w | scoredBit;
        // The scored bit just set is what makes this one attestation per member per round.
        if (model != bytes32(0)) ++_attestations[taskId][round][model];
        uint256[4] storage stored = _scoreRows[taskId][round][idx];
        for (uint256 k; k < rows.length; ++k) {
            uint256 x = rows[k];
            if (x == 0) continue;
            stored[k] = x;
            for (uint256 p = k << 4; x != 0; x >>= 16) {
                uint256 v = x & _LANE_MASK;
                if (v != 0) {
                    if (p == idx) revert SelfScore(msg.sender);
                    if ((committed >> p) & 1 == 0) revert PeerNotCommitted(p);
                    if (v > MAX_SCORE + 1) revert ScoreOutOfRange(v - 1);
                }
                ++p;
            }
        }
        emit ScoresSubmitted(taskId, round, msg.sender, model, rows);
    }

    function _activeIndex(address who) private view returns (uint256) {
        MemberInfo storage m = _members[who];
        if (!m.active) revert NotMember(who);
        return m.index;
    }

    function _openTask(uint256 taskId) private view returns (Task storage t) {
        t = _tasks[taskId];
        if (t.quorum == 0) revert UnknownTask(taskId);
        if (t.closed) revert TaskAlreadyClosed(taskId);
    }

    function _closedTask(uint256 taskId) private view returns (Task storage t) {
        t = _tasks[taskId];
        if (t.quorum == 0) revert UnknownTask(taskId);
        if (!t.closed) revert TaskNotClosed(taskId);
    }

    function _credit(
        Task storage t,
        uint256 taskId,
        uint32 round,
        uint256 committed,
        uint256 scored,
        address[] memory who,
        uint256[] memory credits
    ) private {
        // Load every scorer's row once, only the words that cover committed slots (lane k of the
        // committed mask holds the slots of word k).
        uint256[4][64] storage rows = _scoreRows[taskId][round];
        uint256[4][] memory cache = new uint256[4][](64);
        for (uint256 s; scored >> s != 0; ++s) {
            if ((scored >> s) & 1 == 0) continue;
            for (uint256 k; k < 4; ++k) {
                if (_lane(committed, k) != 0) cache[s][k] = rows[s][k];
            }
        }
        uint256[] memory buf = new uint256[](64);
        uint256 total = t.totalContribution;
        uint256 out;
        for (uint256 j; committed >> j != 0; ++j) {
            if ((committed >> j) & 1 == 0) continue;
            uint256 med = _median(cache, scored, j, buf);
            who[out] = _memberAt[j];
            credits[out] = med;
            ++out;
            if (med != 0) {
                t.contributions[j] += uint64(med);
                total += med;
            }
        }
        t.totalContribution = uint64(total);
    }

    /// @dev Median of the scores slot `j` received (rows cached in memory; stored as score + 1).
    function _median(uint256[4][] memory cache, uint256 scored, uint256 j, uint256[] memory buf)
        private
        pure
        returns (uint256)
    {
        uint256 m;
        // The lane is unpacked inline, not through _lane: this loop runs up to 64 x 64 times per
        // finalize, and the call would cost about 7k gas at N = 16.
        uint256 word = j >> 4;
        uint256 shift = (j & 15) << 4;
        for (uint256 s; scored >> s != 0; ++s) {
            if ((scored >> s) & 1 == 0) continue;
            uint256 v = (cache[s][word] >> shift) & _LANE_MASK;
            if (v == 0) continue;
            v -= 1;
            uint256 i = m; // insertion sort as we go
            while (i > 0 && buf[i - 1] > v) {
                buf[i] = buf[i - 1];
                --i;
            }
            buf[i] = v;
            ++m;
        }
        if (m == 0) return 0;
        return (m & 1 == 1) ? buf[m >> 1] : (buf[(m >> 1) - 1] + buf[m >> 1]) >> 1;
    }

    /// @dev What a member is owed at close: floor(pool * contribution / total). The dust rule,
    /// closeTask, withdraw and owed all rest on this one formula.
    function _payout(uint256 pool, uint256 c, uint256 total) internal pure returns (uint256) {
        return (pool * c) / total;
    }

    function _roundCommitted(uint256 w) private pure returns (uint256) {
        return w & _MASK64;
    }

    function _roundScored(uint256 w) private pure returns (uint256) {
        return (w >> _SCORED_SHIFT) & _MASK64;
    }

    function _scoredBit(uint256 idx) private pure returns (uint256) {
        return 1 << (_SCORED_SHIFT + idx);
    }

    /// @dev The round word bit of `digest` in the bloom filter: a clear bit proves no committed
    /// digest of the round equals it, so the exact duplicate scan is skipped.
    function _bloomBit(bytes32 digest) private pure returns (uint256) {
        return 1 << (_BLOOM_SHIFT + (uint256(digest) & 63));
    }

    function _roundStart(uint256 w) private pure returns (uint256) {
        return (w >> _START_SHIFT) & _MASK40;
    }

    function _withStart(uint256 w, uint256 start) private pure returns (uint256) {
        return w | (start << _START_SHIFT);
    }

    function _roundFinalized(uint256 w) private pure returns (bool) {
        return w & _FINAL_BIT != 0;
    }

    function _withFinalized(uint256 w) private pure returns (uint256) {
        return w | _FINAL_BIT;
    }

    /// @dev The 16-bit lane of `word` that belongs to slot `p` (lane p % 16).
    function _lane(uint256 word, uint256 p) private pure returns (uint256) {
        return (word >> ((p & 15) << 4)) & _LANE_MASK;
    }

    function _send(address to, uint256 amount) private {
        (bool ok,) = payable(to).call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }

    function _popcount(uint256 x) private pure returns (uint256 c) {
        while (x != 0) {
            x &= x - 1;
            ++c;
        }
    }
}
