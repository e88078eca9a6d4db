"""Processes released together: a ready/go handshake, not a wall-clock start."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

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


def run(
    args: list[str], env: dict[str, str], stdin: str | int = ""
) -> subprocess.CompletedProcess[str]:
    """A Python command of the project (``python -m ...``), run to its end from the root.

    ``stdin`` is the text to type, or a file descriptor to read from (a terminal)."""
    typed: dict[str, Any] = {"input": stdin} if isinstance(stdin, str) else {"stdin": stdin}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **typed,
    )
