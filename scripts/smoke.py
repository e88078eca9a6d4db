"""Smoke-test an installed service: migrate, serve on free ports, send a package, read it back.

`make check-pythons` runs this in a fresh virtualenv per Python version (noxfile.py). It
talks to the Redis at REDIS_URL (default: database GE_TEST_REDIS_DB, else 15, of the local
server) and uses a throwaway SQLite file, so it touches nothing else. Exits non-zero on the
first check that fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.launched import connect_thrift, launch  # noqa: E402


def main() -> None:
    default_redis = f"redis://127.0.0.1:6379/{os.environ.get('GE_TEST_REDIS_DB', '15')}"
    redis_url = os.environ.get("REDIS_URL", default_redis)
    with tempfile.TemporaryDirectory(prefix="ge-smoke-") as scratch:
        database_url = f"sqlite:///{scratch}/smoke.db"
        _migrate(database_url)
        server = launch(database_url, redis_url, Path(scratch) / "var", workers=1, quiet=True)
        try:
            server.wait_until_serving()
            package_id = _send_and_read_back_over_http(server)
            _read_back_over_thrift(server.thrift_port, package_id)
            _probe_liveness(server.http_port, server.thrift_port)
        finally:
            server.stop()
    print(f"smoke: ok on Python {sys.version.split()[0]}")


def _migrate(database_url: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "galaxy_express.runtime.migrate",
            "--config",
            "configs/test.ini",
            "upgrade",
        ],
        cwd=ROOT,
        env=os.environ | {"DATABASE_URL": database_url},
        check=True,
    )


def _send_and_read_back_over_http(server: object) -> str:
    package_id = f"smoke-{uuid.uuid4().hex[:12]}"
    body = {
        "timestamp": "2142-01-01T12:00:00Z",
        "sender_id": "earth-1",
        "recipient_id": "mars-1",
        "package_id": package_id,
        "package_type": "personal",
        "content": {"subject": "Hello", "body": "from the smoke test"},
    }
    status, _, sent = server.request("POST", "/v1/packages", body)  # type: ignore[attr-defined]
    _expect(status == 201 and sent["status"] == "delivered", f"send: {status} {sent}")
    status, _, read = server.request("GET", f"/v1/packages/{package_id}")  # type: ignore[attr-defined]
    _expect(status == 200 and read == sent, f"read over HTTP: {status} {read}")
    return package_id


def _read_back_over_thrift(port: int, package_id: str) -> None:

    client, transport = connect_thrift("127.0.0.1", port)
    try:
        package = client.get_package(package_id)
    finally:
        transport.close()
    _expect(package.status == "delivered", f"read over Thrift: {package}")


def _probe_liveness(http_port: int, thrift_port: int) -> None:
    """The probes the Docker image and docker-compose run."""
    healthcheck = str(Path(sys.executable).parent / "baseplate-healthcheck")
    for protocol, port in (("wsgi", http_port), ("thrift", thrift_port)):
        subprocess.run(
            [healthcheck, "--probe", "liveness", protocol, f"127.0.0.1:{port}"],
            check=True,
            capture_output=True,
        )


def _expect(condition: bool, failure: str) -> None:
    if not condition:
        sys.exit(f"smoke: FAILED {failure}")


if __name__ == "__main__":
    main()
