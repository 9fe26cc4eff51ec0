// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// Test-only member contracts that attack the ledger's payout paths.

interface ILedger {
    function bond(uint256 taskId) external payable;
    function commit(uint256 taskId, uint32 round, bytes32 digest, uint32 epsilonMilli) external;
    function vote(uint256 taskId, uint32 round, bytes32 model, uint256[] calldata rows) external;
    function withdraw(uint256 taskId) external returns (uint256);
    function reclaimStake(uint256 taskId) external returns (uint256);
}

/// A member that acts through the ledger like a node would.
abstract contract MemberContract {
    ILedger public immutable ledger;

    constructor(ILedger ledger_) {
        ledger = ledger_;
    }

    function bond(uint256 taskId) external payable {
        ledger.bond{value: msg.value}(taskId);
    }

    function commit(uint256 taskId, uint32 round, bytes32 digest, uint32 epsilonMilli) external {
        ledger.commit(taskId, round, digest, epsilonMilli);
    }

    function vote(uint256 taskId, uint32 round, bytes32 model, uint256[] calldata rows) external {
        ledger.vote(taskId, round, model, rows);
    }

    function withdraw(uint256 taskId) external virtual {
        ledger.withdraw(taskId);
    }

    function reclaimStake(uint256 taskId) external virtual {
        ledger.reclaimStake(taskId);
    }
}

/// Re-enters withdraw and reclaimStake from receive() (up to 3 times each payment), swallowing
/// failures so that its own first call still succeeds: it must end up with exactly what it is owed.
contract ReentrantReceiver is MemberContract {
    uint256 public taskId;
    uint256 public attempts;
    uint256 public successes;
    uint256 public received;

    constructor(ILedger ledger_) MemberContract(ledger_) {}

    function withdraw(uint256 taskId_) external override {
        taskId = taskId_;
        ledger.withdraw(taskId_);
    }

    function reclaimStake(uint256 taskId_) external override {
        taskId = taskId_;
        ledger.reclaimStake(taskId_);
    }

    receive() external payable {
        received += msg.value;
        if (attempts < 3) {
            ++attempts;
            (bool ok,) = address(ledger).call(abi.encodeCall(ILedger.withdraw, (taskId)));
            if (ok) ++successes;
            (ok,) = address(ledger).call(abi.encodeCall(ILedger.reclaimStake, (taskId)));
            if (ok) ++successes;
        }
    }
}

/// Refuses every payment: its own withdrawal fails, nobody else's may.
contract RevertingReceiver is MemberContract {
    constructor(ILedger ledger_) MemberContract(ledger_) {}

    receive() external payable {
        revert("RevertingReceiver: no thanks");
    }
}
