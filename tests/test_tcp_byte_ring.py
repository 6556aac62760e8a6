"""ByteRing against the plain bytearray it replaces, as a model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trionet.tcp.byte_ring import INITIAL_CAPACITY, ByteRing

LIMIT = 5 * INITIAL_CAPACITY + 123  # not a power of two: the last growth is capped
_ops = st.lists(
    st.tuples(
        st.sampled_from(["append", "append_view", "drop", "copy", "clear"]),
        st.integers(0, LIMIT),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(_ops, st.data())
def test_behaves_like_a_bytearray(ops: list[tuple[str, int]], data: st.DataObject) -> None:
    buf = ByteRing(LIMIT)
    model = bytearray()
    counter = 0
    peak = 0  # the ring grows past LIMIT only to hold what it was given
    for op, size in ops:
        if op in ("append", "append_view"):
            chunk = bytes((counter + i) % 251 for i in range(size))
            counter += size
            buf.append(memoryview(bytearray(chunk)) if op == "append_view" else chunk)
            model += chunk
        elif op == "drop":
            n = min(size, len(model))
            buf.drop(n)
            del model[:n]
        elif op == "clear":
            buf.clear()
            model.clear()
        else:
            start = data.draw(st.integers(0, len(model)))
            end = data.draw(st.integers(start, len(model)))
            assert buf.copy(start, end) == model[start:end]
            assert bytes(buf.view(start, end)) == model[start:end]
        peak = max(peak, len(model))
        assert len(buf) == len(model)
        assert len(model) <= buf.capacity
        assert buf.capacity <= max(LIMIT, peak)
        assert bool(buf) == bool(model)


def test_the_ring_starts_small_and_grows_only_as_far_as_the_limit() -> None:
    buf = ByteRing(1 << 20)
    buf.append(b"x" * 10)
    assert buf.capacity == INITIAL_CAPACITY
    for _ in range(40):  # a steady stream through a small window: no growth
        buf.append(b"y" * 1000)
        buf.drop(1000)
    assert buf.capacity == INITIAL_CAPACITY
    buf.append(b"z" * 600_000)
    assert buf.capacity == 1 << 20
    buf.clear()
    assert buf.capacity == 0


def test_a_view_is_the_ring_itself_and_a_copy_is_not() -> None:
    buf = ByteRing(1 << 16)
    buf.append(b"a" * 3000)
    view, copy = buf.view(0, 1000), buf.copy(0, 1000)
    assert isinstance(view, memoryview) and isinstance(copy, bytes)
    buf.drop(3000)  # acknowledged: the space is reused by newer bytes
    buf.append(b"b" * 4096)
    assert bytes(view) == b"b" * 1000  # why a view must be written out first
    assert copy == b"a" * 1000


def test_reserve_and_commit_fill_the_ring_in_place_around_the_wrap() -> None:
    buf = ByteRing(4 * INITIAL_CAPACITY)
    buf.append(b"a" * 3000)
    buf.drop(2000)  # head at 2000, 1000 queued, tail at 3000
    room = buf.reserve(2000)
    assert len(room) == INITIAL_CAPACITY - 3000  # contiguous: up to the end
    room[:] = b"b" * len(room)
    buf.commit(len(room))
    rest = buf.reserve(2000 - len(room))  # wraps to the front, before the head
    assert len(rest) == 2000 - (INITIAL_CAPACITY - 3000)
    rest[:] = b"c" * len(rest)
    buf.commit(len(rest))
    assert buf.copy(0, len(buf)) == b"a" * 1000 + b"b" * 1096 + b"c" * 904
    assert buf.capacity == INITIAL_CAPACITY
    grown = buf.reserve(INITIAL_CAPACITY)  # more than fits: the ring grows first
    assert len(grown) == INITIAL_CAPACITY and buf.capacity == 2 * INITIAL_CAPACITY


def test_front_is_a_view_of_the_oldest_bytes_up_to_the_wrap() -> None:
    buf = ByteRing(INITIAL_CAPACITY)
    buf.append(b"a" * 4000)
    buf.drop(3000)
    buf.append(b"b" * 2000)  # 1000 at the end of the ring, 1000 after the wrap
    first = buf.front(5000)
    assert bytes(first) == b"a" * 1000 + b"b" * 96  # up to the end of the ring
    first.release()
    buf.drop(1096)
    assert bytes(buf.front(100)) == b"b" * 100
    assert len(buf.front(10_000)) == 1904
