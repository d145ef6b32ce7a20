"""WebSocket (RFC 6455), server side, with the standard library: the opening handshake's
checks and answer, a frame parser that holds clients to limits, and a connection that
reassembles messages, answers pings and closes cleanly.

The parser (:class:`FrameParser`) does no I/O, so it is tested byte by byte. What a client
sends is checked as the RFC requires of a server: every frame masked, reserved bits clear
(no extension is negotiated), known opcodes, control frames unfragmented and at most 125
bytes, a close code that may travel on the wire, text that is UTF-8; a frame or a message
larger than the limits ends the connection with 1009. Any violation is a
:class:`ProtocolError` carrying the close code to send.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import hashlib
import os
import struct
from dataclasses import dataclass

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DATA_OPCODES = (CONT, TEXT, BINARY)
CONTROL_OPCODES = (CLOSE, PING, PONG)

NORMAL, GOING_AWAY, PROTOCOL_ERROR, UNSUPPORTED = 1000, 1001, 1002, 1003
NO_STATUS, ABNORMAL, INVALID_DATA, POLICY, TOO_BIG, INTERNAL = 1005, 1006, 1007, 1008, 1009, 1011
# codes an endpoint may put in a close frame (1005, 1006 and 1015 are only for reporting)
_SENDABLE = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}

MAX_FRAME = 1024 * 1024
MAX_MESSAGE = 4 * 1024 * 1024


class ProtocolError(Exception):
    """The peer broke the protocol or a limit: close with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class HandshakeError(Exception):
    """An upgrade request that is not a valid WebSocket opening: answer ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()  # noqa: S324 (RFC 6455)
    return base64.b64encode(digest).decode("ascii")


def _tokens(value: str) -> set[str]:
    return {t.strip().lower() for t in value.split(",") if t.strip()}


def handshake(method: str, version: tuple[int, int], headers: dict[str, str],
              protocols: tuple[str, ...] = ()) -> dict[str, str]:
    """The response headers accepting a client's opening handshake (``headers`` with
    lower-case names), or a HandshakeError saying what is wrong. A subprotocol the client
    offers that is in ``protocols`` is chosen (noVNC offers "binary")."""
    if method != "GET" or version < (1, 1):
        raise HandshakeError(400, "a WebSocket opens with an HTTP/1.1 GET")
    if "websocket" not in _tokens(headers.get("upgrade", "")):
        raise HandshakeError(426, "this address speaks WebSocket only (Upgrade: websocket "
                                  "is missing)")
    if "upgrade" not in _tokens(headers.get("connection", "")):
        raise HandshakeError(400, "Connection: Upgrade is missing")
    if headers.get("sec-websocket-version", "").strip() != "13":
        raise HandshakeError(426, "WebSocket version 13 is the only one supported")
    key = headers.get("sec-websocket-key", "").strip()
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key must be 16 bytes in base64")
    reply = {"Upgrade": "websocket", "Connection": "Upgrade",
             "Sec-WebSocket-Accept": accept_key(key)}
    offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")
               if p.strip()]
    chosen = next((p for p in offered if p in protocols), None)
    if chosen is not None:
        reply["Sec-WebSocket-Protocol"] = chosen
    return reply


# --- frames --------------------------------------------------------------------------------


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes


def mask_bytes(data: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte mask, repeated (masking and unmasking are the same)."""
    if not data:
        return b""
    n = len(data)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes, fin: bool = True,
                 mask: bytes | None = None) -> bytes:
    """One frame; ``mask`` (4 bytes) is for clients (a server sends unmasked frames)."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head.append(bit | n)
    elif n < 1 << 16:
        head.append(bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(bit | 127)
        head += struct.pack("!Q", n)
    if mask is not None:
        if len(mask) != 4:
            raise ValueError("a mask is 4 bytes")
        return bytes(head) + mask + mask_bytes(payload, mask)
    return bytes(head) + payload


def close_payload(code: int, reason: str = "") -> bytes:
    """A close frame's body: the code, then the reason cut to fit 125 bytes in all."""
    data = reason.encode("utf-8")[:123]
    while True:
        try:
            data.decode("utf-8")
            break
        except UnicodeDecodeError:  # a character cut in two
            data = data[:-1]
    return struct.pack("!H", code) + data


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a received close frame (1005 for an empty one)."""
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolError(PROTOCOL_ERROR, "a close frame's body is at least its 2-byte code")
    code = struct.unpack("!H", payload[:2])[0]
    if code not in _SENDABLE and not 3000 <= code <= 4999:
        raise ProtocolError(PROTOCOL_ERROR, f"close code {code} may not be sent")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(INVALID_DATA, "a close reason must be UTF-8") from None
    return code, reason


class FrameParser:
    """Frames out of the bytes a client sends, checked as a server must check them."""

    def __init__(self, max_frame: int = MAX_FRAME, require_mask: bool = True) -> None:
        self.max_frame = max_frame
        self.require_mask = require_mask
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        frames: list[Frame] = []
        while True:
            frame = self._one()
            if frame is None:
                return frames
            frames.append(frame)

    def _one(self) -> Frame | None:
        buf = self.buffer
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        fin, opcode = bool(b0 & 0x80), b0 & 0x0F
        if b0 & 0x70:
            raise ProtocolError(PROTOCOL_ERROR, "reserved bits set (no extension was agreed)")
        if opcode not in DATA_OPCODES and opcode not in CONTROL_OPCODES:
            raise ProtocolError(PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        masked, length = bool(b1 & 0x80), b1 & 0x7F
        if self.require_mask and not masked:
            raise ProtocolError(PROTOCOL_ERROR, "a client's frames must be masked")
        pos = 2
        if opcode in CONTROL_OPCODES and (length > 125 or not fin):
            raise ProtocolError(PROTOCOL_ERROR, "control frames are unfragmented and at "
                                                "most 125 bytes")
        if length == 126:
            if len(buf) < 4:
                return None
            length = struct.unpack("!H", buf[2:4])[0]
            pos = 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length = struct.unpack("!Q", buf[2:10])[0]
            if length >> 63:
                raise ProtocolError(PROTOCOL_ERROR, "frame length's top bit is set")
            pos = 10
        if length > self.max_frame:
            raise ProtocolError(TOO_BIG, f"frame of {length} bytes is larger than the "
                                         f"{self.max_frame} allowed")
        mask = b""
        if masked:
            if len(buf) < pos + 4:
                return None
            mask = bytes(buf[pos:pos + 4])
            pos += 4
        if len(buf) < pos + length:
            return None
        payload = bytes(buf[pos:pos + length])
        del buf[:pos + length]
        return Frame(fin, opcode, mask_bytes(payload, mask) if masked else payload)


class Assembler:
    """Messages out of frames: fragments joined (at most ``max_message`` bytes), control
    frames passed through between them, text checked to be UTF-8."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._opcode: int | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._utf8 = codecs.getincrementaldecoder("utf-8")()

    def add(self, frame: Frame) -> tuple[int, bytes] | None:
        """A whole message (opcode, payload), a control frame, or None while fragments
        are still coming."""
        if frame.opcode in CONTROL_OPCODES:
            return frame.opcode, frame.payload
        if frame.opcode == CONT:
            if self._opcode is None:
                raise ProtocolError(PROTOCOL_ERROR, "a continuation frame with no message "
                                                    "to continue")
        elif self._opcode is not None:
            raise ProtocolError(PROTOCOL_ERROR, "a new message began before the last one "
                                                "ended")
        else:
            self._opcode = frame.opcode
            self._utf8.reset()
        self._size += len(frame.payload)
        if self._size > self.max_message:
            raise ProtocolError(TOO_BIG, f"message larger than the {self.max_message} "
                                         "bytes allowed")
        if self._opcode == TEXT:
            try:
                self._utf8.decode(frame.payload, final=frame.fin)
            except UnicodeDecodeError:
                raise ProtocolError(INVALID_DATA, "a text message must be UTF-8") from None
        self._parts.append(frame.payload)
        if not frame.fin:
            return None
        opcode, data = self._opcode, b"".join(self._parts)
        self._opcode, self._parts, self._size = None, [], 0
        return opcode, data


