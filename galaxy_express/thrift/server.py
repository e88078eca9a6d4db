"""baseplate's Thrift server with limits: no message can make it allocate, hang or pile up.

baseplate's server speaks THeader (with a binary or compact payload), framed
binary and unframed binary on one port, and sets no limit anywhere: a 63-byte
frame whose list header claims 2**31 strings made the decoder reserve 17 GB
of address space and froze the worker for seconds; half-sent and idle
connections were held forever. Here, on every protocol it speaks:

- a frame (or, unframed, the bytes of one call) over ``max_message_size`` is
  refused before it is read, and a string or container over
  ``max_string_length`` / ``max_container_length`` before it is allocated
  (fastbinary, the C decoder, reads both limits from the protocol object);
- the socket is read in chunks of at most 64 KiB, whatever size a header
  declares, so nothing reserves memory for bytes that never arrive;
- a connection idle for ``idle_timeout`` between calls, or a call not read
  whole within ``message_timeout`` of its first byte, is closed;
- THeader's zlib transform is refused: a small frame could expand without
  bound (baseplate's own clients never ask for it);
- at most ``max_connections`` connections are served at once; the next ones
  wait in the listen backlog until one closes.

A refused connection is closed (a limit can't be answered in the middle of a
message) and logged at WARNING; other callers are not slowed.
"""

from __future__ import annotations

import datetime
import logging
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from baseplate.lib import config
from baseplate.server import runtime_monitor
from baseplate.server.thrift import GeventServer
from gevent.pool import Pool
from gevent.server import StreamServer
from thrift.protocol.TCompactProtocol import readVarint
from thrift.protocol.THeaderProtocol import THeaderProtocol
from thrift.Thrift import TException
from thrift.transport.THeaderTransport import THeaderClientType, THeaderTransport
from thrift.transport.TTransport import TMemoryBuffer, TTransportBase, TTransportException

from galaxy_express.core.cooperation import let_the_sockets_in

logger = logging.getLogger(__name__)

RECV_CHUNK = 65536
# Where THeader's transform count sits: magic, flags, sequence id, header size.
_HEADER_FIXED_BYTES = 10
ACCEPTED_CLIENTS = (
    THeaderClientType.HEADERS,
    THeaderClientType.FRAMED_BINARY,
    THeaderClientType.UNFRAMED_BINARY,
)


@dataclass(frozen=True)
class ThriftLimits:
    """The ``[server:thrift]`` limits; the defaults are the documented ones."""

    max_message_size: int = 1024 * 1024
    # 16,384 characters (the longest text field) of 4-byte UTF-8.
    max_string_length: int = 65536
    max_container_length: int = 10000
    # Longer than baseplate's client pools keep a connection (120 s), so a
    # pooled client never picks a connection the server already closed.
    idle_timeout: float = 150.0
    message_timeout: float = 10.0
    max_connections: int = 1000


SPEC = {
    "max_message_size": config.Optional(config.Integer, default=ThriftLimits.max_message_size),
    "max_string_length": config.Optional(config.Integer, default=ThriftLimits.max_string_length),
    "max_container_length": config.Optional(
        config.Integer, default=ThriftLimits.max_container_length
    ),
    "idle_timeout": config.Optional(
        config.Timespan, default=datetime.timedelta(seconds=ThriftLimits.idle_timeout)
    ),
    "message_timeout": config.Optional(
        config.Timespan, default=datetime.timedelta(seconds=ThriftLimits.message_timeout)
    ),
    "max_connections": config.Optional(config.Integer, default=ThriftLimits.max_connections),
    "stop_timeout": config.Optional(
        config.TimespanWithLegacyFallback, default=datetime.timedelta(seconds=10)
    ),
}


def parse_limits(server_config: dict[str, str]) -> tuple[ThriftLimits, float]:
    """The limits and the stop timeout (seconds) of a ``[server:thrift]`` section."""
    raw = config.parse_config(server_config, SPEC)
    limits = ThriftLimits(
        max_message_size=raw.max_message_size,
        max_string_length=raw.max_string_length,
        max_container_length=raw.max_container_length,
        idle_timeout=raw.idle_timeout.total_seconds(),
        message_timeout=raw.message_timeout.total_seconds(),
        max_connections=raw.max_connections,
    )
    numbers = (limits.max_message_size, limits.max_string_length, limits.max_container_length)
    if min(numbers) < 1 or limits.max_connections < 1:
        raise ValueError("[server:thrift] sizes and max_connections must be positive")
    if limits.max_message_size >= 0x3FFFFFFF:
        raise ValueError("[server:thrift] max_message_size must be under 1 GiB")
    return limits, raw.stop_timeout.total_seconds()


def make_server(server_config: dict[str, str], listener: socket.socket, app: Any) -> StreamServer:
    """The ``[server:thrift]`` factory: baseplate's server, limited."""
    limits, stop_timeout = parse_limits(server_config)
    pool = Pool(size=limits.max_connections)
    server = LimitedThriftServer(limits, processor=app, listener=listener, spawn=pool)
    server.stop_timeout = stop_timeout
    runtime_monitor.start(server_config, app, pool)
    return server


