"""Waiting on observable state instead of sleeping for a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], seconds: float = 10, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``condition`` until it returns something truthy (returned), for ``seconds``.

    Exceptions of the condition propagate (an ``assert`` inside it fails at once);
    a condition that must tolerate errors (a server still starting) catches them.
    """
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not within {seconds} s: {what or condition!r}")
        time.sleep(interval)
