"""Processes released together: a ready/go handshake, not a wall-clock start."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_together(
    commands: Iterable[list[str]], go: Callable[[], str] = lambda: "go"
) -> list[subprocess.Popen[str]]:
    """Start each command from the repository root, wait until every one has
    printed ``ready`` (set up, connected), then write the same ``go`` line to each.

    ``go`` is called once every process is ready, so a line naming a start
    instant (``go <unix time>``) is computed as late as it can be.
    """
    processes = [
        subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for command in commands
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    line = go()
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(line + "\n")
        process.stdin.flush()
    return processes
