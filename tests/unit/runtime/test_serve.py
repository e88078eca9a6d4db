"""The worker's entry point: baseplate's choices it replaces keep baseplate's meaning."""

from __future__ import annotations

import os

import pytest
from baseplate.server import prometheus

from galaxy_express.runtime.serve import WORKER_ID_VARIABLE, fixed_worker_id


@pytest.mark.parametrize("environ", [{}, {WORKER_ID_VARIABLE: "http-3"}])
def test_the_fixed_worker_id_is_baseplates(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WORKER_ID_VARIABLE, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert fixed_worker_id(os.environ)() == prometheus.worker_id()


def test_the_variable_is_read_when_the_worker_starts() -> None:
    environ = {WORKER_ID_VARIABLE: "http-0"}
    worker_id = fixed_worker_id(environ)
    environ[WORKER_ID_VARIABLE] = "changed later"
    assert worker_id() == "http-0"
