"""request_check: the rules every request meets before a servicer sees it, with
the field's path in the message; unset fields and valid values pass."""

from __future__ import annotations

import importlib
import pkgutil

import paymesh
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as ipb
from paymesh.notifier.v1 import notifier_service_pb2 as npb

from services.common.errors import InvalidArgument
from services.common.request_check import check_request

MAX = 2**63 - 1


def problem(message) -> str | None:
    try:
        check_request(message)
    except InvalidArgument as exc:
        return exc.message
    return None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            spb.CreatePaymentRequest(merchant_order_id="a\x00b"),
            "merchant_order_id contains a NUL character (U+0000); remove it",
        ),
        (
            spb.CreatePaymentRequest(metadata={"k": "v\x00"}),
            'metadata["k"] contains a NUL character (U+0000); remove it',
        ),
        (
            spb.CreatePaymentRequest(metadata={"k\x00": "v"}),
            'metadata key "k\\u0000" contains a NUL character (U+0000); remove it',
        ),
        (spb.CreatePaymentRequest(metadata={"x" * 100: "\x00"}), f'metadata["{"x" * 64}..."] contains a NUL'),
        (spb.CreatePaymentRequest(idempotency_key="\x00"), "idempotency_key contains a NUL"),
        (spb.ListPaymentsRequest(page_token="abc\x00"), "page_token contains a NUL"),
        (
            apb.CreateMerchantRequest(treasuries=[apb.Treasury(address="0x1"), apb.Treasury(address="\x00")]),
            "treasuries[1].address contains a NUL",
        ),
        (
            ipb.RecordSweepTransactionRequest(transaction=ipb.SweepTransaction(error="e\x00")),
            "transaction.error contains a NUL",
        ),
        (
            spb.ListPaymentsRequest(chain_id=2**64 - 1),
            "chain_id 18446744073709551615 is larger than 9223372036854775807 "
            "(2^63-1, the largest integer the ledger stores)",
        ),
        (spb.ListPaymentsRequest(chain_id=MAX + 1), f"chain_id {MAX + 1} is larger than {MAX}"),
        (apb.SetTreasuryRequest(treasury=apb.Treasury(chain_id=MAX + 1)), f"treasury.chain_id {MAX + 1} is larger"),
        (ipb.RecordSweepTransactionRequest(transaction=ipb.SweepTransaction(nonce=MAX + 1)), "transaction.nonce"),
        (
            spb.CreatePaymentRequest(expires_at=Timestamp(seconds=253_402_300_800)),
            "expires_at is outside 0001-01-01..9999-12-31 (seconds=253402300800; a Timestamp's seconds must be "
            "-62135596800 to 253402300799)",
        ),
        (
            spb.ListPaymentsRequest(created_after=Timestamp(seconds=-62_135_596_801)),
            "created_after is outside 0001-01-01..9999-12-31",
        ),
        (
            spb.ListPaymentsRequest(created_before=Timestamp(nanos=-1)),
            "created_before.nanos is -1; it must be 0 to 999999999",
        ),
        (spb.ListPaymentsRequest(created_before=Timestamp(nanos=10**9)), "created_before.nanos is 1000000000"),
        (
            spb.CreatePaymentRequest(expires_in=Duration(seconds=315_576_000_001)),
            "expires_in is outside ±315576000000 seconds (10,000 years), the range of a Duration; "
            "got seconds=315576000001",
        ),
        (
            spb.CreatePaymentRequest(expires_in=Duration(seconds=-315_576_000_001)),
            "expires_in is outside ±315576000000",
        ),
        (
            spb.CreatePaymentRequest(expires_in=Duration(seconds=1, nanos=10**9)),
            "expires_in.nanos is 1000000000; it must be -999999999 to 999999999",
        ),
        (
            spb.CreatePaymentRequest(expires_in=Duration(seconds=3600, nanos=-1)),
            "expires_in has seconds 3600 and nanos -1 of different signs; "
            "both must be >= 0, or both <= 0 for a negative duration",
        ),
        (spb.CreatePaymentRequest(expires_in=Duration(seconds=-1, nanos=5)), "expires_in has seconds -1 and nanos 5"),
        (
            spb.ListPaymentsRequest(statuses=[1, 42]),
            "statuses[1] is 42, which is not a PaymentStatus value; use one of "
            "PAYMENT_STATUS_UNSPECIFIED, PAYMENT_STATUS_PENDING",
        ),
        (npb.ListDeliveriesRequest(state=-3), "state is -3, which is not a DeliveryState value"),
        (
            ipb.RecordSweepTransactionRequest(transaction=ipb.SweepTransaction(kind=7)),
            "transaction.kind is 7, which is not a SweepTransactionKind value",
        ),
    ],
)
def test_rule_and_path(message, expected):
    found = problem(message)
    assert found is not None and found.startswith(expected), found


