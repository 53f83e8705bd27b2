"""The checks every gRPC request goes through before its servicer sees it.

`ErrorAndMetrics` (grpc_server.py) calls `check_request` on every decoded
request of every RPC of every service, unary and streaming, so what is checked
here is checked once, where requests enter, and no use case repeats it. It walks
the message generically through its descriptor, so a field or an RPC added later
is covered without a line here. The rules are the ones whose breach is never a
valid request for any field, because Postgres, the datetime converters or the
storage would refuse it and the caller would get INTERNAL:

- a string (anywhere: fields, repeated fields, map keys and values) containing
  U+0000: Postgres `text`/`varchar`/`jsonb` cannot store it;
  `<path> contains a NUL character (U+0000); remove it`.
  NUL is the only character refused here. Other C0 controls (tab, CR, LF, ...)
  are legal in free text such as a cancel reason or metadata values and are
  stored as they are; fields with a format (ids, addresses, hashes, URLs) are
  held to it by their own use case, which refuses controls with the rest.
- a `google.protobuf.Timestamp` outside 0001-01-01T00:00:00Z ..
  9999-12-31T23:59:59.999999999Z or with nanos outside 0..999,999,999 (what
  Timestamp itself defines; `ToDatetime` raises beyond it);
  `<path> is outside 0001-01-01..9999-12-31 (seconds=...)`,
  `<path>.nanos is ...; it must be 0 to 999999999`.
- a `google.protobuf.Duration` beyond ±315,576,000,000 s (10,000 years), with
  nanos outside ±999,999,999, or with nanos of the other sign than seconds
  (`ToTimedelta` would silently add them up);
  `<path> is outside ±315576000000 seconds ...`, `<path> has seconds ... and
  nanos ... of different signs ...`.
- a 64-bit unsigned integer (uint64, fixed64) above 2^63-1: Postgres BIGINT is
  signed; `<path> 18446744073709551615 is larger than 9223372036854775807 ...`.
  Every other integer type fits BIGINT; ranges that matter (page sizes, lease
  seconds, ...) are each use case's business.
- an enum value the enum does not define (proto3 keeps unknown numbers):
  `<path> is 42, which is not a PaymentStatus value; use one of ...`. Whether
  the zero (UNSPECIFIED) value is acceptable is the use case's business.

Paths name the field as the caller wrote it: `merchant_order_id`,
`treasuries[0].address`, `metadata["k"]`, `metadata key "k\\u0000"`,
`transaction.chain_id`. The first problem found is reported (fields in field
number order). Lengths are not checked here: each field's limit is part of its
use case's contract (the proto comments), and the server's 4 MiB message limit
bounds the rest. Bytes, bools and floating-point fields are never checked.

Why not protovalidate: its rules are annotations (buf/validate/validate.proto)
on each field; no rule says "every string of the API", so each request string
would need its own `string.pattern` or CEL rule and a field added without one
would be unchecked; Timestamp ranges, uint64 against BIGINT and defined enum
values are likewise per-field opt-ins. protovalidate 2.1 (its native engine,
tried in a scratch virtualenv) took ~5 µs on the typical CreatePaymentRequest
below with no rules at all (and so found nothing), about what this module
takes to check everything; it would also bring buf's validate protos into
protos/ and gen/. These five rules need none of that: a plan per message type
(compiled once, cached), then only the fields `ListFields()` reports as set
cost anything.

Cost (bench/bench_request_check.py: timeit on requests decoded from the wire,
best of 5, this 2-core machine shared with other work): a typical
CreatePaymentRequest (chain, asset, amount, expires_in, order id, idempotency
key, 3 metadata entries) ~6 µs per check, a minimal one (chain, asset, amount)
~1.4 µs, an empty request ~0.9 µs. Most of it is upb's ListFields() and map
iteration; reading every field by name instead was measured at best ~40 %
faster for CreatePaymentRequest and pays for unset fields. The ledger spends
~590 µs of CPU per CreatePayment at its ~1,700/s, so the check costs ~1 % of it.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from services.common.errors import InvalidArgument

INT64_MAX = 2**63 - 1
TIMESTAMP_MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
TIMESTAMP_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
DURATION_MAX_SECONDS = 315_576_000_000  # 10,000 years
NANOS_MAX = 999_999_999

# What a field is checked for (small ints: compared with `==` in the walk).
_STRING, _UINT64, _ENUM, _TIMESTAMP, _DURATION, _MESSAGE = range(6)

_Rule = tuple[int, bool, Any]  # (kind, repeated, extra: enum numbers / map entry rules / None)
_Plan = dict[FieldDescriptor, _Rule]

_by_name: dict[str, _Plan] = {}  # compiled once per message type
_by_type: dict[type, _Plan] = {}  # the same plans, found by the message's class


def check_request(message: Any) -> None:
    """Raise InvalidArgument naming the first field that breaks a rule above."""
    problem = _walk(message)
    if problem is not None:
        raise InvalidArgument(problem)


def _compile(descriptor: Descriptor, compiling: frozenset[str] = frozenset()) -> _Plan:
    """field -> rule, for the fields of `descriptor` that a rule applies to."""
    compiling = compiling | {descriptor.full_name}
    plan: _Plan = {}
    for fd in descriptor.fields:
        if fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry:
            entry = fd.message_type
            key = _rule(entry.fields_by_name["key"], compiling)
            value = _rule(entry.fields_by_name["value"], compiling)
            if key is not None or value is not None:
                plan[fd] = (_MESSAGE, True, (key, value))  # a map: extra holds its entries' rules
            continue
        rule = _rule(fd, compiling)
        if rule is not None:
            plan[fd] = (rule[0], fd.is_repeated, rule[1])
    return plan


def _rule(fd: FieldDescriptor, compiling: frozenset[str]) -> tuple[int, Any] | None:
    t = fd.type
    if t == FieldDescriptor.TYPE_STRING:
        return _STRING, None
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return _UINT64, None
    if t == FieldDescriptor.TYPE_ENUM:
        return _ENUM, fd.enum_type
    if t in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
        name = fd.message_type.full_name
        if name == "google.protobuf.Timestamp":
            return _TIMESTAMP, None
        if name == "google.protobuf.Duration":
            return _DURATION, None
        if name in compiling:  # a recursive type: always walked
            return _MESSAGE, None
        plan = _by_name.get(name)
        if plan is None:
            plan = _by_name[name] = _compile(fd.message_type, compiling)
        if plan:  # a message type with nothing to check is never walked
            return _MESSAGE, None
    return None


# The walk builds no path while all is well: a check returns None, or the
# problem as "<path below here><what is wrong>", and each level prepends its
# field's name on the way back up.


def _walk(message: Any) -> str | None:
    plan = _by_type.get(type(message))
    if plan is None:
        name = message.DESCRIPTOR.full_name
        plan = _by_name.get(name)
        if plan is None:
            plan = _by_name[name] = _compile(message.DESCRIPTOR)
        _by_type[type(message)] = plan
    if not plan:
        return None
    for fd, value in message.ListFields():
        rule = plan.get(fd)
        if rule is None:
            continue
        kind, repeated, extra = rule
        if not repeated:
            if kind == _STRING:  # the common case, inline
                if "\x00" in value:
                    return fd.name + _NUL
                continue
            problem = _one(kind, extra, value)
            if problem is not None:
                return fd.name + problem
        elif kind == _MESSAGE and extra is not None:
            problem = _map(extra, value)
            if problem is not None:
                return fd.name + problem
        else:
            for i, item in enumerate(value):
                problem = _one(kind, extra, item)
                if problem is not None:
                    return f"{fd.name}[{i}]{problem}"
    return None


_NUL = " contains a NUL character (U+0000); remove it"


def _one(kind: int, extra: Any, value: Any) -> str | None:
    if kind == _STRING:
        if "\x00" in value:
            return _NUL
    elif kind == _UINT64:
        if value > INT64_MAX:
            return f" {value} is larger than {INT64_MAX} (2^63-1, the largest integer the ledger stores)"
    elif kind == _ENUM:
        if extra.values_by_number.get(value) is None:
            names = ", ".join(v.name for v in extra.values)
            return f" is {value}, which is not a {extra.name} value; use one of {names}"
    elif kind == _MESSAGE:
        problem = _walk(value)
        return None if problem is None else "." + problem
    elif kind == _TIMESTAMP:
        return _timestamp(value)
    elif kind == _DURATION:
        return _duration(value)
    return None


def _map(rules: tuple, entries: Any) -> str | None:
    key_rule, value_rule = rules
    for key in entries:
        if key_rule is not None:
            problem = _one(key_rule[0], key_rule[1], key)
            if problem is not None:  # an integer's problem names the number itself
                return f" key{problem}" if key_rule[0] == _UINT64 else f" key {_shown_key(key)}{problem}"
        if value_rule is not None:
            problem = _one(value_rule[0], value_rule[1], entries[key])
            if problem is not None:
                return f"[{_shown_key(key)}]{problem}"
    return None


def _shown_key(key: Any) -> str:
    if isinstance(key, str):
        return json.dumps(key if len(key) <= 64 else key[:64] + "...")
    return str(key)


def _timestamp(value: Any) -> str | None:
    seconds, nanos = value.seconds, value.nanos
    if not TIMESTAMP_MIN_SECONDS <= seconds <= TIMESTAMP_MAX_SECONDS:
        return (
            f" is outside 0001-01-01..9999-12-31 (seconds={seconds}; "
            f"a Timestamp's seconds must be {TIMESTAMP_MIN_SECONDS} to {TIMESTAMP_MAX_SECONDS})"
        )
    if not 0 <= nanos <= NANOS_MAX:
        return f".nanos is {nanos}; it must be 0 to {NANOS_MAX}"
    return None


def _duration(value: Any) -> str | None:
    seconds, nanos = value.seconds, value.nanos
    if not -DURATION_MAX_SECONDS <= seconds <= DURATION_MAX_SECONDS:
        return (
            f" is outside ±{DURATION_MAX_SECONDS} seconds (10,000 years), the range of a Duration; "
            f"got seconds={seconds}"
        )
    if not -NANOS_MAX <= nanos <= NANOS_MAX:
        return f".nanos is {nanos}; it must be -{NANOS_MAX} to {NANOS_MAX}"
    if (seconds > 0 and nanos < 0) or (seconds < 0 and nanos > 0):
        return (
            f" has seconds {seconds} and nanos {nanos} of different signs; "
            "both must be >= 0, or both <= 0 for a negative duration"
        )
    return None
