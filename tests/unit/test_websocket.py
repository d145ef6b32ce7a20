"""The REST daemon's WebSocket (rapi/websocket.py): the handshake's checks and answer, frames
as a server must read them (masking, fragmentation, control frames, limits, close codes),
and a connection through the HTTP server's upgrade path, end to end on loopback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct

import pytest

from cardume.rapi import http, websocket
from cardume.rapi.websocket import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    Assembler,
    Frame,
    FrameParser,
    ProtocolError,
    encode_frame,
)

MASK = b"\x37\xfa\x21\x3d"


def masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return encode_frame(opcode, payload, fin, mask=MASK)


def headers(**extra: str) -> dict[str, str]:
    base = {"host": "h", "upgrade": "websocket", "connection": "keep-alive, Upgrade",
            "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="}
    base.update(extra)
    return base


# --- handshake ---------------------------------------------------------------------------


def test_handshake_answers_the_rfc_example() -> None:
    reply = websocket.handshake("GET", (1, 1), headers())
    assert reply["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 1.3
    assert reply["Upgrade"] == "websocket" and "Sec-WebSocket-Protocol" not in reply


def test_handshake_chooses_an_offered_subprotocol_it_knows() -> None:
    reply = websocket.handshake("GET", (1, 1), headers(**{"sec-websocket-protocol":
                                                           "chat, binary"}), ("binary",))
    assert reply["Sec-WebSocket-Protocol"] == "binary"


@pytest.mark.parametrize("method, change, status", [
    ("POST", {}, 400),
    ("GET", {"upgrade": "h2c"}, 426),
    ("GET", {"connection": "keep-alive"}, 400),
    ("GET", {"sec-websocket-version": "8"}, 426),
    ("GET", {"sec-websocket-key": "c2hvcnQ="}, 400),
    ("GET", {"sec-websocket-key": "not base64!!"}, 400),
])
def test_handshake_refusals(method: str, change: dict[str, str], status: int) -> None:
    with pytest.raises(websocket.HandshakeError) as caught:
        websocket.handshake(method, (1, 1), headers(**change))
    assert caught.value.status == status


# --- frames ----------------------------------------------------------------------------


def test_masked_frames_of_every_length_encoding_are_read_back() -> None:
    for size in (0, 5, 125, 126, 65535, 65536, 200_000):
        payload = os.urandom(size)
        [frame] = FrameParser().feed(masked(BINARY, payload))
        assert frame == Frame(True, BINARY, payload)


def test_frames_split_anywhere_are_read_whole() -> None:
    data = masked(TEXT, b"hello") + masked(BINARY, b"x" * 300)
    parser = FrameParser()
    frames = []
    for i in range(len(data)):
        frames += parser.feed(data[i:i + 1])
    assert [(f.opcode, f.payload) for f in frames] == [(TEXT, b"hello"), (BINARY, b"x" * 300)]


def test_masking_is_applied_on_the_wire() -> None:
    wire = masked(BINARY, b"secret")
    assert b"secret" not in wire and wire[1] & 0x80
    assert wire[2:6] == MASK


def test_a_server_frame_is_unmasked() -> None:
    assert encode_frame(BINARY, b"hi") == b"\x82\x02hi"
    assert encode_frame(BINARY, b"a" * 126)[:4] == b"\x82\x7e\x00\x7e"


@pytest.mark.parametrize("data, code", [
    (encode_frame(BINARY, b"unmasked"), 1002),                    # a client must mask
    (bytes([0x82 | 0x40, 0x80]) + MASK, 1002),                    # RSV1 without extension
    (bytes([0x83, 0x80]) + MASK, 1002),                           # opcode 3 is reserved
    (masked(PING, b"p" * 126), 1002),                             # control frame too big
    (masked(PING, b"", fin=False), 1002),                         # fragmented control
    (bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + MASK, 1002),  # top length bit
])
def test_bad_frames_are_protocol_errors(data: bytes, code: int) -> None:
    with pytest.raises(ProtocolError) as caught:
        FrameParser().feed(data)
    assert caught.value.code == code


def test_an_oversize_frame_is_refused_from_its_header() -> None:
    parser = FrameParser(max_frame=1000)
    head = masked(BINARY, b"y" * 1001)[:8]  # the header alone: nothing else was sent
    with pytest.raises(ProtocolError) as caught:
        parser.feed(head)
    assert caught.value.code == websocket.TOO_BIG


def test_fragments_are_joined_with_controls_between() -> None:
    asm = Assembler()
    frames = FrameParser().feed(masked(TEXT, "é".encode()[:1], fin=False)
                                + masked(PING, b"?")
                                + masked(CONT, "é".encode()[1:] + b"!", fin=True))
    got = [asm.add(f) for f in frames]
    assert got == [None, (PING, b"?"), (TEXT, "é!".encode())]


def test_fragmentation_errors() -> None:
    with pytest.raises(ProtocolError):
        Assembler().add(Frame(True, CONT, b"x"))            # nothing to continue
    asm = Assembler()
    asm.add(Frame(False, BINARY, b"x"))
    with pytest.raises(ProtocolError):
        asm.add(Frame(True, TEXT, b"y"))                    # a new message mid-way


def test_a_message_over_the_limit_is_too_big() -> None:
    asm = Assembler(max_message=10)
    asm.add(Frame(False, BINARY, b"x" * 6))
    with pytest.raises(ProtocolError) as caught:
        asm.add(Frame(True, CONT, b"x" * 6))
    assert caught.value.code == websocket.TOO_BIG


def test_text_must_be_utf8() -> None:
    with pytest.raises(ProtocolError) as caught:
        Assembler().add(Frame(True, TEXT, b"\xff\xfe"))
    assert caught.value.code == websocket.INVALID_DATA


def test_close_codes() -> None:
    assert websocket.parse_close(b"") == (websocket.NO_STATUS, "")
    assert websocket.parse_close(websocket.close_payload(1000, "bye")) == (1000, "bye")
    assert websocket.parse_close(struct.pack("!H", 4001)) == (4001, "")
    for bad in (1005, 1006, 1015, 999, 2000, 5000):
        with pytest.raises(ProtocolError):
            websocket.parse_close(struct.pack("!H", bad))
    with pytest.raises(ProtocolError):
        websocket.parse_close(b"\x03")
    long = websocket.close_payload(1011, "é" * 100)  # cut to 125 bytes, on a character
    assert len(long) <= 125 and websocket.parse_close(long)[0] == 1011


# --- a connection through the HTTP server --------------------------------------------------


async def _echo_server(**limits: int) -> tuple[http.HttpServer, int]:
    async def app(request: http.Request) -> http.Response:
        accept = websocket.handshake(request.method, request.version, request.headers)

        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      leftover: bytes) -> None:
            ws = websocket.WebSocket(reader, writer, leftover, **limits)
            try:
                while True:
                    opcode, data = await ws.receive()
                    await ws.send(data, text=opcode == TEXT)
            except websocket.Closed:
                pass
        return http.Response(101, b"", accept, content_type="", upgrade=run)

    server = http.HttpServer(app)
    listening = await server.start("127.0.0.1", 0, None)
    return server, listening.sockets[0].getsockname()[1]


async def _open(port: int, first: bytes = b"") -> tuple[asyncio.StreamReader,
                                                        asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = websocket.client_key()
    writer.write(f"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
                 + first)
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    assert head.startswith("HTTP/1.1 101 ")
    expected = base64.b64encode(hashlib.sha1((key + websocket.GUID).encode()).digest())
    assert f"Sec-WebSocket-Accept: {expected.decode()}" in head
    return reader, writer


async def _frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    assert not b1 & 0x80  # a server never masks
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(n)


def test_echo_ping_and_clean_close_over_the_server() -> None:
    async def scenario() -> None:
        server, port = await _echo_server()
        # a frame sent along with the handshake (before the 101) is not lost
        reader, writer = await _open(port, masked(BINARY, b"early"))
        try:
            assert await _frame(reader) == (BINARY, b"early")
            writer.write(masked(TEXT, b"hel", fin=False) + masked(PING, b"p1")
                         + masked(CONT, b"lo"))
            assert await _frame(reader) == (PONG, b"p1")
            assert await _frame(reader) == (TEXT, b"hello")
            writer.write(masked(CLOSE, websocket.close_payload(1000, "done")))
            assert await _frame(reader) == (CLOSE, struct.pack("!H", 1000))
            assert await reader.read() == b""  # then the server closes the connection
        finally:
            writer.close()
            await server.close()
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_oversize_and_unmasked_frames_close_with_their_codes() -> None:
    async def scenario() -> None:
        server, port = await _echo_server(max_frame=100)
        try:
            reader, writer = await _open(port)
            writer.write(masked(BINARY, b"z" * 101))
            opcode, body = await _frame(reader)
            assert opcode == CLOSE and websocket.parse_close(body)[0] == websocket.TOO_BIG
            writer.close()
            reader, writer = await _open(port)
            writer.write(encode_frame(BINARY, b"no mask"))
            opcode, body = await _frame(reader)
            assert opcode == CLOSE and websocket.parse_close(body)[0] == 1002
            writer.close()
        finally:
            await server.close()
    asyncio.run(asyncio.wait_for(scenario(), 10))