class LimitedThriftServer(GeventServer):
    def __init__(self, limits: ThriftLimits, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transport_factory = _SocketTransportFactory(limits)
        self.protocol_factory = _LimitedProtocolFactory(limits)

    def handle(self, client_socket: socket.socket, address: Any) -> None:
        # baseplate's handle closes the connection on any error and swallows
        # transport errors (timeouts and our size refusals among them); what
        # else the bytes of a call can raise is a refusal too, not a crash.
        try:
            super().handle(client_socket, address)
        except TException as refused:
            logger.warning("closed a Thrift connection from %s: %s", address, refused)
        except (struct.error, ValueError, TypeError, OverflowError, MemoryError) as refused:
            logger.warning("closed a Thrift connection from %s: %r", address, refused)


class _SocketTransportFactory:
    def __init__(self, limits: ThriftLimits) -> None:
        self.limits = limits

    def getTransport(self, client: Any) -> _SocketTransport:  # noqa: N802 (Thrift's name)
        return _SocketTransport(client.handle, self.limits)


class _SocketTransport(TTransportBase):
    """A buffered socket with per-call deadlines and a per-call byte budget.

    A call starts with its first byte after the previous answer was sent:
    until then the idle timeout runs, from then the message timeout, and the
    bytes received count against ``max_message_size`` (that covers unframed
    clients, whose calls have no declared size).
    """

    def __init__(self, sock: socket.socket, limits: ThriftLimits) -> None:
        self._socket: socket.socket | None = sock
        self._limits = limits
        self._buffer = b""
        self._written: list[bytes] = []
        self._new_call()

    def _new_call(self) -> None:
        self._deadline = time.monotonic() + self._limits.idle_timeout
        self._call_started = False
        self._received = 0

    def isOpen(self) -> bool:  # noqa: N802 (Thrift's name)
        return self._socket is not None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def read(self, sz: int) -> bytes:
        if sz < 0:
            raise TTransportException(TTransportException.NEGATIVE_SIZE, "negative read")
        if not self._buffer:
            self._buffer = self._receive(min(max(sz, 4096), RECV_CHUNK))
        data, self._buffer = self._buffer[:sz], self._buffer[sz:]
        return data

    def _receive(self, size: int) -> bytes:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TTransportException(TTransportException.TIMED_OUT, self._late())
        try:
            data = self._open_socket(remaining).recv(size)
        except TimeoutError:
            raise TTransportException(TTransportException.TIMED_OUT, self._late()) from None
        except OSError as exc:
            raise TTransportException(TTransportException.END_OF_FILE, str(exc)) from None
        if not data:
            raise TTransportException(TTransportException.END_OF_FILE, "the client closed")
        if not self._call_started:
            self._call_started = True
            self._deadline = time.monotonic() + self._limits.message_timeout
        self._received += len(data)
        if self._received > self._limits.max_message_size + RECV_CHUNK:
            # One chunk of slack: the chunk that ends a call may start the next.
            raise TTransportException(TTransportException.SIZE_LIMIT, "the call is too large")
        return data

    def _open_socket(self, timeout: float) -> socket.socket:
        if self._socket is None:
            raise TTransportException(TTransportException.NOT_OPEN, "the connection is closed")
        self._socket.settimeout(timeout)
        return self._socket

    def _late(self) -> str:
        if self._call_started:
            return f"the call was not received within {self._limits.message_timeout:g} s"
        return f"idle for {self._limits.idle_timeout:g} s"

    def write(self, buf: bytes) -> None:
        self._written.append(buf)

    def flush(self) -> None:
        data, self._written = b"".join(self._written), []
        try:
            self._open_socket(self._limits.message_timeout).sendall(data)
        except OSError as exc:
            raise TTransportException(TTransportException.END_OF_FILE, str(exc)) from None
        self._new_call()  # the answer is out: the next bytes are the next call
        # Other connections get a turn before this one's next call (already
        # buffered, it would be read at once: a few connections kept the worker).
        let_the_sockets_in()


class _LimitedHeaderTransport(THeaderTransport):
    def __init__(self, transport: _SocketTransport, limits: ThriftLimits) -> None:
        super().__init__(transport, ACCEPTED_CLIENTS)
        self.set_max_frame_size(limits.max_message_size)

    def _parse_header_format(self, buffer: Any) -> Any:
        if _declares_transforms(buffer):
            raise TTransportException(
                TTransportException.UNKNOWN, "THeader transforms are not accepted"
            )
        return super()._parse_header_format(buffer)


def _declares_transforms(buffer: Any) -> bool:
    start = buffer.tell()
    try:
        reader = TMemoryBuffer()
        reader._buffer = buffer
        buffer.seek(start + _HEADER_FIXED_BYTES)
        readVarint(reader)  # the payload's protocol
        return bool(readVarint(reader))
    finally:
        buffer.seek(start)


class _LimitedProtocol(THeaderProtocol):
    def __init__(self, transport: _SocketTransport, limits: ThriftLimits) -> None:
        # fastbinary reads the limits from the protocol it is handed: this one.
        self.string_length_limit = limits.max_string_length
        self.container_length_limit = limits.max_container_length
        self._protocol_id: int | None = None
        super().__init__(_LimitedHeaderTransport(transport, limits), ACCEPTED_CLIENTS)

    def _set_protocol(self) -> None:
        # THeader sets the payload's protocol for every message, and thrift built a new
        # protocol object each time. The object keeps nothing of a message (only the
        # transport and the limits), so a connection reuses the one of its last message
        # while the protocol stays the same.
        protocol_id = self.trans.protocol_id
        if protocol_id == self._protocol_id:
            return
        super()._set_protocol()
        self._protocol_id = protocol_id
        # The pure-Python decoder (readMessageBegin, skipped fields) reads them here.
        self._protocol.string_length_limit = self.string_length_limit
        self._protocol.container_length_limit = self.container_length_limit


class _LimitedProtocolFactory:
    def __init__(self, limits: ThriftLimits) -> None:
        self.limits = limits

    def getProtocol(self, trans: _SocketTransport) -> _LimitedProtocol:  # noqa: N802
        return _LimitedProtocol(trans, self.limits)