# --- a connection ------------------------------------------------------------------------


class Closed(Exception):
    """The connection is closed; ``code`` and ``reason`` are the peer's (or ours)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"closed ({code}) {reason}".strip())
        self.code = code
        self.reason = reason


class WebSocket:
    """A server's side of an open WebSocket over a stream pair. :meth:`receive` gives data
    messages (pings are answered, pongs dropped); a close from the peer is answered and
    raises :class:`Closed`; a protocol error closes with its code and raises Closed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 leftover: bytes = b"", max_frame: int = MAX_FRAME,
                 max_message: int = MAX_MESSAGE, write_timeout: float = 60.0) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = FrameParser(max_frame)
        self.assembler = Assembler(max_message)
        self.write_timeout = write_timeout
        self.closed: Closed | None = None
        self._pending: list[tuple[int, bytes]] = []
        self._leftover = leftover
        self._lock = asyncio.Lock()

    async def receive(self) -> tuple[int, bytes]:
        """The next data message: (TEXT or BINARY, payload)."""
        while True:
            if self.closed is not None:
                raise self.closed
            if self._pending:
                opcode, payload = self._pending.pop(0)
                if opcode == PING:
                    await self._send(PONG, payload)
                    continue
                if opcode == PONG:
                    continue
                if opcode == CLOSE:
                    await self._answer_close(payload)
                    continue
                return opcode, payload
            data, self._leftover = self._leftover, b""
            if not data:
                try:
                    data = await self.reader.read(65536)
                except (ConnectionError, OSError):
                    data = b""
                if not data:
                    self.closed = Closed(ABNORMAL, "the connection was lost")
                    raise self.closed
            try:
                for frame in self.parser.feed(data):
                    message = self.assembler.add(frame)
                    if message is not None:
                        self._pending.append(message)
            except ProtocolError as err:
                await self.close(err.code, err.reason)
                raise Closed(err.code, err.reason) from None

    async def _answer_close(self, payload: bytes) -> None:
        try:
            code, reason = parse_close(payload)
        except ProtocolError as err:
            await self.close(err.code, err.reason)
            return
        await self.close(NORMAL if code == NO_STATUS else code, "")
        assert self.closed is not None
        self.closed = Closed(code, reason)

    async def send(self, data: bytes, text: bool = False) -> None:
        if self.closed is not None:
            raise self.closed
        await self._send(TEXT if text else BINARY, data)

    async def ping(self, data: bytes = b"") -> None:
        await self._send(PING, data)

    async def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Send a close frame (once) and end the connection."""
        if self.closed is not None:
            return
        self.closed = Closed(code, reason)
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await self._send(CLOSE, close_payload(code, reason), force=True)
        self.writer.close()

    async def _send(self, opcode: int, payload: bytes, force: bool = False) -> None:
        if self.closed is not None and not force:
            raise self.closed
        async with self._lock:
            self.writer.write(encode_frame(opcode, payload))
            await asyncio.wait_for(self.writer.drain(), self.write_timeout)


def client_key() -> str:
    """A fresh Sec-WebSocket-Key (for clients and tests)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")
