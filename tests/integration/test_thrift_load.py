"""scripts/thrift_load.py, the benchmark's Thrift client: its calls are answered, and counted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LOAD = Path(__file__).resolve().parents[2] / "scripts" / "thrift_load.py"


def _drive(port: int, method: str, connections: int) -> dict:
    # A process of its own, as the benchmark runs it: not under this test's gevent patching.
    argv = [sys.executable, str(LOAD), "--port", str(port), "--method", method]
    argv += ["--connections", str(connections), "--duration", "1.5", "--prefix", f"tl-{method}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_every_method_is_answered_by_several_client_processes(thrift_server) -> None:
    _, port = thrift_server
    for method in ("send_package", "get_statistics", "list_inbox"):
        report = _drive(port, method, connections=40)  # two processes of 20

        assert report["socket_errors"] == 0
        assert set(report["outcomes"]) <= {"ok", "replayed"}, report
        assert report["outcomes"]["ok"] > 0
