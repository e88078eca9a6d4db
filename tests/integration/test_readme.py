"""The README runs as written: its shell tour, top to bottom, against a fresh server.

Each command's output is compared with what the README shows after it (see
tests/readme_blocks.py for the conventions, also in the README).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.launched import ROOT, Launched, launch
from tests.readme_blocks import Step, matches, steps

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="the README's examples use curl"),
]

README = ROOT / "README.md"
SEPARATOR = "@@readme-step@@"


@pytest.fixture
def fresh_server(sqlite_url: str, redis_url: str, tmp_path: Path) -> Iterator[Launched]:
    server = launch(sqlite_url, redis_url, tmp_path / "var", workers=1, quiet=True)
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.stop()


def test_the_readme_has_a_tour_with_outputs() -> None:
    tour = steps(README)
    assert len(tour) >= 20
    assert sum(step.expected is not None for step in tour) >= 15


def test_the_readme_tour_runs_as_written(fresh_server: Launched, tmp_path: Path) -> None:
    tour = steps(README)
    outputs = _run(tour, f"127.0.0.1:{fresh_server.http_port}", tmp_path)
    failures = [
        f"README line {step.line}: {step.command}\n  shows: {step.expected}\n  got:   {output}"
        for step, output in zip(tour, outputs, strict=True)
        if step.expected is not None and not matches(step.expected, output)
    ]
    assert not failures, "\n\n".join(failures)


def _run(tour: list[Step], address: str, workdir: Path) -> list[str]:
    """Every step in one bash session; the output of each."""
    script = "".join(
        f"{step.command.replace('localhost:9090', address)}\necho; echo {SEPARATOR}\n"
        for step in tour
    )
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    outputs = [part.strip() for part in result.stdout.split(SEPARATOR)][: len(tour)]
    assert len(outputs) == len(tour), result.stderr
    return outputs
