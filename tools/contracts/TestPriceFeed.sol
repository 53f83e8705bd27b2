// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.24;

/// @title TestPriceFeed: a STAND-IN for a Chainlink price feed, for tests on anvil only.
/// @notice It answers AggregatorV3Interface's read calls (decimals, description,
/// latestRoundData, getRoundData) like a real feed, but anyone can set its answer
/// and timestamps: never deploy it where money depends on it.
contract TestPriceFeed {
    uint8 public immutable decimals;
    string public description;
    uint256 public constant version = 4;

    uint80 private _roundId;
    int256 private _answer;
    uint256 private _startedAt;
    uint256 private _updatedAt;
    uint80 private _answeredInRound;

    constructor(uint8 decimals_, string memory description_, int256 answer_) {
        decimals = decimals_;
        description = description_;
        setAnswer(answer_);
    }

    /// A new round with this answer, updated now.
    function setAnswer(int256 answer_) public {
        setRound(_roundId + 1, answer_, block.timestamp, _roundId + 1);
    }

    /// Any round, for tests of stale and incomplete feeds.
    function setRound(uint80 roundId_, int256 answer_, uint256 updatedAt_, uint80 answeredInRound_) public {
        _roundId = roundId_;
        _answer = answer_;
        _startedAt = updatedAt_;
        _updatedAt = updatedAt_;
        _answeredInRound = answeredInRound_;
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return (_roundId, _answer, _startedAt, _updatedAt, _answeredInRound);
    }

    function getRoundData(uint80) external view returns (uint80, int256, uint256, uint256, uint80) {
        return (_roundId, _answer, _startedAt, _updatedAt, _answeredInRound);
    }
}
