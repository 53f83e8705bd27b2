"""chains.yaml loading: errors name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.chains import ChainConfigError, load_chains

REPO = Path(__file__).resolve().parents[2]

GOOD = """chains:
  - chain_id: 1
    name: mainnet
    rpc_url: ${RPC_URL}
    ws_url: ${WS_URL:-}
    confirmations: 12
    block_time_seconds: 12
    tokens:
      - {symbol: USDC, address: "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", decimals: 6}
"""


def test_repo_chains_file_loads():
    chains = load_chains(REPO / "chains.yaml", env={})
    anvil = chains.get(31337)
    assert anvil is not None and anvil.asset("TUSD") is not None and anvil.rpc_url.startswith("http://127.0.0.1")


def test_env_expansion_and_checksums(tmp_path):
    path = tmp_path / "chains.yaml"
    path.write_text(GOOD)
    chains = load_chains(path, env={"RPC_URL": "https://rpc.example/key"})
    chain = chains.get(1)
    assert chain.rpc_url == "https://rpc.example/key" and chain.ws_url == ""
    assert chain.asset("usdc").token_address == "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
    assert chain.asset("ETH").token_address is None
    # The symbol of what a transfer moved, by token address (any case), "" when not listed.
    assert chain.symbol_of(None) == "ETH" and chain.symbol_of("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48") == "USDC"
    assert chain.symbol_of("0x0000000000000000000000000000000000000001") == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ""),
        ("off", ""),
        ("false", ""),
        ("debug_trace", "debug_trace"),
        ("trace_block", "trace_block"),
    ],
)
def test_internal_transfers_methods(tmp_path, value, expected):
    path = tmp_path / "chains.yaml"
    path.write_text(GOOD.replace("name: mainnet", f"name: mainnet\n    internal_transfers: {value}"))
    assert load_chains(path, env={"RPC_URL": "http://x"}).get(1).internal_transfers == expected
    path.write_text(GOOD)
    assert load_chains(path, env={"RPC_URL": "http://x"}).get(1).internal_transfers == ""


def test_l1_data_fee(tmp_path):
    path = tmp_path / "chains.yaml"
    path.write_text(GOOD.replace("name: mainnet", "name: mainnet\n    l1_data_fee: op_stack"))
    assert load_chains(path, env={"RPC_URL": "http://x"}).get(1).l1_data_fee == "op_stack"
    path.write_text(GOOD)
    assert load_chains(path, env={"RPC_URL": "http://x"}).get(1).l1_data_fee == ""


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (GOOD, {}, "chains[0].rpc_url: environment variable RPC_URL is not set"),
        (GOOD.replace("confirmations: 12", "confirmations: 0"), {"RPC_URL": "http://x"}, "chains[0].confirmations"),
        (
            GOOD.replace("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", "0x123"),
            {"RPC_URL": "http://x"},
            "chains[0].tokens[0].address",
        ),
        (GOOD.replace("${RPC_URL}", "ftp://x"), {}, "chains[0].rpc_url"),
        (
            GOOD
            + "  - chain_id: 1\n    name: dup\n    rpc_url: http://y\n    confirmations: 1\n"
            + "    block_time_seconds: 1\n",
            {"RPC_URL": "http://x"},
            "appears more than once",
        ),
        ("chains: [", {}, "not valid YAML"),
        ("- 1\n- 2\n", {}, "expected a mapping"),
        (GOOD.replace("name: mainnet", "name: mainnet\n    colour: blue"), {"RPC_URL": "http://x"}, "chains[0].colour"),
        (
            GOOD.replace("name: mainnet", "name: mainnet\n    internal_transfers: tracing"),
            {"RPC_URL": "http://x"},
            "chains[0].internal_transfers",
        ),
        (
            GOOD.replace("name: mainnet", "name: mainnet\n    l1_data_fee: arbitrum"),
            {"RPC_URL": "http://x"},
            "chains[0].l1_data_fee",
        ),
        # Several providers: an empty list, a duplicate URL, a weight of 0, both forms at once.
        (
            GOOD.replace("rpc_url: ${RPC_URL}", "rpc: []"),
            {},
            "chains[0] (chain 1, mainnet): rpc: the list of endpoints is empty",
        ),
        (
            GOOD.replace("rpc_url: ${RPC_URL}", "rpc: [{url: 'http://a'}, {url: 'http://a'}]"),
            {},
            "rpc: the URL 'http://a' appears more than once",
        ),
        (GOOD.replace("rpc_url: ${RPC_URL}", "rpc: [{url: 'http://a', weight: 0}]"), {}, "chains[0].rpc[0].weight"),
        (
            GOOD.replace("rpc_url: ${RPC_URL}", "rpc_url: http://a\n    rpc: [{url: 'http://b'}]"),
            {},
            "give rpc_url (one provider) or rpc (a list), not both",
        ),
        (
            GOOD.replace("name: mainnet", "name: mainnet\n    confirmation_agreement: true"),
            {"RPC_URL": "http://x"},
            "confirmation_agreement needs two or more endpoints",
        ),
    ],
)
def test_errors_name_file_and_field(tmp_path, text, env, message):
    path = tmp_path / "chains.yaml"
    path.write_text(text)
    with pytest.raises(ChainConfigError) as err:
        load_chains(path, env=env)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ChainConfigError, match="file not found"):
        load_chains(tmp_path / "nope.yaml")


@pytest.mark.parametrize("value", ["0", "-2"])
def test_confirmations_below_one_is_refused_saying_what_one_means(tmp_path, value):
    path = tmp_path / "chains.yaml"
    path.write_text(GOOD.replace("confirmations: 12", f"confirmations: {value}"))
    with pytest.raises(ChainConfigError) as err:
        load_chains(path, env={"RPC_URL": "http://x"})
    message = str(err.value)
    assert message.startswith(f"{path}: chains[0].confirmations (chain 1, mainnet): must be 1 or more, got {value}")
    assert "the block that includes a transfer is its first confirmation" in message
    assert "1 counts a transfer as soon as it is mined" in message and "instant finality" in message


def test_one_confirmation_is_accepted(tmp_path):
    path = tmp_path / "chains.yaml"
    path.write_text(GOOD.replace("confirmations: 12", "confirmations: 1"))
    assert load_chains(path, env={"RPC_URL": "http://x"}).get(1).confirmations == 1


def test_several_providers_and_the_single_url_form_fill_each_other(tmp_path):
    path = tmp_path / "chains.yaml"
    path.write_text(
        GOOD.replace("rpc_url: ${RPC_URL}", "rpc: [{url: 'http://a', weight: 2, requests_per_second: 25}, 'http://b']")
    )
    chain = load_chains(path, env={}).get(1)
    assert chain.rpc_url == "http://a" and [(e.url, e.weight) for e in chain.rpc] == [("http://a", 2), ("http://b", 1)]
    assert chain.rpc[0].requests_per_second == 25
    path.write_text(GOOD)
    chain = load_chains(path, env={"RPC_URL": "http://x"}).get(1)
    assert [e.url for e in chain.rpc] == ["http://x"] and chain.max_head_lag_blocks == 5
