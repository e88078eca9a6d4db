"""Hand-made hostile traffic for both edges, shared by the tests and scripts/abuse.py.

Thrift: calls whose headers declare sizes the bytes never back (a list of
2**31 - 1 strings in a ~60-byte frame, a 2 GiB string, a 1 GiB frame), on each
protocol the server speaks. HTTP: heads that never end.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from baseplate.thrift.ttypes import IsHealthyProbe, IsHealthyRequest
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.protocol.THeaderProtocol import THeaderProtocol
from thrift.Thrift import TMessageType, TType
from thrift.transport.THeaderTransport import THeaderClientType, THeaderSubprotocolID
from thrift.transport.TTransport import TMemoryBuffer

from tests.conftest import connect_thrift

HUGE = 2**31 - 1


def _list_bomb(p: Any) -> None:
    """``update_inbox`` whose ``package_ids`` list claims ``HUGE`` strings."""
    p.writeMessageBegin("update_inbox", TMessageType.CALL, 1)
    p.writeStructBegin("args")
    p.writeFieldBegin("request", TType.STRUCT, 1)
    p.writeStructBegin("UpdateInboxRequest")
    p.writeFieldBegin("recipient_id", TType.STRING, 1)
    p.writeString("alice")
    p.writeFieldEnd()
    p.writeFieldBegin("package_ids", TType.LIST, 3)
    p.writeListBegin(TType.STRING, HUGE)
    p.writeString("pkg-1")


def _string_bomb(p: Any) -> None:
    """``update_inbox`` whose ``recipient_id`` claims ``HUGE`` bytes."""
    p.writeMessageBegin("update_inbox", TMessageType.CALL, 1)
    p.writeStructBegin("args")
    p.writeFieldBegin("request", TType.STRUCT, 1)
    p.writeStructBegin("UpdateInboxRequest")
    p.writeFieldBegin("recipient_id", TType.STRING, 1)
    p.writeI32(HUGE)
    p.trans.write(b"alice")


def unframed_binary(write: Callable[[Any], None]) -> bytes:
    buffer = TMemoryBuffer()
    write(TBinaryProtocol(buffer))
    return buffer.getvalue()


def framed_binary(write: Callable[[Any], None]) -> bytes:
    payload = unframed_binary(write)
    return struct.pack("!i", len(payload)) + payload


def header_compact(write: Callable[[Any], None]) -> bytes:
    """As baseplate's own client pool sends: THeader around the compact protocol."""
    buffer = TMemoryBuffer()
    protocol = THeaderProtocol(
        buffer, [THeaderClientType.HEADERS], default_protocol=THeaderSubprotocolID.COMPACT
    )
    write(protocol)
    protocol.trans.flush()
    return buffer.getvalue()


def header_zlib() -> bytes:
    """A THeader frame asking for the zlib transform (a small frame, unbounded expansion)."""
    buffer = TMemoryBuffer()
    protocol = THeaderProtocol(buffer, [THeaderClientType.HEADERS])
    protocol.trans.add_transform(0x01)
    _list_bomb(protocol)
    protocol.trans.flush()
    return buffer.getvalue()


FRAME_BOMB = struct.pack("!i", 0x3FFFFFF0) + b"\x80\x01\x00\x01"  # declares 1 GiB, sends 4 bytes

THRIFT_BOMBS = {
    "framed list of 2**31 strings": framed_binary(_list_bomb),
    "unframed list of 2**31 strings": unframed_binary(_list_bomb),
    "header+compact list of 2**31 strings": header_compact(_list_bomb),
    "framed string of 2 GiB": framed_binary(_string_bomb),
    "unframed string of 2 GiB": unframed_binary(_string_bomb),
    "frame of 1 GiB": FRAME_BOMB,
    "header zlib transform": header_zlib(),
}


def closed_by_server(sock: socket.socket, seconds: float) -> bool:
    """Whether the peer closes ``sock`` within ``seconds`` (anything it sends is read past)."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionError:
        return True
    except TimeoutError:
        return False
    return False


def is_healthy_seconds(host: str, port: int, calls: int) -> list[float]:
    """How long each of ``calls`` is_healthy calls took on one connection."""
    client, transport = connect_thrift(host, port)
    request = IsHealthyRequest(probe=IsHealthyProbe.LIVENESS)
    took = []
    try:
        for _ in range(calls):
            start = time.perf_counter()
            assert client.is_healthy(request) is True
            took.append(time.perf_counter() - start)
    finally:
        transport.close()
    return took


def memory_kib(pid: int) -> dict[str, int]:
    """A process's VmSize and VmRSS, in KiB (empty when it is gone)."""
    sizes = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmSize", "VmRSS", "VmPeak", "VmHWM"):
                sizes[name] = int(value.split()[0])
    except OSError:
        pass
    return sizes


def unfinished_head(host: str, port: int, header_lines: int, line_bytes: int) -> socket.socket:
    """A connection that sent a request line and many long header lines, never the end."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    line = b"X-Pad: " + b"a" * (line_bytes - 9) + b"\r\n"
    try:
        for _ in range(header_lines):
            sock.sendall(line)
    except OSError:
        pass  # refused and closed part-way: what the server should do
    return sock
