// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title MedSwarmLedger (protocol v3): who contributed what to a swarm-learning task, and the rewards.
/// @notice An admin (the consortium) registers member nodes and creates training tasks; sponsors
/// fund a task's pool. In every round each member commits the keccak256 digest of its model
/// update. Every honest node computes the same score vector for the round from the committed
/// updates, so scoring is a vote on one vector: each committer (and the task's referee, if any)
/// votes for a whole vector, and finalizing a round credits each committer its lane of the
/// winning vector. When the admin closes the task, members withdraw their share of the pool and
/// of any revenue paid in later, pro rata to contribution (pull payments).
/// @dev Security assumptions and rules:
/// - The admin is trusted to register real institutions; members are not trusted. At most
///   MAX_MEMBERS (64) distinct member addresses per deployment; a member keeps its slot index for
///   life. Every loop is bounded by 64; withdraw, refund, bond and reclaimStake contain no loop.
/// - Round deadline = timestamp of the round's first commit + the task's round duration. Round
///   r > 1 opens (takes its first commit) only once round r - 1 has `quorum` committers, or once
///   round r - 1's deadline passed without them (that round earns nothing; the task goes on). A
///   round's bookkeeping lives in a ring of RING round words per task (index round % RING), so
///   a round reuses the slot of round r - RING instead of paying for a fresh one: a round can only
///   take the slot once round r - RING and the round whose votes share that word are finalized
///   (RoundsPending otherwise). Views of recycled rounds report `retained = false`; their
///   history stays in the events.
/// - Votes. A vote is a whole vector: lane p (16 bits, word p / 16) holds 0 (not scored),
///   score + 1 (1..10001) or FLAGGED (0xFFFF: a near-copy, free rider or invalid update). A
///   committer of the round votes once; the referee (if the task has one) may vote without
///   committing. The contract keeps the voters of every distinct vector, keyed by
///   H = keccak256(abi.encode(round, model, rows)) (the round's first vector in a reused leader
///   word, any other in a mapping slot), and the largest count any vector reached.
/// - Finalize: when every committer voted (and >= quorum committed, and the referee voted if the
///   task has one) or once block.timestamp >= deadline + roundDuration; the last vote itself
///   finalizes the round when it is the winner, which saves the separate transaction. The winner
///   is the referee's vector if it voted, else a vector voted by a strict majority of the round's
///   committers. The caller passes the winner (found from the vote events); passing another
///   vector reverts with NotWinningVote. Committers get their lane;
///   FLAGGED lanes get 0 and are slashed; committers that voted another vector (deviants) get 0
///   and are slashed. No referee vote and no majority: a Split round credits and slashes nobody
///   (a colluding pair among four ends up here). Below quorum: nobody is credited.
/// - The referee votes as the referee only in rounds it did not commit in (a referee that is also
///   a committing member votes as a member there).
/// - Stake: with stake > 0, a member bonds exactly `stake` before committing; each offence
///   moves min(slash, remaining bond) into the pool; reclaimStake returns the rest after close.
///   The member's slot also notes the task of its latest bond, so that a commit there (which
///   reads that slot anyway) checks the bond without reading the task's account.
/// - Payouts: received = pool + revenue paid after close. Member i is entitled to
///   floor(received * c_i / total) cumulatively and withdraws the difference to what it already
///   took. Dust = received - sum of entitlements, claimed by the admin with claimDust. Because the
///   dust of a larger amount can be smaller than the dust of a smaller one, a dust claim settles
///   each member's entitlement at the received amount of the claim (kept per member), and later
///   revenue is split from there: entitlements never shrink and payouts + dust == every wei
///   deposited, exactly. Without a dust claim in between, several instalments split exactly as
///   one deposit would.
/// - Nobody-earned rule: if total contribution is 0 at close, every sponsor gets back exactly what
///   it funded with refund; slashed stake is then the admin's dust.
/// - Reputation (per member, across tasks, basis points, 10000 = average, new members 10000):
///   at close, every participant of the task (bonded, credited or slashed) gets
///   score = (3 * score + r) / 4 with r = 0 if slashed in the task, else
///   min(20000, c_i * participants * 10000 / total); a task nobody earned in leaves unslashed
///   scores as they are. Task and offence counters grow too.
/// - Differential privacy: a task may fix a privacy budget and DP-SGD parameters when it is
///   created (PrivacyTerms). Every commit carries the member's cumulative epsilon (milli-epsilon,
///   0 = not reported) in its event; the contract refuses one beyond the task's budget
///   (PrivacyBudgetExceeded) or below what the member reported before (EpsilonDecreased). The
///   contract cannot check that a node's training really spent what it reports: the record is
///   the node's signed, public claim, which auditors compare with the task's terms.
/// - Exchange terms: the task fixes at creation how members exchange updates (ExchangeTerms: the
///   wire codec, the fraction a sparse codec keeps, and above which swarm size each member merges
///   with a few drawn partners instead of everyone). The contract only records them; nodes read
///   them with taskTerms and refuse to join with other settings.
/// - Pull payments, checks-effects-interactions and a (transient) reentrancy guard on every
///   function that sends ETH. Every state change emits one event carrying enough data to rebuild
///   the history from logs alone (slot indices map to addresses through MemberRegistered).
contract MedSwarmLedger {
    /// @notice Maximum number of distinct member addresses (bounds every loop).
    uint256 public constant MAX_MEMBERS = 64;
    /// @notice Highest score a vote may give.
    uint16 public constant MAX_SCORE = 10000;
    /// @notice Lane value of a flagged member (near-copy, free rider or invalid update).
    uint16 public constant FLAGGED = 0xFFFF;
    /// @notice Number of round words kept per task (round r reuses the word of round r - RING).
    uint256 public constant RING = 8;
    /// @notice Reputation of an average member (basis points).
    uint32 public constant REPUTATION_AVERAGE = 10000;
    /// @notice Highest relative contribution a task can add to a reputation (basis points).
    uint32 public constant REPUTATION_CAP = 20000;

    /// @notice RoundFinalized.status: the winning vector was credited.
    uint8 public constant CREDITED = 0;
    /// @notice RoundFinalized.status: fewer committers than the quorum, nobody credited.
    uint8 public constant BELOW_QUORUM = 1;
    /// @notice RoundFinalized.status: no referee vote and no majority, nobody credited or slashed.
    uint8 public constant SPLIT = 2;
    /// @notice Slashed.reason: the member voted a vector other than the winner.
    uint8 public constant DEVIANT = 1;
    /// @notice Slashed.reason: the winning vector flagged the member's update.
    uint8 public constant FLAGGED_UPDATE = 2;

    // Round word of round r (slot r % RING of the task's ring): one slot holds a commit's and a
    // vote's bookkeeping, so commitAndVote(r, vote r - 1) writes a single slot.
    //   bits   0..63   committed mask of round r
    //   bits  64..127  voted mask of round r - 1 (votes on r - 1 ride on the round r commits)
    //   bits 128..167  timestamp of round r's first commit (uint40)
    //   bits 168..199  r itself (which round the slot holds now)
    //   bits 200..206  largest number of voters any single vector of round r - 1 has
    //   bit  207       round r finalized
    //   bits 208..239  the task's round duration, bit 240 its stake flag, bit 241 closed: copied
    //                  by the round's first commit (and closed set by closeTask) so that later
    //                  commits need not read the task's slot
    uint256 private constant _MASK64 = 0xFFFFFFFFFFFFFFFF;
    uint256 private constant _MASK40 = 0xFFFFFFFFFF;
    uint256 private constant _MASK32 = 0xFFFFFFFF;
    uint256 private constant _VOTED_SHIFT = 64;
    uint256 private constant _START_SHIFT = 128;
    uint256 private constant _ROUND_SHIFT = 168;
    uint256 private constant _MAXV_SHIFT = 200;
    uint256 private constant _FINAL_BIT = 1 << 207;
    uint256 private constant _DURATION_SHIFT = 208;
    uint256 private constant _STAKED_BIT = 1 << 240;
    uint256 private constant _CLOSED_BIT = 1 << 241;
    uint256 private constant _LANE_MASK = 0xFFFF;
    // _vote's voter when the caller is no active member (slot indices run below MAX_MEMBERS)
    uint256 private constant _NO_SLOT = type(uint256).max;
    // _verdict's answers
    uint256 private constant _WON = 0;
    uint256 private constant _NO_WINNER = 1;
    uint256 private constant _OTHER_WINS = 2;

    /// @notice A task's differential-privacy terms (all zero: no DP budget).
    /// @param epsilonMilli the privacy budget per member over the whole task, in 1/1000 epsilon
    /// @param deltaE18 delta in units of 1e-18 (0: 1/n, n each member's training rows)
    /// @param noiseMilli DP-SGD noise multiplier in 1/1000 (0: each node calibrates to the budget)
    /// @param clipMilli per-example gradient clipping norm in 1/1000
    /// @param accountant 0 = Renyi DP, 1 = PRV
    struct PrivacyTerms {
        uint32 epsilonMilli;
        uint64 deltaE18;
        uint32 noiseMilli;
        uint32 clipMilli;
        uint8 accountant;
    }

    /// @notice How a task's members exchange updates, fixed at creation.
    /// @param codec the updates' wire codec (0 f32, 1 f16, 2 q8, 3 sparse16, 4 ternary)
    /// @param compressionBps the share of entries a sparse codec (3, 4) keeps, in basis points
    /// (1..10000); 0 for the dense codecs
    /// @param exchangeAllUpTo up to this many training members every member merges every update
    /// @param partners above it, how many drawn peers each member merges with (0: ceil(log2 n))
    struct ExchangeTerms {
        uint8 codec;
        uint16 compressionBps;
        uint8 exchangeAllUpTo;
        uint8 partners;
    }

    struct MemberInfo {
        // slot 0: what every commit reads anyway
        uint8 index;
        bool registered;
        bool active;
        // the task of the member's latest bond (task ids count from 1, far below 2**64): a commit
        // in that task finds the bond here instead of in the task's account, a cold read
        uint64 bondTask;
        string peerId;
        string name;
    }

    struct Task {
        // slot 0: everything a commit, a vote and finalize read
        address referee;
        uint40 totalContribution;
        uint32 roundDuration;
        uint8 quorum; // > 0 for every existing task
        bool closed;
        bool staked; // stake > 0
        // slot 1
        uint128 pool; // funding plus slashed stake
        uint128 revenue; // paid in after close
        // slot 2
        uint128 paid; // withdrawn by members
        uint128 slashedTotal;
        // slot 3
        uint128 settledReceived; // received at the last dust claim
        uint128 dustClaimed;
        // slot 4 (the exchange terms fill the rest of the stake's slot: no extra slot to write)
        uint96 stake;
        uint96 slash;
        uint8 codec;
        uint16 compressionBps;
        uint8 exchangeAllUpTo;
        uint8 partners;
        // slot 5
        bytes32 validationDigest;
        // slots 6..13: eight uint32 contributions per word (slot j: word j / 8, bits 32 * (j % 8))
        uint256[8] contributions;
        string modelId;
        PrivacyTerms privacy;
    }

    /// @dev A member's accounts in one task (one slot).
    struct Account {
        uint96 withdrawn; // received fits: all the ether there is is below 2**96 wei
        uint32 epsilonMilli; // the member's cumulative epsilon as last committed
        uint96 bond; // what is left of the stake
        bool bonded;
        bool reclaimed;
        uint16 offences; // slashes in this task
    }

    /// @dev A member's standing across tasks.
    struct Reputation {
        uint32 score;
        uint32 tasks;
        uint32 offences;
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
    mapping(uint256 => uint256[RING]) private _rings;
    // task => ring of RING leader words: the first vector voted in round r (its vote hash's top
    // 192 bits) and the mask of the voters that voted another vector (low 64 bits), at r % RING.
    // Honest voters share the leader: they only read this reused slot; the leader's voters are
    // the round's voted mask minus the dissenters.
    mapping(uint256 => uint256[RING]) private _leaders;
    // task => vote hash (round included) => voter mask, for every vector other than the leader
    mapping(uint256 => mapping(bytes32 => uint256)) private _voters;
    // task => round => the referee's vote hash
    mapping(uint256 => mapping(uint256 => bytes32)) private _refereeVotes;
    mapping(uint256 => mapping(uint256 => Account)) private _accounts;
    // task => slot => entitlement settled at the last dust claim
    mapping(uint256 => mapping(uint256 => uint256)) private _settled;
    mapping(uint256 => mapping(address => uint256)) private _funded;
    mapping(address => Reputation) private _reputations;
    bool private transient _locked;

    // ---------------------------------------------------------------- events
    /// @notice A member was registered (or re-registered) in slot `index`.
    event MemberRegistered(address indexed member, uint8 index, string peerId, string name);
    /// @notice A member was deactivated; it can no longer commit, vote or bond.
    event MemberRemoved(address indexed member, uint8 index);
    /// @notice A task was created.
    event TaskCreated(
        uint256 indexed taskId,
        uint16 quorum,
        uint32 roundDuration,
        uint256 stake,
        uint256 slash,
        address referee,
        bytes32 validationDigest,
        string modelId
    );
    /// @notice `sponsor` added `amount` wei to the pool, which is now `pool`.
    event Funded(uint256 indexed taskId, address indexed sponsor, uint256 amount, uint256 pool);
    /// @notice `member` bonded `amount` wei for the task.
    event Bonded(uint256 indexed taskId, address indexed member, uint256 amount);
    /// @notice `member` committed `digest` for `round`; `index` is its slot.
    event Committed(
        uint256 indexed taskId, uint32 indexed round, address indexed member, uint8 index, bytes32 digest, uint32 epsilonMilli
    );
    /// @notice `voter` voted the score vector `rows` for `round` and attested `model`.
    /// @param model the merged-model digest `voter` holds after `round` (zero: no attestation)
    /// @param rows lane p (16 bits, word p / 16): 0 none, score + 1, or FLAGGED
    event Voted(uint256 indexed taskId, uint32 indexed round, address indexed voter, bytes32 model, uint256[] rows);
    /// @notice `member` committed `digest` for round + 1 and voted `rows` for `round` in one
    /// transaction (commitAndVote's usual case): a Committed and a Voted event in one.
    event CommittedAndVoted(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed member,
        bytes32 digest,
        uint32 epsilonMilli,
        bytes32 model,
        uint256[] rows
    );
    /// @notice A task's differential-privacy terms, fixed at creation (see PrivacyTerms).
    event PrivacyTermsSet(
        uint256 indexed taskId, uint32 epsilonMilli, uint64 deltaE18, uint32 noiseMilli, uint32 clipMilli, uint8 accountant
    );
    /// @notice A task's exchange terms, fixed at creation (see ExchangeTerms).
    event ExchangeTermsSet(
        uint256 indexed taskId, uint8 codec, uint16 compressionBps, uint8 exchangeAllUpTo, uint8 partners
    );
    /// @notice A round was finalized.
    /// @param status CREDITED, BELOW_QUORUM or SPLIT
    /// @param voteHash the winning vote hash (zero unless CREDITED)
    /// @param credits lane j (16 bits, word j / 16): the credit of the committer in slot j
    /// @param deviants committers that voted another vector (slashed, no credit)
    /// @param flagged committers the winning vector flagged (slashed, no credit)
    event RoundFinalized(
        uint256 indexed taskId,
        uint32 indexed round,
        uint8 status,
        bytes32 voteHash,
        uint256[] credits,
        uint64 deviants,
        uint64 flagged
    );
    /// @notice `amount` wei of `member`'s bond went to the pool for an offence in `round`.
    /// @param reason DEVIANT or FLAGGED_UPDATE
    event Slashed(uint256 indexed taskId, uint32 indexed round, address indexed member, uint256 amount, uint8 reason);
    /// @notice The task closed: no more rounds; payouts follow contributions from now on.
    event TaskClosed(uint256 indexed taskId, uint256 pool, uint256 totalContribution);
    /// @notice `member`'s reputation after the task closed.
    event ReputationUpdated(address indexed member, uint256 indexed taskId, uint32 score, uint32 tasks, uint32 offences);
    /// @notice `payer` paid `amount` wei of revenue; the task has now received `received` in all.
    event RevenuePaid(uint256 indexed taskId, address indexed payer, uint256 amount, uint256 received);
    /// @notice `member` withdrew `amount` wei of what it is entitled to.
    event Withdrawn(uint256 indexed taskId, address indexed member, uint256 amount);
    /// @notice The admin claimed `amount` wei of rounding dust.
    event DustClaimed(uint256 indexed taskId, address indexed to, uint256 amount);
    /// @notice A sponsor got its funding back (task closed with nobody earning anything).
    event Refunded(uint256 indexed taskId, address indexed sponsor, uint256 amount);
    /// @notice `member` got back what was left of its bond.
    event StakeReclaimed(uint256 indexed taskId, address indexed member, uint256 amount);

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
    /// @notice createTask was called with a slash above the stake.
    /// @param slash the slash given (wei)
    /// @param stake the stake given (wei)
    error InvalidSlash(uint256 slash, uint256 stake);
    /// @notice No task has this id.
    /// @param taskId the id given
    error UnknownTask(uint256 taskId);
    /// @notice The task is closed: no more commits, votes, bonds, funding, finalizing or closing.
    /// @param taskId the task
    error TaskAlreadyClosed(uint256 taskId);
    /// @notice Payouts, revenue, dust, refunds and reclaiming stake need a closed task.
    /// @param taskId the task
    error TaskNotClosed(uint256 taskId);
    /// @notice Rounds are numbered from 1.
    /// @param round the round given
    error InvalidRound(uint256 round);
    /// @notice A commit to a round whose previous round has not started, or has fewer than
    /// `quorum` committers and is still open: no member may open (and start the clock of) rounds
    /// the swarm has not reached.
    /// @param round the round given
    error RoundNotOpen(uint256 round);
    /// @notice A round's word would recycle the word of an older round that is not finalized yet.
    /// @param round the older round that must be finalized first
    error RoundsPending(uint256 round);
    /// @notice A commit must carry a non-zero digest.
    error ZeroDigest();
    /// @notice fund or payRevenue was called without ETH.
    error ZeroAmount();
    /// @notice bond was called on a task without stake.
    /// @param taskId the task
    error NoStake(uint256 taskId);
    /// @notice bond must send exactly the task's stake.
    /// @param stake the task's stake (wei)
    /// @param sent the value sent (wei)
    error WrongStake(uint256 stake, uint256 sent);
    /// @notice The member already bonded for this task.
    /// @param member the member
    error AlreadyBonded(address member);
    /// @notice The task has a stake and the member has not bonded it.
    /// @param member the member
    error NotBonded(address member);
    /// @notice The member already committed in this round.
    /// @param member the member
    /// @param round the round
    error AlreadyCommitted(address member, uint256 round);
    /// @notice The round's deadline has passed: no more commits.
    /// @param deadline the round's deadline (unix seconds)
    error RoundExpired(uint256 deadline);
    /// @notice The round is finalized (or recycled): no more commits, votes or finalizing.
    /// @param taskId the task
    /// @param round the round
    error AlreadyFinalized(uint256 taskId, uint256 round);
    /// @notice Only a member that committed in a round (or the task's referee) may vote in it.
    /// @param member the voter
    error NotCommitted(address member);
    /// @notice A vote gave a lane to a slot that did not commit in the round.
    /// @param peer the slot index
    error PeerNotCommitted(uint256 peer);
    /// @notice The voter already voted in this round.
    /// @param member the voter
    error AlreadyVoted(address member);
    /// @notice More than 4 vote words (64 slots) were sent.
    /// @param rows the number of words sent
    error TooManyRows(uint256 rows);
    /// @notice A lane above MAX_SCORE + 1 that is not FLAGGED.
    /// @param score the score the lane stands for (lane - 1)
    error ScoreOutOfRange(uint256 score);
    /// @notice finalize or vote was called for a round nobody committed in.
    /// @param taskId the task
    /// @param round the round
    error RoundNotStarted(uint256 taskId, uint256 round);
    /// @notice finalize was called before every committer (and the referee, if any) voted, or below
    /// quorum, and before the voting window closed (the round's deadline plus one round duration).
    /// @param scoringEnd when the round's voting window closes (unix seconds)
    error FinalizeTooEarly(uint256 scoringEnd);
    /// @notice finalize was given a vector that is not the round's winner (the referee's vote, or
    /// the vector of a strict majority of the committers).
    /// @param voteHash keccak256(abi.encode(round, model, rows)) of the vector given
    error NotWinningVote(bytes32 voteHash);
    /// @notice A member's contribution would pass 2^32 - 1 (429,496 rounds of full credit).
    /// @param member the member's slot index
    error ContributionOverflow(uint256 member);
    /// @notice payRevenue on a task in which nobody earned a contribution.
    /// @param taskId the task
    error NoContribution(uint256 taskId);
    /// @notice The caller has nothing to withdraw now.
    /// @param member the caller
    error NothingOwed(address member);
    /// @notice The task has no unclaimed dust.
    /// @param taskId the task
    error NoDust(uint256 taskId);
    /// @notice refund needs a task closed with zero total contribution and funding from the caller.
    /// @param sponsor the caller
    error NothingToRefund(address sponsor);
    /// @notice reclaimStake: the caller has no bond left in this task (never bonded, slashed to
    /// zero, or already reclaimed).
    /// @param member the caller
    error NothingToReclaim(address member);
    /// @notice Sending ETH failed (the receiver reverted); the amount stays claimable.
    /// @param to the receiver
    /// @param amount wei
    error TransferFailed(address to, uint256 amount);
    /// @notice A function that sends ETH was re-entered.
    error Reentrancy();
    /// @notice A commit reported a cumulative epsilon beyond the task's privacy budget.
    error PrivacyBudgetExceeded(address member, uint256 epsilonMilli, uint256 budgetMilli);
    /// @notice A commit reported a cumulative epsilon below the member's previous one.
    error EpsilonDecreased(address member, uint256 previousMilli, uint256 epsilonMilli);
    /// @notice Privacy terms out of range (delta >= 1, an unknown accountant, or DP parameters
    /// without a budget).
    error InvalidPrivacyTerms();
    /// @notice Exchange terms out of range (an unknown codec, a sparse codec without a kept share
    /// in 1..10000 basis points, a dense codec with one, or more partners than MAX_MEMBERS - 1).
    error InvalidExchangeTerms();

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
    /// @param stake wei each member bonds before committing (0: no stake)
    /// @param slash wei taken from a member's bond per offence (<= stake)
    /// @param referee the sponsor's scoring node whose vote decides (address(0): none); it votes
    /// as the referee in rounds it does not commit in
    /// @param validationDigest keccak256 of the validation set the sponsor publishes (zero: none)
    /// @param privacy the task's privacy budget and DP-SGD parameters (all zero: none)
    /// @param exchange the updates' codec and who merges with whom (see ExchangeTerms)
    /// @return taskId the new task's id (ids start at 1)
    function createTask(
        uint16 quorum,
        string calldata modelId,
        uint32 roundDuration,
        uint96 stake,
        uint96 slash,
        address referee,
        bytes32 validationDigest,
        PrivacyTerms calldata privacy,
        ExchangeTerms calldata exchange
    ) external onlyAdmin returns (uint256 taskId) {
        if (quorum == 0 || quorum > MAX_MEMBERS) revert InvalidQuorum(quorum);
        if (roundDuration == 0) revert InvalidRoundDuration(roundDuration);
        if (slash > stake) revert InvalidSlash(slash, stake);
        if (
            privacy.deltaE18 >= 1e18 || privacy.accountant > 1
                || (privacy.epsilonMilli == 0 && (privacy.deltaE18 | privacy.noiseMilli | privacy.clipMilli) != 0)
        ) revert InvalidPrivacyTerms();
        _checkExchange(exchange);
        taskId = ++taskCount;
        Task storage t = _tasks[taskId];
        t.quorum = uint8(quorum);
        t.roundDuration = roundDuration;
        t.referee = referee;
        t.staked = stake != 0;
        t.stake = stake;
        t.slash = slash;
        t.codec = exchange.codec;
        t.compressionBps = exchange.compressionBps;
        t.exchangeAllUpTo = exchange.exchangeAllUpTo;
        t.partners = exchange.partners;
        t.validationDigest = validationDigest;
        t.modelId = modelId;
        _announce(taskId, t);
        emit ExchangeTermsSet(taskId, exchange.codec, exchange.compressionBps, exchange.exchangeAllUpTo, exchange.partners);
        if (privacy.epsilonMilli != 0) {
            t.privacy = privacy;
            emit PrivacyTermsSet(
                taskId, privacy.epsilonMilli, privacy.deltaE18, privacy.noiseMilli, privacy.clipMilli, privacy.accountant
            );
        }
    }

    /// @notice Close a task: no more rounds, bonds or funding; payouts, revenue and stake
    /// reclaims open, and every participant's reputation is updated.
    /// @dev Loops twice over at most 64 member slots (participants are counted first, since the
    /// reputation rule scales by their number).
    /// @param taskId the task
    function closeTask(uint256 taskId) external onlyAdmin {
        Task storage t = _openTask(taskId);
        t.closed = true;
        uint256 total = t.totalContribution;
        emit TaskClosed(taskId, t.pool, total);
        // Rounds in progress check the closed flag in their own word (see _commit).
        uint256[RING] storage ring = _rings[taskId];
        for (uint256 k; k < RING; ++k) {
            uint256 w = ring[k];
            if (_start(w) != 0 && !_finalized(w)) ring[k] = w | _CLOSED_BIT;
        }
        uint256 count = memberCount;
        uint256 participants;
        uint256 mask;
        for (uint256 j; j < count; ++j) {
            Account storage a = _accounts[taskId][j];
            if (a.bonded || a.offences != 0 || _contribution(t, j) != 0) {
                mask |= 1 << j;
                ++participants;
            }
        }
        for (uint256 j; mask >> j != 0; ++j) {
            if ((mask >> j) & 1 != 0) _updateReputation(t, taskId, j, total, participants);
        }
    }

    /// @notice Send the task's unclaimed rounding dust to the admin (pull; again as revenue accrues).
    /// @dev Settles every member's entitlement at the current received amount (loop over at most
    /// 64 slots), so that later revenue cannot turn the dust claimed now into an over-payment.
    /// @param taskId a closed task with dust
    /// @return amount wei sent
    function claimDust(uint256 taskId) external onlyAdmin nonReentrant returns (uint256 amount) {
        Task storage t = _closedTask(taskId);
        uint256 total = t.totalContribution;
        if (total == 0) {
            // Nobody earned: sponsors get their funding back, the slashed stake is the dust.
            amount = t.slashedTotal - t.dustClaimed;
        } else {
            uint256 inflow = uint256(t.pool) + t.revenue;
            uint256 fresh = inflow - t.settledReceived;
            amount = fresh;
            uint256 count = memberCount;
            for (uint256 j; j < count; ++j) {
                uint256 share = (fresh * _contribution(t, j)) / total;
                if (share != 0) {
                    _settled[taskId][j] += share;
                    amount -= share;
                }
            }
            t.settledReceived = uint128(inflow);
        }
        if (amount == 0) revert NoDust(taskId);
        t.dustClaimed += uint128(amount);
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

    /// @notice Pay revenue earned by the trained model to the task's members (any account, any
    /// time after close); it is split by contribution exactly as the pool is.
    /// @param taskId a closed task in which somebody earned a contribution
    function payRevenue(uint256 taskId) external payable {
        if (msg.value == 0) revert ZeroAmount();
        Task storage t = _closedTask(taskId);
        if (t.totalContribution == 0) revert NoContribution(taskId);
        uint256 revenue = t.revenue + msg.value;
        t.revenue = uint128(revenue);
        emit RevenuePaid(taskId, msg.sender, msg.value, revenue + t.pool);
    }

    /// @notice Finalize a round with its winning vector: credit each committer its lane, slash
    /// deviant voters and flagged members; or record a split or a round below quorum.
    /// @dev Allowed once every committer voted (with at least `quorum` committers, and the referee
    /// if the task has one) or once
    /// block.timestamp >= deadline + roundDuration (votes ride on the next round's commits).
    /// The winner is the referee's vote if it voted, else the vector of a strict majority of the
    /// committers (known in O(1) from the largest vote count); the caller passes it, read from
    /// the Voted events. A split or a round below quorum ignores the vector passed. Linear in
    /// the number of committers.
    /// @param taskId an open task
    /// @param round a round with at least one commit
    /// @param model the winning vote's model attestation
    /// @param rows the winning vote's vector
    function finalize(uint256 taskId, uint32 round, bytes32 model, uint256[] calldata rows) external {
        Task storage t = _openTask(taskId);
        (uint256 committed, uint256 next, uint256 n) = _closeRound(t, taskId, round);
        if (n < t.quorum) {
            emit RoundFinalized(taskId, round, BELOW_QUORUM, bytes32(0), new uint256[](0), 0, 0);
            return;
        }
        bytes32 h = keccak256(abi.encode(round, model, rows));
        uint256 voters = _votersOf(taskId, round, h, _voted(next));
        uint256 verdict = _verdict(t, taskId, round, h, voters, n, _maxVotes(next));
        if (verdict == _OTHER_WINS) revert NotWinningVote(h);
        if (verdict == _NO_WINNER) {
            emit RoundFinalized(taskId, round, SPLIT, bytes32(0), new uint256[](0), 0, 0);
            return;
        }
        _credit(t, taskId, round, committed, _voted(next) & ~voters, rows, h);
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

    // ---------------------------------------------------------------- members
    /// @notice Bond the task's stake (exactly `stake` wei, once per task, while the task is open).
    /// @param taskId an open task with a stake
    function bond(uint256 taskId) external payable {
        MemberInfo storage m = _activeMember(msg.sender);
        uint256 idx = m.index;
        Task storage t = _openTask(taskId);
        uint256 stake = t.stake;
        if (stake == 0) revert NoStake(taskId);
        if (msg.value != stake) revert WrongStake(stake, msg.value);
        Account storage a = _accounts[taskId][idx];
        if (a.bonded) revert AlreadyBonded(msg.sender);
        a.bonded = true;
        a.bond = uint96(stake);
        m.bondTask = uint64(taskId);
        emit Bonded(taskId, msg.sender, stake);
    }

    /// @notice Commit the keccak256 digest of this member's update for `round` (once per round).
    /// @param taskId an open task (if it has a stake, the caller must have bonded)
    /// @param round round number, from 1
    /// @param digest keccak256 of the update's exact encoded bytes
    /// @param epsilonMilli the member's cumulative DP epsilon after this update, in 1/1000
    /// (0: not reported); at most the task's budget, never below the member's previous one
    function commit(uint256 taskId, uint32 round, bytes32 digest, uint32 epsilonMilli) external {
        MemberInfo storage m = _activeMember(msg.sender);
        uint256 idx = m.index;
        uint256[RING] storage ring = _rings[taskId];
        ring[round % RING] = _commit(ring, taskId, round, digest, idx, m.bondTask);
        _spendPrivacy(taskId, idx, epsilonMilli);
        emit Committed(taskId, round, msg.sender, uint8(idx), digest, epsilonMilli);
    }

    /// @notice Vote the round's score vector and attest the merged model held after the round
    /// (once per round, by a committer of the round or by the task's referee).
    /// @dev Lane p (16 bits) of the whole array (word p / 16, bits 16 * (p % 16)) is for slot p:
    /// 0 = not scored, score + 1 (1..10001), or FLAGGED. At most 4 words (64 slots); lanes only
    /// for slots that committed in the round. The round's last vote finalizes the round when it is
    /// the winner (every committer voted, and the referee if the task has one).
    /// @param taskId an open task
    /// @param round a round the caller committed to (or any round, for the referee), not finalized
    /// @param model keccak256 of the merged model held after `round` (zero: no attestation)
    /// @param rows the packed score vector, self included
    function vote(uint256 taskId, uint32 round, bytes32 model, uint256[] calldata rows) external {
        MemberInfo storage m = _members[msg.sender];
        _voteAlone(_openTask(taskId), taskId, round, model, rows, m.active ? m.index : _NO_SLOT);
    }

    /// @notice One transaction per node per round: commit to `round` and vote on `voteRound`
    /// (normally round - 1, which then costs a single storage write). Same checks and events as
    /// commit followed by vote.
    /// @param taskId an open task
    /// @param round round to commit to
    /// @param digest keccak256 of this member's update for `round`
    /// @param epsilonMilli the member's cumulative DP epsilon, as in commit
    /// @param voteRound an earlier round this member committed to and has not voted in
    /// @param model the merged model held after `voteRound`, as in vote
    /// @param rows the packed score vector for `voteRound`, as in vote
    function commitAndVote(
        uint256 taskId,
        uint32 round,
        bytes32 digest,
        uint32 epsilonMilli,
        uint32 voteRound,
        bytes32 model,
        uint256[] calldata rows
    ) external {
        MemberInfo storage m = _activeMember(msg.sender);
        uint256 idx = m.index;
        // _commit checks that the task exists and is open (from the round word when it can).
        Task storage t = _tasks[taskId];
        uint256[RING] storage ring = _rings[taskId];
        uint256 w = _commit(ring, taskId, round, digest, idx, m.bondTask);
        _spendPrivacy(taskId, idx, epsilonMilli);
        if (uint256(voteRound) + 1 == round) {
            // The vote's event goes first: the vote may finalize the round (RoundFinalized after it).
            emit CommittedAndVoted(taskId, voteRound, msg.sender, digest, epsilonMilli, model, rows);
            ring[round % RING] = _vote(t, taskId, voteRound, model, rows, w, idx);
        } else {
            ring[round % RING] = w;
            emit Committed(taskId, round, msg.sender, uint8(idx), digest, epsilonMilli);
            _voteAlone(t, taskId, voteRound, model, rows, idx);
        }
    }

    /// @notice Withdraw what the caller is owed now: floor(received * contribution / total) (as
    /// settled by dust claims) minus what it already withdrew. Repeatable as revenue comes in.
    /// @param taskId a closed task
    /// @return amount wei sent to the caller
    function withdraw(uint256 taskId) external nonReentrant returns (uint256 amount) {
        Task storage t = _closedTask(taskId);
        MemberInfo storage m = _members[msg.sender];
        if (!m.registered || t.totalContribution == 0) revert NothingOwed(msg.sender);
        uint256 idx = m.index;
        Account storage a = _accounts[taskId][idx];
        uint256 entitled = _entitlement(t, taskId, idx);
        if (entitled <= a.withdrawn) revert NothingOwed(msg.sender);
        amount = entitled - a.withdrawn;
        a.withdrawn = uint96(entitled);
        t.paid += uint128(amount);
        emit Withdrawn(taskId, msg.sender, amount);
        _send(msg.sender, amount);
    }

    /// @notice Take back what is left of the caller's bond (closed task, once).
    /// @param taskId a closed task the caller bonded for
    /// @return amount wei sent to the caller
    function reclaimStake(uint256 taskId) external nonReentrant returns (uint256 amount) {
        _closedTask(taskId);
        MemberInfo storage m = _members[msg.sender];
        if (!m.registered) revert NothingToReclaim(msg.sender);
        Account storage a = _accounts[taskId][m.index];
        amount = a.bond;
        if (amount == 0) revert NothingToReclaim(msg.sender);
        a.bond = 0;
        emit StakeReclaimed(taskId, msg.sender, amount);
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
    /// @return pool wei funded plus slashed stake
    /// @return revenue wei paid in after close
    /// @return totalContribution sum of credits
    /// @return closed whether the task is closed
    /// @return paid wei withdrawn by members
    /// @return dustClaimed wei of dust the admin claimed
    /// @return modelId model / data-set identifier
    function taskInfo(uint256 taskId)
        external
        view
        returns (
            uint16 quorum,
            uint32 roundDuration,
            uint256 pool,
            uint256 revenue,
            uint256 totalContribution,
            bool closed,
            uint256 paid,
            uint256 dustClaimed,
            string memory modelId
        )
    {
        Task storage t = _task(taskId);
        return (t.quorum, t.roundDuration, t.pool, t.revenue, t.totalContribution, t.closed, t.paid, t.dustClaimed, t.modelId);
    }

    /// @notice A task's staking and scoring terms.
    /// @param taskId the task
    /// @return stake wei each member bonds (0: none)
    /// @return slash wei taken per offence
    /// @return referee the node whose vote decides (address(0): none)
    /// @return validationDigest keccak256 of the sponsor's validation set (zero: none)
    /// @return slashedTotal wei slashed into the pool so far
    /// @return exchange the updates' codec and who merges with whom, fixed at creation
    function taskTerms(uint256 taskId)
        external
        view
        returns (
            uint256 stake,
            uint256 slash,
            address referee,
            bytes32 validationDigest,
            uint256 slashedTotal,
            ExchangeTerms memory exchange
        )
    {
        Task storage t = _task(taskId);
        exchange = ExchangeTerms(t.codec, t.compressionBps, t.exchangeAllUpTo, t.partners);
        return (t.stake, t.slash, t.referee, t.validationDigest, t.slashedTotal, exchange);
    }

    /// @notice A round's state, while its round words are kept (the last RING rounds or so).
    /// @param taskId the task
    /// @param round the round
    /// @return committedMask bit j set: slot j committed
    /// @return votedMask bit j set: slot j voted
    /// @return start timestamp of the first commit (0: no commit yet)
    /// @return deadline start + roundDuration (0: no commit yet)
    /// @return finalized whether the round is finalized
    /// @return maxVotes the largest number of committers that voted one vector
    /// @return retained false once the round's words were recycled (the other values are then 0;
    /// the events keep the history)
    function roundInfo(uint256 taskId, uint32 round)
        external
        view
        returns (
            uint64 committedMask,
            uint64 votedMask,
            uint40 start,
            uint40 deadline,
            bool finalized,
            uint8 maxVotes,
            bool retained
        )
    {
        uint256[RING] storage ring = _rings[taskId];
        uint256 w = ring[round % RING];
        uint256 next = ring[(uint256(round) + 1) % RING];
        retained = _roundOf(w) <= round && _roundOf(next) <= uint256(round) + 1;
        if (!retained || _roundOf(w) != round) return (0, 0, 0, 0, false, 0, retained);
        next = _votesOn(ring, round);
        committedMask = uint64(_committed(w));
        votedMask = uint64(_voted(next));
        start = uint40(_start(w));
        if (start != 0) deadline = start + _tasks[taskId].roundDuration;
        finalized = _finalized(w);
        maxVotes = uint8(_maxVotes(next));
    }

    /// @notice The members (bitmask of slots) that voted the vector with this vote hash in a
    /// round whose words are retained (see roundInfo).
    /// @param taskId the task
    /// @param round the round
    /// @param voteHash keccak256(abi.encode(round, model, rows))
    /// @return mask bit j set: slot j voted it
    function votersOf(uint256 taskId, uint32 round, bytes32 voteHash) external view returns (uint64 mask) {
        return uint64(_votersOf(taskId, round, voteHash, _voted(_votesOn(_rings[taskId], round))));
    }

    /// @notice The referee's vote hash in a round (zero: it has not voted).
    /// @param taskId the task
    /// @param round the round
    /// @return voteHash keccak256(abi.encode(round, model, rows)) of the referee's vote
    function refereeVote(uint256 taskId, uint32 round) external view returns (bytes32 voteHash) {
        return _refereeVotes[taskId][round];
    }

    /// @notice A member's accumulated contribution (sum of its round credits) in a task.
    /// @param taskId the task
    /// @param member the member
    /// @return amount the contribution
    function contribution(uint256 taskId, address member) external view returns (uint256 amount) {
        MemberInfo storage m = _members[member];
        if (m.registered) amount = _contribution(_tasks[taskId], m.index);
    }

    /// @notice Wei the task has received for its members: the pool (with slashed stake) plus revenue.
    /// @param taskId the task
    /// @return amount wei
    function received(uint256 taskId) external view returns (uint256 amount) {
        Task storage t = _task(taskId);
        return uint256(t.pool) + t.revenue;
    }

    /// @notice What `member` can withdraw now (0 before close).
    /// @param taskId the task
    /// @param member the member
    /// @return amount wei
    function owed(uint256 taskId, address member) external view returns (uint256 amount) {
        Task storage t = _tasks[taskId];
        MemberInfo storage m = _members[member];
        if (!t.closed || !m.registered || t.totalContribution == 0) return 0;
        uint256 entitled = _entitlement(t, taskId, m.index);
        uint256 taken = _accounts[taskId][m.index].withdrawn;
        if (entitled > taken) amount = entitled - taken;
    }

    /// @notice Wei `member` has withdrawn from a task so far.
    /// @param taskId the task
    /// @param member the member
    /// @return amount wei
    function withdrawn(uint256 taskId, address member) external view returns (uint256 amount) {
        MemberInfo storage m = _members[member];
        if (m.registered) amount = _accounts[taskId][m.index].withdrawn;
    }

    /// @notice The rounding dust: what is not any member's entitlement, and what the admin took.
    /// @dev Loops over at most 64 slots.
    /// @param taskId the task
    /// @return unclaimed wei the admin could claim now (0 before close)
    /// @return claimed wei the admin has claimed
    function dust(uint256 taskId) external view returns (uint256 unclaimed, uint256 claimed) {
        Task storage t = _task(taskId);
        claimed = t.dustClaimed;
        if (!t.closed) return (0, claimed);
        uint256 total = t.totalContribution;
        if (total == 0) return (t.slashedTotal - claimed, claimed);
        uint256 fresh = uint256(t.pool) + t.revenue - t.settledReceived;
        unclaimed = fresh;
        uint256 count = memberCount;
        for (uint256 j; j < count; ++j) {
            unclaimed -= (fresh * _contribution(t, j)) / total;
        }
    }

    /// @notice A member's bond in a task.
    /// @param taskId the task
    /// @param member the member
    /// @return bonded whether it bonded
    /// @return remaining wei left of its bond (0 once reclaimed)
    /// @return offences how many times it was slashed in the task
    function stakeOf(uint256 taskId, address member)
        external
        view
        returns (bool bonded, uint256 remaining, uint256 offences)
    {
        MemberInfo storage m = _members[member];
        if (!m.registered) return (false, 0, 0);
        Account storage a = _accounts[taskId][m.index];
        return (a.bonded, a.bond, a.offences);
    }

    /// @notice A task's differential-privacy terms (all zero: the task has no DP budget).
    /// @param taskId the task
    /// @return terms the budget and DP-SGD parameters fixed at creation
    function privacyTerms(uint256 taskId) external view returns (PrivacyTerms memory terms) {
        return _task(taskId).privacy;
    }

    /// @notice The cumulative epsilon `member` last committed in a task (milli-epsilon; 0: none).
    /// @param taskId the task
    /// @param member the member
    /// @return epsilonMilli cumulative epsilon in 1/1000
    function epsilonOf(uint256 taskId, address member) external view returns (uint256 epsilonMilli) {
        MemberInfo storage m = _members[member];
        if (m.registered) epsilonMilli = _accounts[taskId][m.index].epsilonMilli;
    }

    /// @notice A member's reputation across closed tasks.
    /// @param member the member
    /// @return score basis points, 10000 = average (new members: 10000)
    /// @return tasks closed tasks it took part in
    /// @return offences times it was slashed in them
    function reputation(address member) external view returns (uint32 score, uint32 tasks, uint32 offences) {
        Reputation storage r = _reputations[member];
        score = r.tasks == 0 ? REPUTATION_AVERAGE : r.score;
        return (score, r.tasks, r.offences);
    }

    /// @notice Wei `sponsor` funded a task with (and can still reclaim via refund, if applicable).
    /// @param taskId the task
    /// @param sponsor the sponsor
    /// @return amount wei
    function funded(uint256 taskId, address sponsor) external view returns (uint256 amount) {
        return _funded[taskId][sponsor];
    }

    // ---------------------------------------------------------------- internals
    /// @dev The round word of `round` with slot `idx`'s commit added (not stored). The round's
    /// first commit reads the task's slot (exists, open, quorum) and copies what later commits
    /// check into the word: round duration, stake flag (closeTask sets the closed flag). In a
    /// staked task the member has bonded if `bondTask` (its latest bond's task) is this task, or
    /// else if its account here says so.
    function _commit(
        uint256[RING] storage ring,
        uint256 taskId,
        uint32 round,
        bytes32 digest,
        uint256 idx,
        uint256 bondTask
    )
        private
        view
        returns (uint256 w)
    {
        if (round == 0) revert InvalidRound(round);
        if (digest == bytes32(0)) revert ZeroDigest();
        w = _claim(ring, taskId, round);
        if (_finalized(w)) revert AlreadyFinalized(taskId, round);
        uint256 start = _start(w);
        if (start == 0) {
            Task storage t = _openTask(taskId);
            if (round > 1) _checkOpens(ring, taskId, round, t.quorum);
            w |= (block.timestamp << _START_SHIFT) | (uint256(t.roundDuration) << _DURATION_SHIFT);
            if (t.staked) w |= _STAKED_BIT;
        } else {
            if (w & _CLOSED_BIT != 0) revert TaskAlreadyClosed(taskId);
            uint256 deadline = start + ((w >> _DURATION_SHIFT) & _MASK32);
            if (block.timestamp >= deadline) revert RoundExpired(deadline);
        }
        uint256 bit = 1 << idx;
        if (w & bit != 0) revert AlreadyCommitted(msg.sender, round);
        if (w & _STAKED_BIT != 0 && bondTask != taskId && !_accounts[taskId][idx].bonded) revert NotBonded(msg.sender);
        return w | bit;
    }

    /// @dev Round `round` may open once round - 1 has `quorum` committers, so one member cannot
    /// start the clocks of rounds the swarm has not reached and have the others' commits expire
    /// before they get there; or once round - 1 is over without its quorum (its deadline passed),
    /// so that a round nobody could complete (slow starters, a member that stalled the others)
    /// costs that round's credit, not the rest of the task.
    function _checkOpens(uint256[RING] storage ring, uint256 taskId, uint256 round, uint256 quorum) private view {
        uint256 prev = _word(ring, taskId, round - 1);
        uint256 start = _start(prev);
        if (start == 0) revert RoundNotOpen(round);
        if (_popcount(_committed(prev)) >= quorum) return;
        if (block.timestamp < start + ((prev >> _DURATION_SHIFT) & _MASK32)) revert RoundNotOpen(round);
    }

    /// @dev Check and record a commit's cumulative epsilon against the task's budget. Costs
    /// nothing for commits that report none (0); otherwise one read of the task's privacy slot
    /// and one of the member's account word, written only when the epsilon grew.
    function _spendPrivacy(uint256 taskId, uint256 idx, uint32 epsilonMilli) private {
        if (epsilonMilli == 0) return;
        uint256 budget = _tasks[taskId].privacy.epsilonMilli;
        if (budget != 0 && epsilonMilli > budget) revert PrivacyBudgetExceeded(msg.sender, epsilonMilli, budget);
        Account storage a = _accounts[taskId][idx];
        uint32 previous = a.epsilonMilli;
        if (epsilonMilli < previous) revert EpsilonDecreased(msg.sender, previous, epsilonMilli);
        if (epsilonMilli != previous) a.epsilonMilli = epsilonMilli;
    }

    /// @dev A vote whose word (that of round + 1) is not being written anyway.
    function _voteAlone(
        Task storage t,
        uint256 taskId,
        uint32 round,
        bytes32 model,
        uint256[] calldata rows,
        uint256 voter
    ) private {
        uint256 next = _claim(_rings[taskId], taskId, uint256(round) + 1);
        emit Voted(taskId, round, msg.sender, model, rows); // first: the vote may finalize the round
        next = _vote(t, taskId, round, model, rows, next, voter);
        _rings[taskId][(uint256(round) + 1) % RING] = next;
    }

    /// @dev Records a vote on `round` into `next`, the (claimed) word of round + 1, and returns it.
    /// `voter` is the caller's slot if it is an active member, else _NO_SLOT.
    function _vote(
        Task storage t,
        uint256 taskId,
        uint32 round,
        bytes32 model,
        uint256[] calldata rows,
        uint256 next,
        uint256 voter
    ) private returns (uint256) {
        if (rows.length > 4) revert TooManyRows(rows.length);
        uint256 w = _word(_rings[taskId], taskId, round);
        if (_finalized(w)) revert AlreadyFinalized(taskId, round);
        uint256 committed = _committed(w);
        // Also keeps the referee from taking the ring word of a round the swarm has not reached.
        if (committed == 0) revert RoundNotStarted(taskId, round);
        _checkLanes(rows, committed);
        bytes32 h = keccak256(abi.encode(round, model, rows));
        // A committer's vote never needs the task's slot; only a non-committer may be the referee
        // (a referee that committed in the round votes as a member).
        if (voter != _NO_SLOT && (committed >> voter) & 1 != 0) {
            next = _countVote(taskId, round, h, voter, next);
        } else if (msg.sender == t.referee) {
            if (_refereeVotes[taskId][round] != bytes32(0)) revert AlreadyVoted(msg.sender);
            _refereeVotes[taskId][round] = h;
        } else {
            if (voter == _NO_SLOT) revert NotMember(msg.sender);
            revert NotCommitted(msg.sender);
        }
        if (_voted(next) == committed) _finalizeIfWon(t, taskId, round, w, next, h, rows);
        return next;
    }

    /// @dev Adds slot `idx` to the voters of `h` and to the voted mask in `next`, and keeps the
    /// round's largest vote count there (what finalize needs to know whether a majority exists).
    /// The round's first member vote makes its vector the leader; a later vote for the leader
    /// writes nothing more (its voters are the voted mask minus the dissenters), a vote for any
    /// other vector marks its voter as a dissenter and is counted in _voters.
    function _countVote(uint256 taskId, uint32 round, bytes32 h, uint256 idx, uint256 next) private returns (uint256) {
        uint256 bit = 1 << (_VOTED_SHIFT + idx);
        if (next & bit != 0) revert AlreadyVoted(msg.sender);
        uint256[RING] storage leaders = _leaders[taskId];
        uint256 voted = _voted(next);
        uint256 me = 1 << idx;
        uint256 voters;
        if (voted == 0) {
            leaders[round % RING] = (uint256(h) >> 64) << 64;
            voters = me;
        } else {
            uint256 lead = leaders[round % RING];
            if (lead >> 64 == uint256(h) >> 64) {
                voters = (voted & ~lead) | me;
            } else {
                leaders[round % RING] = lead | me;
                voters = _voters[taskId][h] | me;
                _voters[taskId][h] = voters;
            }
        }
        next |= bit;
        uint256 count = _popcount(voters);
        if (count > _maxVotes(next)) next = (next & ~(uint256(0x7F) << _MAXV_SHIFT)) | (count << _MAXV_SHIFT);
        return next;
    }

    /// @dev Marks `round` finalized if it may be (see finalize); returns its committed mask, the
    /// word holding the votes on it and the number of committers.
    function _closeRound(Task storage t, uint256 taskId, uint32 round)
        private
        returns (uint256 committed, uint256 next, uint256 n)
    {
        uint256[RING] storage ring = _rings[taskId];
        uint256 w = _word(ring, taskId, round);
        committed = _committed(w);
        if (committed == 0) revert RoundNotStarted(taskId, round);
        if (_finalized(w)) revert AlreadyFinalized(taskId, round);
        next = _votesOn(ring, round);
        uint256 scoringEnd = _start(w) + 2 * uint256(t.roundDuration);
        n = _popcount(committed);
        bool everyone = _voted(next) == committed && n >= t.quorum && _refereeDone(t, taskId, round);
        if (!everyone && block.timestamp < scoringEnd) revert FinalizeTooEarly(scoringEnd);
        ring[round % RING] = w | _FINAL_BIT;
    }

    /// @dev Whether vote hash `h` (voted by `voters`) wins the round: the referee's vote decides if
    /// there is one; else a strict majority of the `n` committers. WON, NO_WINNER (a split) or
    /// OTHER_WINS (some vector wins and `h` is not it).
    function _verdict(Task storage t, uint256 taskId, uint32 round, bytes32 h, uint256 voters, uint256 n, uint256 maxVotes)
        private
        view
        returns (uint256)
    {
        bytes32 decided = t.referee == address(0) ? bytes32(0) : _refereeVotes[taskId][round];
        if (decided != bytes32(0)) return h == decided ? _WON : _OTHER_WINS;
        if (maxVotes * 2 <= n) return _NO_WINNER;
        return _popcount(voters) * 2 > n ? _WON : _OTHER_WINS;
    }

    /// @dev Whether the task has no referee or its referee voted in `round`: with a referee, a
    /// round is finalized before its voting window closes only once the referee has voted.
    function _refereeDone(Task storage t, uint256 taskId, uint32 round) private view returns (bool) {
        return t.referee == address(0) || _refereeVotes[taskId][round] != bytes32(0);
    }

    /// @dev After the round's last vote (every committer voted, `next` holds the votes, and the
    /// referee voted if the task has one): if this vote is the winner, finalize the round now, as
    /// finalize would, and save everyone a transaction.
    function _finalizeIfWon(
        Task storage t,
        uint256 taskId,
        uint32 round,
        uint256 w,
        uint256 next,
        bytes32 h,
        uint256[] calldata rows
    ) private {
        uint256 committed = _committed(w);
        uint256 n = _popcount(committed);
        if (n < t.quorum || !_refereeDone(t, taskId, round)) return;
        uint256 voters = _votersOf(taskId, round, h, committed);
        if (_verdict(t, taskId, round, h, voters, n, _maxVotes(next)) != _WON) return;
        _rings[taskId][round % RING] = w | _FINAL_BIT;
        _credit(t, taskId, round, committed, committed & ~voters, rows, h);
    }

    /// @dev Emits TaskCreated from storage (createTask has too many parameters for the stack).
    /// @dev Reverts InvalidExchangeTerms unless the codec is known and a kept share goes with
    /// exactly the sparse codecs (3 sparse16, 4 ternary).
    function _checkExchange(ExchangeTerms calldata e) private pure {
        bool sparse = e.codec == 3 || e.codec == 4;
        if (
            e.codec > 4 || e.compressionBps > 10000 || sparse != (e.compressionBps != 0) || e.partners >= MAX_MEMBERS
        ) revert InvalidExchangeTerms();
    }

    function _announce(uint256 taskId, Task storage t) private {
        emit TaskCreated(taskId, t.quorum, t.roundDuration, t.stake, t.slash, t.referee, t.validationDigest, t.modelId);
    }

    /// @dev The voter mask of vote hash `h` in `round` (`voted`: the round's voted mask, 0 while
    /// the leader word may still hold an older round's vector).
    function _votersOf(uint256 taskId, uint32 round, bytes32 h, uint256 voted) private view returns (uint256) {
        uint256 lead = _leaders[taskId][round % RING];
        if (voted != 0 && lead >> 64 == uint256(h) >> 64) return voted & ~lead & _MASK64;
        return _voters[taskId][h];
    }

    function _checkLanes(uint256[] calldata rows, uint256 committed) private pure {
        for (uint256 k; k < rows.length; ++k) {
            uint256 p = k << 4;
            for (uint256 x = rows[k]; x != 0; x >>= 16) {
                uint256 v = x & _LANE_MASK;
                if (v != 0) {
                    if ((committed >> p) & 1 == 0) revert PeerNotCommitted(p);
                    if (v > MAX_SCORE + 1 && v != FLAGGED) revert ScoreOutOfRange(v - 1);
                }
                ++p;
            }
        }
    }

    /// @dev Credits the winning vector `rows` (vote hash `h`) to the committers, slashes the
    /// deviant voters and the flagged members, and emits RoundFinalized.
    function _credit(
        Task storage t,
        uint256 taskId,
        uint32 round,
        uint256 committed,
        uint256 deviants,
        uint256[] calldata rows,
        bytes32 h
    ) private {
        (uint256[] memory credits, uint256 flagged, uint256 added) = _lanes(committed, deviants, rows);
        if (added != 0) {
            _addCredits(t, credits);
            t.totalContribution += uint40(added);
        }
        if (deviants | flagged != 0) _slash(t, taskId, round, deviants, flagged);
        emit RoundFinalized(taskId, round, CREDITED, h, credits, uint64(deviants), uint64(flagged));
    }

    /// @dev The credits (16-bit lanes, as in RoundFinalized) the winning vector gives the
    /// committers that are not deviants, the committers it flags, and the sum of the credits.
    function _lanes(uint256 committed, uint256 deviants, uint256[] calldata rows)
        private
        pure
        returns (uint256[] memory credits, uint256 flagged, uint256 added)
    {
        uint256 words = 1;
        while (committed >> (words << 4) != 0) ++words;
        credits = new uint256[](words);
        uint256 counted = committed & ~deviants;
        for (uint256 j; counted >> j != 0; ++j) {
            if ((counted >> j) & 1 == 0 || (j >> 4) >= rows.length) continue;
            uint256 v = (rows[j >> 4] >> ((j & 15) << 4)) & _LANE_MASK;
            if (v == FLAGGED) {
                flagged |= 1 << j;
            } else if (v != 0) {
                credits[j >> 4] |= (v - 1) << ((j & 15) << 4);
                added += v - 1;
            }
        }
    }

    /// @dev Adds 16-bit credit lanes to the contributions (eight 32-bit lanes per storage word):
    /// each touched word is read and written once.
    function _addCredits(Task storage t, uint256[] memory credits) private {
        for (uint256 k; k < credits.length << 1; ++k) {
            uint256 half = (credits[k >> 1] >> ((k & 1) << 7)) & ((1 << 128) - 1); // slots 8k..8k+7
            if (half == 0) continue;
            uint256 word = t.contributions[k];
            for (uint256 i; half >> (i << 4) != 0; ++i) {
                uint256 v = (half >> (i << 4)) & _LANE_MASK;
                // 32-bit lanes hold 429,496 rounds of full credit; past that, revert, not wrap.
                if (((word >> (i << 5)) & _MASK32) + v > _MASK32) revert ContributionOverflow((k << 3) + i);
                word += v << (i << 5);
            }
            t.contributions[k] = word;
        }
    }

    function _slash(Task storage t, uint256 taskId, uint32 round, uint256 deviants, uint256 flagged) private {
        uint256 offenders = deviants | flagged;
        uint256 slash = t.slash;
        uint256 taken;
        for (uint256 j; offenders >> j != 0; ++j) {
            if ((offenders >> j) & 1 == 0) continue;
            Account storage a = _accounts[taskId][j];
            uint256 amount = a.bond < slash ? a.bond : slash;
            a.bond -= uint96(amount);
            ++a.offences;
            taken += amount;
            emit Slashed(taskId, round, _memberAt[j], amount, (deviants >> j) & 1 != 0 ? DEVIANT : FLAGGED_UPDATE);
        }
        if (taken != 0) {
            t.pool += uint128(taken);
            t.slashedTotal += uint128(taken);
        }
    }

    function _updateReputation(Task storage t, uint256 taskId, uint256 j, uint256 total, uint256 participants) private {
        address member = _memberAt[j];
        Reputation storage r = _reputations[member];
        uint256 offences = _accounts[taskId][j].offences;
        uint256 score = r.tasks == 0 ? REPUTATION_AVERAGE : r.score;
        if (offences != 0) {
            score = (3 * score) / 4;
        } else if (total != 0) {
            uint256 relative = (_contribution(t, j) * participants * REPUTATION_AVERAGE) / total;
            if (relative > REPUTATION_CAP) relative = REPUTATION_CAP;
            score = (3 * score + relative) / 4;
        }
        r.score = uint32(score);
        r.tasks += 1;
        r.offences += uint32(offences);
        emit ReputationUpdated(member, taskId, uint32(score), r.tasks, r.offences);
    }

    /// @dev floor(received * c / total), settled at the last dust claim. withdraw, owed and
    /// claimDust all rest on this one formula.
    function _entitlement(Task storage t, uint256 taskId, uint256 idx) private view returns (uint256) {
        uint256 fresh = uint256(t.pool) + t.revenue - t.settledReceived;
        return _settled[taskId][idx] + (fresh * _contribution(t, idx)) / t.totalContribution;
    }

    function _contribution(Task storage t, uint256 j) private view returns (uint256) {
        return (t.contributions[j >> 3] >> ((j & 7) << 5)) & _MASK32;
    }

    function _activeMember(address who) private view returns (MemberInfo storage m) {
        m = _members[who];
        if (!m.active) revert NotMember(who);
    }

    function _task(uint256 taskId) private view returns (Task storage t) {
        t = _tasks[taskId];
        if (t.quorum == 0) revert UnknownTask(taskId);
    }

    function _openTask(uint256 taskId) private view returns (Task storage t) {
        t = _task(taskId);
        if (t.closed) revert TaskAlreadyClosed(taskId);
    }

    function _closedTask(uint256 taskId) private view returns (Task storage t) {
        t = _task(taskId);
        if (!t.closed) revert TaskNotClosed(taskId);
    }

    /// @dev The word of `round` (0 if its slot holds an older round); a recycled round is over.
    function _word(uint256[RING] storage ring, uint256 taskId, uint256 round) private view returns (uint256 w) {
        w = ring[round % RING];
        uint256 held = _roundOf(w);
        if (held > round) revert AlreadyFinalized(taskId, round);
        if (held != round) w = 0;
    }

    /// @dev The word holding the votes on `round` (the word of round + 1; 0 if none yet).
    function _votesOn(uint256[RING] storage ring, uint256 round) private view returns (uint256 next) {
        next = ring[(round + 1) % RING];
        if (_roundOf(next) != round + 1) next = 0;
    }

    /// @dev The word of `round`, taking over its slot from an older round if needed. The older
    /// round (and the round whose votes it holds) must be finalized, or their data would be lost.
    function _claim(uint256[RING] storage ring, uint256 taskId, uint256 round) private view returns (uint256 w) {
        w = ring[round % RING];
        uint256 held = _roundOf(w);
        if (held == round) return w;
        if (held > round) revert AlreadyFinalized(taskId, round);
        if (held != 0) {
            if (_committed(w) != 0 && !_finalized(w)) revert RoundsPending(held);
            uint256 prev = ring[(held - 1) % RING];
            if (_voted(w) != 0 && _roundOf(prev) == held - 1 && !_finalized(prev)) revert RoundsPending(held - 1);
        }
        return round << _ROUND_SHIFT;
    }

    function _committed(uint256 w) private pure returns (uint256) {
        return w & _MASK64;
    }

    function _voted(uint256 w) private pure returns (uint256) {
        return (w >> _VOTED_SHIFT) & _MASK64;
    }

    function _start(uint256 w) private pure returns (uint256) {
        return (w >> _START_SHIFT) & _MASK40;
    }

    function _roundOf(uint256 w) private pure returns (uint256) {
        return (w >> _ROUND_SHIFT) & _MASK32;
    }

    function _maxVotes(uint256 w) private pure returns (uint256) {
        return (w >> _MAXV_SHIFT) & 0x7F;
    }

    function _finalized(uint256 w) private pure returns (bool) {
        return w & _FINAL_BIT != 0;
    }

    function _send(address to, uint256 amount) private {
        (bool ok,) = payable(to).call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }

    /// @dev Number of set bits of a 64-bit mask (a loop costs about ten times as much at N = 8).
    function _popcount(uint256 x) private pure returns (uint256) {
        unchecked {
            x -= (x >> 1) & 0x5555555555555555;
            x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333);
            x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F;
            return ((x * 0x0101010101010101) >> 56) & 0xFF;
        }
    }
}
