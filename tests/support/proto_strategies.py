"""Hypothesis strategies for arbitrary protobuf messages, built from descriptors.

`messages(descriptor, hints)` draws any message of that type: each field set or
left unset; strings with NUL, other control characters, odd code points and
lengths around the API's limits; integers over the whole range of the field's
type (with the boundaries and the values a hint names); enums including
numbers the enum does not define; Timestamps and Durations in and out of
range, with nanos of either sign; repeated fields and maps of a few entries;
sub-messages to a bounded depth. `hints` are values worth trying because they
exist (ids of stored rows, a configured chain), by field name: a field with
hints takes one of them most of the time and an arbitrary value otherwise, so
most requests are plausible but for a field or two, and get past NOT_FOUND
and the first format check to the code that stores things. A field without
hints (any field of an RPC added later) is arbitrary; each oneof sets at most
one member.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

F = FieldDescriptor

ODD_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x00" * 3,
    "\t",
    "\r\n",
    "line\nbreak",
    "\x1b[31m",
    "\x7f",
    "\u0085",
    "\u2028",
    "\ufeff",
    "\ufffd",
    "\U0001f4a5",
    "é",
    "\u202e",
    "' OR 1=1 --",
    "%s%n",
    "../../etc/passwd",
    "%00",
    "\\x00",
]
LENGTHS = [16, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513, 2048, 2049, 5000]

INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}
SMALL = [0, 1, 2, 9, 10, 11, 49, 50, 59, 60, 500, 501, 3600, 3601, 31337, 8453, 10**9]
EDGES = [2**31 - 1, 2**31, 2**32 - 1, 2**53, 2**63 - 1, 2**63, 2**64 - 1, -1, -2, -(2**31), -(2**63)]

TS_MIN, TS_MAX = -62_135_596_800, 253_402_300_799
DUR_MAX = 315_576_000_000
SECONDS = [
    0,
    1,
    -1,
    59,
    60,
    61,
    3600,
    86_400 * 30,
    86_400 * 31,
    TS_MIN,
    TS_MIN - 1,
    TS_MAX,
    TS_MAX + 1,
    DUR_MAX,
    DUR_MAX + 1,
    -DUR_MAX,
    -DUR_MAX - 1,
    2**62,
    2**63 - 1,
    -(2**63),
    1_700_000_000,
    1_900_000_000,
    4_000_000_000,
]
NANOS = [0, 1, -1, 999_999_999, 1_000_000_000, -999_999_999, -1_000_000_000, 2**31 - 1, -(2**31)]


@dataclass
class Hints:
    """Values worth trying besides arbitrary ones: by field name (`chain_id`,
    `payment_id`, ...), and strings tried in any string field."""

    by_field: dict[str, list[Any]] = field(default_factory=dict)
    strings: list[str] = field(default_factory=list)


def strings(hints: Hints) -> st.SearchStrategy[str]:
    options = [
        st.sampled_from(ODD_STRINGS),
        st.text(max_size=40),
        st.text(st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=8),
        st.builds(lambda n, c: c * n, st.sampled_from(LENGTHS), st.sampled_from(["a", "é", "\U0001f4a5", "\x00"])),
    ]
    if hints.strings:
        known = st.sampled_from(hints.strings)
        options.append(known)
        options.append(st.builds(lambda s, odd: s + odd, known, st.sampled_from(ODD_STRINGS)))
    return st.one_of(*options)


def integers(kind: int) -> st.SearchStrategy[int]:
    low, high = INT_RANGES[kind]
    return st.one_of(
        st.sampled_from([v for v in SMALL if low <= v <= high]),
        st.sampled_from([v for v in EDGES if low <= v <= high]),
        st.integers(low, high),
    )


def _seconds_nanos(low: int, high: int) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(
        st.one_of(st.sampled_from(SECONDS), st.integers(low, high), st.integers(-(2**63), 2**63 - 1)),
        st.one_of(st.sampled_from(NANOS), st.integers(-(2**31), 2**31 - 1)),
    )


class MessageStrategies:
    """Strategies for the messages of one descriptor pool, with shared hints."""

    def __init__(self, hints: Hints, max_depth: int = 3) -> None:
        self.hints = hints
        self.max_depth = max_depth
        self._cache: dict[tuple[str, int], st.SearchStrategy[Any]] = {}

    def messages(self, descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
        key = (descriptor.full_name, depth)
        if key not in self._cache:
            self._cache[key] = self._messages(descriptor, depth)
        return self._cache[key]

    def _messages(self, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Any]:
        cls = message_factory.GetMessageClass(descriptor)
        name = descriptor.full_name
        if name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
            low, high = (TS_MIN, TS_MAX) if name.endswith("Timestamp") else (-DUR_MAX, DUR_MAX)
            return _seconds_nanos(low, high).map(lambda sn: cls(seconds=sn[0], nanos=sn[1]))
        required: dict[str, st.SearchStrategy[Any]] = {}
        optional: dict[str, st.SearchStrategy[Any]] = {}
        if depth < self.max_depth:
            groups: dict[str, list[FieldDescriptor]] = {}
            for fd in descriptor.fields:
                if fd.containing_oneof is not None:
                    groups.setdefault(fd.containing_oneof.name, []).append(fd)
                elif fd.name in self.hints.by_field:
                    required[fd.name] = self._field(fd, depth)
                else:
                    optional[fd.name] = self._field(fd, depth)
            for name, members in groups.items():  # at most one member of a oneof
                optional[f"oneof {name}"] = st.one_of(
                    *[st.tuples(st.just(fd.name), self._field(fd, depth)) for fd in members]
                )
        return st.fixed_dictionaries(required, optional=optional).map(lambda values: _build(cls, descriptor, values))

    def _field(self, fd: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        hinted = self.hints.by_field.get(fd.name)
        arbitrary = self._arbitrary(fd, depth)
        if not hinted:
            return arbitrary
        known = st.sampled_from(hinted)
        if fd.is_repeated:
            known = st.lists(known, min_size=1, max_size=3)
        # A known value about three times in four (st.one_of would not weigh: it drops repeated branches).
        return st.tuples(st.integers(0, 3), known, arbitrary).map(lambda t: t[2] if t[0] == 3 else t[1])

    def _arbitrary(self, fd: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        if fd.type == F.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry:
            entry = fd.message_type
            keys = self._scalar(entry.fields_by_name["key"], depth + 1)
            values = self._scalar(entry.fields_by_name["value"], depth + 1)
            return st.one_of(
                st.dictionaries(keys, values, max_size=4), st.dictionaries(keys, values, min_size=30, max_size=40)
            )
        one = self._scalar(fd, depth + 1)
        if fd.is_repeated:
            return st.lists(one, max_size=4)
        return one

    def _scalar(self, fd: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        t = fd.type
        if t == F.TYPE_STRING:
            return strings(self.hints)
        if t == F.TYPE_BYTES:
            return st.one_of(st.binary(max_size=64), st.just(b"\x00"))
        if t in INT_RANGES:
            return integers(t)
        if t == F.TYPE_BOOL:
            return st.booleans()
        if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
            return st.floats(width=64 if t == F.TYPE_DOUBLE else 32)
        if t == F.TYPE_ENUM:
            known = [v.number for v in fd.enum_type.values]
            return st.one_of(
                st.sampled_from(known),
                st.sampled_from([-1, max(known) + 1, 2**31 - 1, -(2**31)]),
                st.integers(-(2**31), 2**31 - 1),
            )
        if t in (F.TYPE_MESSAGE, F.TYPE_GROUP):
            return st.deferred(lambda: self.messages(fd.message_type, depth))
        raise AssertionError(f"no strategy for field {fd.full_name} of type {t}")


def _build(cls: type, descriptor: Descriptor, values: dict[str, Any]) -> Any:
    message = cls()
    for name, value in values.items():
        if name.startswith("oneof "):
            name, value = value
        fd = descriptor.fields_by_name[name]
        target = getattr(message, name) if fd.is_repeated or fd.type == F.TYPE_MESSAGE else None
        if fd.type == F.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry:
            if fd.message_type.fields_by_name["value"].type == F.TYPE_MESSAGE:
                for key, item in value.items():
                    target[key].CopyFrom(item)
            else:
                target.update(value)
        elif fd.is_repeated:
            if fd.type == F.TYPE_MESSAGE:
                for item in value:
                    target.add().CopyFrom(item)
            else:
                target.extend(value)
        elif fd.type == F.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(message, name, value)  # a oneof member set later replaces an earlier one
    return message
