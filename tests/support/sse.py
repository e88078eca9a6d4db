"""A Server-Sent Events client over a real socket, for the live stream's tests and bench.

``EventStream.open`` sends the request and reads the head; ``next_frame`` reads
one frame (events and comments alike) within a deadline, timing its arrival.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Frame:
    """One SSE frame: its fields, or a comment (``comment`` set, the rest empty)."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: str | None = None
    comment: str | None = None
    arrived: float = field(default=0.0)  # time.monotonic() when its last line arrived

    @property
    def json(self) -> Any:
        assert self.data is not None, f"no data in {self}"
        return json.loads(self.data)


class StreamEnded(Exception):
    """The server ended the answer (its last chunk arrived): a clean end."""


class EventStream:
    """One stream over a raw socket (http.client's reader can't survive a read time-out)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray()
        self._body = bytearray()  # de-chunked bytes not yet returned as lines
        self._ended = False
        head = self._read_until(b"\r\n\r\n", time.monotonic() + 10)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"

    @classmethod
    def open(
        cls,
        port: int,
        recipient_id: str,
        *,
        last_event_id: str | None = None,
        query: str = "",
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> EventStream:
        sent = {"Host": f"127.0.0.1:{port}", "Accept": "text/event-stream"} | (headers or {})
        if last_event_id is not None:
            sent["Last-Event-ID"] = last_event_id
        head = f"GET /v1/inbox/{recipient_id}/events{query} HTTP/1.1\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in sent.items()) + "\r\n"
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.sendall(head.encode("latin-1"))
        return cls(sock)

    def problem(self) -> Any:
        """The JSON body of an answer that is not a stream (a 4xx/5xx problem)."""
        length = int(self.headers.get("content-length", "0"))
        deadline = time.monotonic() + 10
        while len(self._buffer) < length:
            self._fill(deadline)
        body = bytes(self._buffer[:length])
        self.close()
        return json.loads(body)

    def next_frame(self, seconds: float = 5) -> Frame:
        """The next frame within ``seconds``; ``StreamEnded`` when the answer ended."""
        deadline = time.monotonic() + seconds
        frame = Frame()
        while True:
            text = self._line(deadline).decode("utf-8")
            if not text:
                frame.arrived = time.monotonic()
                return frame
            if text.startswith(":"):
                frame.comment = text[1:].strip()
                continue
            name, _, value = text.partition(":")
            setattr(frame, name, value.removeprefix(" "))

    def next_event(self, seconds: float = 5) -> Frame:
        """The next frame that is an event (comments and the retry prelude skipped)."""
        deadline = time.monotonic() + seconds
        while True:
            frame = self.next_frame(max(0.01, deadline - time.monotonic()))
            if frame.event is not None:
                return frame

    def events_until_quiet(self, quiet_seconds: float = 1.5) -> list[Frame]:
        """Every event that arrives until none has for ``quiet_seconds``."""
        events = []
        while True:
            try:
                events.append(self.next_event(quiet_seconds))
            except TimeoutError:
                return events

    def _line(self, deadline: float) -> bytes:
        while True:
            end = self._body.find(b"\n")
            if end >= 0:
                line = bytes(self._body[:end])
                del self._body[: end + 1]
                return line
            if self._ended:
                raise StreamEnded
            self._next_chunk(deadline)

    def _next_chunk(self, deadline: float) -> None:
        if not self._chunked:
            self._fill(deadline)
            self._body += self._buffer
            self._buffer.clear()
            return
        size_line = self._read_until(b"\r\n", deadline)
        size = int(size_line.split(b";")[0], 16)
        while len(self._buffer) < size + 2:
            self._fill(deadline)
        self._body += self._buffer[:size]
        del self._buffer[: size + 2]
        if size == 0:
            self._ended = True

    def _read_until(self, marker: bytes, deadline: float) -> bytes:
        while True:
            end = self._buffer.find(marker)
            if end >= 0:
                found = bytes(self._buffer[:end])
                del self._buffer[: end + len(marker)]
                return found
            self._fill(deadline)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("nothing whole arrived in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError("nothing whole arrived in time") from None
        if not data:
            raise ConnectionError("the server closed the connection mid-answer")
        self._buffer += data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