@pytest.mark.parametrize(
    "message",
    [
        spb.CreatePaymentRequest(),
        spb.CreatePaymentRequest(
            chain_id=31337,
            asset="ETH",
            amount="1",
            merchant_order_id="tab\there, line\nbreak\r",
            metadata={"note": "\x01\x1f\x7f\u2028 odd but storable", "": ""},
            idempotency_key="k",
        ),
        spb.CreatePaymentRequest(expires_at=Timestamp(seconds=-62_135_596_800)),
        spb.CreatePaymentRequest(expires_at=Timestamp(seconds=253_402_300_799, nanos=999_999_999)),
        spb.CreatePaymentRequest(expires_in=Duration(seconds=315_576_000_000, nanos=999_999_999)),
        spb.CreatePaymentRequest(expires_in=Duration(seconds=-315_576_000_000, nanos=-999_999_999)),
        spb.CreatePaymentRequest(expires_in=Duration(seconds=0, nanos=-5)),
        spb.ListPaymentsRequest(chain_id=MAX, statuses=[0, 9]),
        ipb.RecordSweepTransactionRequest(transaction=ipb.SweepTransaction(raw_tx=b"\x00\x00", nonce=MAX)),
        spb.CreatePaymentRequest(merchant_order_id="\u0000".replace("\u0000", "") + "U+0000 written out"),
    ],
)
def test_valid_values_pass(message):
    assert problem(message) is None


def test_first_problem_in_field_order():
    message = spb.CreatePaymentRequest(chain_id=2**64 - 1, asset="\x00", idempotency_key="\x00")
    assert problem(message).startswith("chain_id ")


def _dynamic_types():
    """A message type with what the API's protos do not use yet: maps with integer keys and
    message values, repeated Timestamps, fixed64, recursion."""
    f = descriptor_pb2.FileDescriptorProto(
        name="check_test.proto", package="check.test", syntax="proto3", dependency=["google/protobuf/timestamp.proto"]
    )
    node = f.message_type.add(name="Node")
    L = T = descriptor_pb2.FieldDescriptorProto
    node.field.add(name="label", number=1, type=T.TYPE_STRING, label=L.LABEL_OPTIONAL)
    node.field.add(name="child", number=2, type=T.TYPE_MESSAGE, type_name=".check.test.Node", label=L.LABEL_OPTIONAL)
    node.field.add(name="big", number=3, type=T.TYPE_FIXED64, label=L.LABEL_OPTIONAL)
    node.field.add(
        name="times", number=4, type=T.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp", label=L.LABEL_REPEATED
    )
    for name, number, key, value, value_type in [
        ("by_id", 5, T.TYPE_UINT64, T.TYPE_STRING, None),
        ("nodes", 6, T.TYPE_STRING, T.TYPE_MESSAGE, ".check.test.Node"),
    ]:
        entry = node.nested_type.add(name=name.title().replace("_", "") + "Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=key, label=L.LABEL_OPTIONAL)
        entry.field.add(
            name="value",
            number=2,
            type=value,
            label=L.LABEL_OPTIONAL,
            **({"type_name": value_type} if value_type else {}),
        )
        node.field.add(
            name=name,
            number=number,
            type=T.TYPE_MESSAGE,
            label=L.LABEL_REPEATED,
            type_name=f".check.test.Node.{entry.name}",
        )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(Timestamp.DESCRIPTOR.file.serialized_pb)
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("check.test.Node"))


def test_walks_maps_of_messages_integer_keys_repeated_messages_and_recursion():
    Node = _dynamic_types()
    assert problem(Node(child=Node(child=Node(label="ok")))) is None
    assert problem(Node(child=Node(child=Node(label="\x00")))).startswith("child.child.label contains a NUL")
    assert problem(Node(big=2**64 - 1)).startswith("big 18446744073709551615 is larger")
    n = Node()
    n.times.add()
    n.times.add(nanos=-1)
    assert problem(n).startswith("times[1].nanos is -1")
    assert problem(Node(by_id={2**63: "x"})).startswith("by_id key 9223372036854775808 is larger")
    assert problem(Node(by_id={7: "x\x00"})).startswith("by_id[7] contains a NUL")
    n = Node()
    n.nodes["a"].child.label = "\x00"
    assert problem(n).startswith('nodes["a"].child.label contains a NUL')


def test_every_request_type_of_the_api_compiles_and_passes_empty():
    count = 0
    for module in pkgutil.walk_packages(paymesh.__path__, "paymesh."):
        if not module.name.endswith("_pb2"):
            continue
        for service in importlib.import_module(module.name).DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert problem(message_factory.GetMessageClass(method.input_type)()) is None
                count += 1
    assert count >= 35
