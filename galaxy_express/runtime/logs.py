"""Logs for people and for machines, for every process the service runs.

baseplate writes ~600-character JSON lines whenever stdin is not a terminal,
which is the case under ``make run``'s launcher too. Here the choice is the
output's: a terminal gets one readable line per record, anything else (a
pipe, a file, a container's log collector) gets baseplate's JSON. The
``GE_LOG_FORMAT`` variable (``text`` or ``json``) overrides the guess.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Literal

LOG_FORMAT_VARIABLE = "GE_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_JSON_FIELDS = "%(levelname)s %(message)s %(name)s %(module)s %(lineno)d %(process)d"

LogFormat = Literal["text", "json"]


def log_format(stream: Any = None) -> LogFormat:
    """``GE_LOG_FORMAT`` when set, else text on a terminal and JSON otherwise."""
    chosen = os.environ.get(LOG_FORMAT_VARIABLE, "").strip().lower()
    if chosen in ("text", "json"):
        return chosen  # type: ignore[return-value]
    stream = sys.stderr if stream is None else stream
    return "text" if stream.isatty() else "json"


def formatter(kind: LogFormat) -> logging.Formatter:
    if kind == "text":
        return logging.Formatter(TEXT_FORMAT, datefmt="%H:%M:%S")
    from baseplate.server import CustomJsonFormatter

    return CustomJsonFormatter(_JSON_FIELDS)


def configure(level: int = logging.INFO) -> None:
    """One handler on the root logger, in the format ``log_format`` picks."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format(handler.stream)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(capture=True)
