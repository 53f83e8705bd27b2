// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title TestForwarder: moves native coin with contract calls ("internal transfers"),
///        the way smart-contract wallets and exchanges' batch withdrawals pay.
/// @notice For paymesh tests only: the listener must see value moved inside a
///         transaction, and must not count value whose call (or a caller) reverted.
contract TestForwarder {
    /// @notice Sends amounts[i] to to[i]. A send that fails is skipped: its value
    ///         stays in this contract and the transaction still succeeds.
    function split(address payable[] calldata to, uint256[] calldata amounts) external payable {
        require(to.length == amounts.length, "lengths differ");
        for (uint256 i = 0; i < to.length; i++) {
            (bool ok, ) = to[i].call{value: amounts[i]}("");
            ok; // a failed send is skipped on purpose
        }
    }

    /// @notice Calls `target` with all the value and `data`, ignoring whether it fails.
    function tryCall(address target, bytes calldata data) external payable {
        (bool ok, ) = target.call{value: msg.value}(data);
        ok; // ignored on purpose: a reverted call's transfers never happened
    }

    /// @notice Sends all the value to `to`, then reverts: the send is undone.
    function sendThenRevert(address payable to) external payable {
        (bool ok, ) = to.call{value: msg.value}("");
        require(ok, "send failed");
        revert("undone on purpose");
    }

    /// @notice Forces all the value into `to` through a contract that self-destructs
    ///         in its constructor (no call to `to` at all: the SELFDESTRUCT frame moves it).
    function destroyTo(address payable to) external payable {
        new Bomb{value: msg.value}(to);
    }
}

/// @notice Created with value, it self-destructs at once, sending that value to `to`.
contract Bomb {
    constructor(address payable to) payable {
        selfdestruct(to);
    }
}
