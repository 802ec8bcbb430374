"""Line framing and Docker stream demultiplexing: split writes, caps, odd bytes."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from mcpbox.relay.framing import DockerDemux, Line, LineFramer, Oversize


def feed_all(framer: LineFramer, chunks: list[bytes]) -> list[Line | Oversize]:
    out: list[Line | Oversize] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    return out + framer.close()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


lines_st = st.lists(st.binary(min_size=0, max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=12)


@given(lines=lines_st, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20))
def test_any_split_of_the_stream_gives_the_same_lines(lines: list[bytes], cuts: list[int]) -> None:
    data = b"".join(line + b"\n" for line in lines)
    frames = feed_all(LineFramer(limit=1000), split(data, cuts))
    assert frames == [Line(line + b"\n") for line in lines]


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_lines_over_the_cap_are_dropped_and_the_rest_survive(sizes: list[int], cuts: list[int]) -> None:
    limit = 100
    data = b"".join(b"x" * n + b"\n" for n in sizes)
    frames = feed_all(LineFramer(limit=limit), split(data, cuts))
    assert len(frames) == len(sizes)
    for size, frame in zip(sizes, frames, strict=True):
        if size > limit:
            assert isinstance(frame, Oversize)
            assert frame.size == size + 1
        else:
            assert frame == Line(b"x" * size + b"\n")


def test_oversize_never_buffers_the_whole_line() -> None:
    framer = LineFramer(limit=1024)
    for _ in range(1000):  # 64 MiB streamed through, no newline yet
        assert framer.feed(b"y" * 65536) == []
        assert len(framer._buf) == 0
    frames = framer.feed(b"\n{}\n")
    assert isinstance(frames[0], Oversize)
    assert frames[0].size == 1000 * 65536 + 1
    assert len(frames[0].prefix) <= 64 * 1024
    assert frames[1] == Line(b"{}\n")


def test_oversize_keeps_id_and_method_from_the_prefix() -> None:
    line = b'{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"x":"' + b"a" * 5000 + b'"}}\n'
    (frame,) = LineFramer(limit=100).feed(line)
    assert isinstance(frame, Oversize)
    assert frame.request_id() == "req-7"
    assert frame.method() == "tools/call"
    (numeric,) = LineFramer(limit=10).feed(b'{"id": 42, "result": "' + b"b" * 50 + b'"}\n')
    assert isinstance(numeric, Oversize)
    assert numeric.request_id() == 42
    assert numeric.method() is None


def test_last_line_without_newline_is_kept_at_close() -> None:
    framer = LineFramer(limit=100)
    assert framer.feed(b'{"a":1}') == []
    assert framer.close() == [Line(b'{"a":1}')]


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


@given(
    parts=st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=50)), max_size=10),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_demux_reassembles_frames_split_anywhere(parts: list[tuple[int, bytes]], cuts: list[int]) -> None:
    data = b"".join(frame(s, p) for s, p in parts)
    demux = DockerDemux()
    out: list[tuple[int, bytes]] = []
    for chunk in split(data, cuts):
        out += demux.feed(chunk)
    assert out == parts


def test_oversize_id_is_the_top_level_one_not_one_inside_params() -> None:
    line = (
        b'{"jsonrpc":"2.0","method":"tools/call","params":{"id":5,"a":[{"id":9}],"p":"' + b"z" * 500 + b'"},"id":7}\n'
    )
    (frame,) = LineFramer(limit=100).feed(line)
    assert isinstance(frame, Oversize)
    assert frame.request_id() == 7
    assert frame.method() == "tools/call"


def test_oversize_id_with_json_escapes_is_decoded() -> None:
    (frame,) = LineFramer(limit=20).feed(
        b'{"id":"a\\u00e9\\"b","method":"m\\/x","params":{"p":"' + b"q" * 100 + b'"}}\n'
    )
    assert isinstance(frame, Oversize)
    assert frame.request_id() == 'a\u00e9"b'
    assert frame.method() == "m/x"


def test_oversize_id_written_last_as_the_typescript_sdk_does() -> None:
    # TypeScript SDK: {...message, jsonrpc: "2.0", id} puts the id after a huge params/result.
    request = b'{"method":"tools/call","params":{"p":"' + b"x" * 200_000 + b'"},"jsonrpc":"2.0","id":42}\n'
    framer = LineFramer(limit=100)
    frames = [frame for i in range(0, len(request), 4096) for frame in framer.feed(request[i : i + 4096])]
    (frame,) = frames
    assert isinstance(frame, Oversize)
    assert frame.request_id() == 42
    assert frame.method() == "tools/call"
    (response,) = LineFramer(limit=100).feed(b'{"result":{"t":"' + b"y" * 500 + b'"},"jsonrpc":"2.0","id":"r\\"1"}\r\n')
    assert isinstance(response, Oversize)
    assert response.request_id() == 'r"1'
    (nested,) = LineFramer(limit=100).feed(b'{"result":{"t":"' + b"y" * 500 + b'","id":5}}\n')
    assert isinstance(nested, Oversize)
    assert nested.request_id() is None  # an id closing a nested object is not the message's
