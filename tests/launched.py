"""The service as `make run` starts it: the launcher, its worker processes, real sockets.

Shared by the tests that need real processes (signals, crashes, restarts) and
by scripts/soak.py.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class Launched:
    """A running launcher; ``request`` talks HTTP to it over a fresh connection."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        http_port: int,
        thrift_port: int,
        serves_thrift: bool = True,
    ) -> None:
        self.process, self.http_port, self.thrift_port = process, http_port, thrift_port
        self.serves_thrift = serves_thrift

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> tuple[int, dict[str, str], Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            payload = None if body is None else json.dumps(body)
            all_headers = {} if body is None else {"Content-Type": "application/json"}
            connection.request(method, path, payload, all_headers | (headers or {}))
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        return response.status, dict(response.getheaders()), json.loads(data) if data else None

    def http_workers(self) -> list[int]:
        """Process ids of the HTTP workers (children serving the HTTP port)."""
        return [
            pid
            for pid in children(self.process.pid)
            if f"127.0.0.1:{self.http_port}" in cmdline(pid) and "thrift" not in cmdline(pid)
        ]

    def thrift_workers(self) -> list[int]:
        """Process ids of the Thrift workers."""
        return [
            pid
            for pid in children(self.process.pid)
            if f"127.0.0.1:{self.thrift_port}" in cmdline(pid)
        ]

    def accepted_by(self, pid: int, port: int) -> int:
        """Connections to ``port`` that the worker ``pid`` has accepted and holds open."""
        inodes = socket_inodes(pid)
        return sum(
            1
            for local_port, state, inode in tcp_sockets()
            if local_port == port and state == TCP_ESTABLISHED and inode in inodes
        )

    def accepted_connections(self) -> int:
        """HTTP connections a worker has accepted (not merely queued by the kernel)."""
        inodes = {inode for pid in self.http_workers() for inode in socket_inodes(pid)}
        return sum(
            1
            for local_port, state, inode in tcp_sockets()
            if local_port == self.http_port and state == TCP_ESTABLISHED and inode in inodes
        )

    def wait_until_serving(self, seconds: float = 60, http_workers: int = 0) -> None:
        """Until /health answers 200, the Thrift port accepts (when it serves Thrift),
        and the workers are up."""
        from tests.support.waiting import wait_until

        def serving() -> bool:
            assert self.process.poll() is None, "the launcher exited"
            return (
                self._healthy()
                and (not self.serves_thrift or port_accepts(self.thrift_port))
                and len(self.http_workers()) >= http_workers
            )

        wait_until(serving, seconds=seconds, interval=0.1, what="the servers serving")
        if http_workers:
            self.wait_until_each_serves(self.http_workers(), self.http_port, seconds)

    def wait_until_each_serves(self, workers: list[int], port: int, seconds: float = 60) -> None:
        """Until every worker has started up: they share the launcher's socket from
        birth, but one still starting accepts nothing and the others take every
        connection. Probes are held open until each worker holds one (an idle
        worker takes the next connection: galaxy_express.runtime.balance), then closed."""
        from tests.support.waiting import wait_until

        probes: list[socket.socket] = []

        def each_holds_one() -> bool:
            probes.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            return all(self.accepted_by(pid, port) > 0 for pid in workers)

        try:
            wait_until(each_holds_one, seconds=seconds, interval=0.2, what="every worker serving")
        finally:
            for probe in probes:
                probe.close()

        def held() -> int:
            return sum(self.accepted_by(pid, port) for pid in workers)

        wait_until(lambda: held() == 0, seconds=30, what="the probes closed")

    def _healthy(self) -> bool:
        try:
            return self.request("GET", "/health", timeout=2)[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the launcher and every process it started.

        SIGTERM, so the launcher stops its workers; a SIGKILLed launcher would
        leave them running, orphaned, on their ports.
        """
        workers = [(pid, cmdline(pid)) for pid in children(self.process.pid)]
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid, command in workers:
            if command and cmdline(pid) == command:  # still that worker: not stopped
                os.kill(pid, signal.SIGKILL)


def launch(
    database_url: str,
    redis_url: str,
    var_dir: Path,
    *,
    workers: int = 2,
    thrift_workers: int = 1,
    config: Path = ROOT / "configs" / "test.ini",
    env: dict[str, str] | None = None,
    quiet: bool = False,
) -> Launched:
    """Start the launcher on free ports (call ``wait_until_serving`` next)."""
    http_port, thrift_port = free_port(), free_port()
    environment = os.environ | {"DATABASE_URL": database_url, "REDIS_URL": redis_url} | (env or {})
    argv = [sys.executable, "-m", "galaxy_express.runtime.launcher", "--config", str(config)]
    argv += ["--workers", str(workers), "--thrift-workers", str(thrift_workers), "--no-reporter"]
    argv += ["--http-port", str(http_port), "--thrift-port", str(thrift_port)]
    argv += ["--var-dir", str(var_dir)]
    output = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(argv, cwd=ROOT, env=environment, stdout=output, stderr=output)
    return Launched(process, http_port, thrift_port, serves_thrift=thrift_workers > 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


TCP_ESTABLISHED = "01"


def tcp_sockets() -> list[tuple[int, str, str]]:
    """Every IPv4 and IPv6 TCP socket of the machine as (local port, state, inode)."""
    sockets = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            sockets.append((int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]))
    return sockets


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets a process holds open."""
    inodes: set[str] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def connect_thrift(host: str, port: int) -> tuple[Any, Any]:
    """A plain binary client, as any Thrift library has (baseplate also speaks THeader),
    and its transport (close it when done)."""
    from thrift.protocol.TBinaryProtocol import TBinaryProtocol
    from thrift.transport.TSocket import TSocket
    from thrift.transport.TTransport import TBufferedTransport

    from galaxy_express.thrift.gen import GalaxyExpress

    transport = TBufferedTransport(TSocket(host, port))
    client = GalaxyExpress.Client(TBinaryProtocol(transport))
    transport.open()
    return client, transport
