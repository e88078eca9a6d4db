"""The launcher's banner names the Redis in use; logs suit a terminal or a machine."""

from __future__ import annotations

import io
import json
import logging

import pytest

from galaxy_express.runtime import logs
from galaxy_express.runtime.launcher import describe_redis


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_banner_names_redis_its_database_and_prefix() -> None:
    config = {"redis.url": "redis://127.0.0.1:6380/4", "redis.key_prefix": "ge-a:"}
    assert describe_redis(config, embedded=False) == (
        "launcher: Redis redis://127.0.0.1:6380 database 4, external; keys under 'ge-a:'"
    )
    embedded = describe_redis({"redis.url": "redis://localhost"}, embedded=True)
    assert "database 0, embedded" in embedded
    assert "'ge:'" in embedded


def test_an_empty_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match=r"redis\.key_prefix"):
        describe_redis({"redis.url": "redis://localhost", "redis.key_prefix": " "}, embedded=False)


def _formatted(kind: logs.LogFormat) -> str:
    record = logging.LogRecord("galaxy_express.x", logging.INFO, "f.py", 1, "hi %s", ("you",), None)
    return logs.formatter(kind).format(record)


def test_logs_are_readable_on_a_terminal_and_json_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(logs.LOG_FORMAT_VARIABLE, raising=False)
    assert logs.log_format(Terminal()) == "text"
    assert logs.log_format(io.StringIO()) == "json"
    monkeypatch.setenv(logs.LOG_FORMAT_VARIABLE, "json")
    assert logs.log_format(Terminal()) == "json"

    line = _formatted("text")
    assert line.endswith("INFO    galaxy_express.x: hi you")
    assert len(line) < 80
    assert json.loads(_formatted("json"))["message"] == "hi you"
