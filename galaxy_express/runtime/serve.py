"""``baseplate-serve`` and ``baseplate-script`` as the launcher runs them.

The same entry points (gevent's monkey-patching first, as baseplate's scripts
do) with two of baseplate's fixed choices replaced:

- logging: ``galaxy_express.runtime.logs`` (readable on a terminal, JSON otherwise)
  instead of JSON whenever stdin is not a terminal;
- the Prometheus exporter's address: ``GE_METRICS_ADDRESS`` (the launcher sets
  it to the service's host and ``--metrics-port``) instead of 0.0.0.0:6060;
- the worker id naming a worker's metrics file: the same id, with the
  environment read once (``fixed_worker_id``) instead of at every metric update;
- the listening socket the launcher hands over (baseplate's Einhorn
  variables) is used as it is, not duplicated: baseplate's ``fromfd`` copy
  left the inherited descriptor open, so a stopping worker that closed its
  listener still held the port open until it exited.

    python -m galaxy_express.runtime.serve serve --bind HOST:PORT CONFIG
    python -m galaxy_express.runtime.serve script CONFIG module:function
"""

from __future__ import annotations

import functools
import logging
import logging.config
import os
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any

METRICS_ADDRESS_VARIABLE = "GE_METRICS_ADDRESS"
# baseplate's: the id of a worker's Prometheus files, when its pid isn't.
WORKER_ID_VARIABLE = "MULTIPROCESS_WORKER_ID"


def _configure_logging(config: Any, debug: bool) -> None:
    from galaxy_express.runtime import logs

    logs.configure(logging.DEBUG if debug else logging.INFO)
    if config.has_logging_options:
        logging.config.fileConfig(config.filename)


def _patch_baseplate() -> None:
    import baseplate.server
    import baseplate.server.prometheus as prometheus
    from baseplate.lib.config import Endpoint

    baseplate.server.configure_logging = _configure_logging
    baseplate.server.einhorn.get_socket = _inherited_socket
    # Before baseplate-serve starts the exporter, which hands it to prometheus_client.
    prometheus.worker_id = fixed_worker_id(os.environ)
    address = os.environ.get(METRICS_ADDRESS_VARIABLE, "")
    if address:
        # baseplate-serve calls it with no argument, so bind the address in.
        exporter = functools.partial(prometheus.start_prometheus_exporter, Endpoint(address))
        prometheus.start_prometheus_exporter = exporter


def fixed_worker_id(environ: Mapping[str, str]) -> Callable[[], str]:
    """baseplate's ``worker_id``: ``MULTIPROCESS_WORKER_ID``, else the pid (so a forked
    child writes files of its own), with the variable read now, not at every call.

    prometheus_client asks it at every metric update (to notice a fork), and
    baseplate's read ``os.environ``, which raised and caught a KeyError each time
    the variable was unset: 4% of the CPU of a ``/ping`` (py-spy on a loaded worker).
    Nothing sets the variable after a worker starts.
    """
    fixed = environ.get(WORKER_ID_VARIABLE)
    if fixed is not None:
        return lambda: fixed
    getpid = os.getpid
    return lambda: str(getpid())


def _inherited_socket(index: int = 0) -> socket.socket:
    """baseplate's ``einhorn.get_socket``, without the duplicate descriptor."""
    from baseplate.server import einhorn

    if not einhorn.is_worker():
        raise einhorn.NotEinhornWorker
    if not 0 <= index < einhorn.get_socket_count():
        raise IndexError
    fd = int(os.environ[f"EINHORN_FD_{index:d}"])
    os.set_inheritable(fd, False)  # nothing this worker starts holds the port
    return socket.socket(fileno=fd)


def _monkey_patch() -> None:
    """What baseplate's own ``baseplate-serve`` script does before importing baseplate."""
    from gevent.monkey import patch_all

    patch_all()
    from baseplate.server.monkey import patch_stdlib_queues
    from psycogreen.gevent import patch_psycopg

    patch_stdlib_queues()
    patch_psycopg()


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("serve", "script"):
        sys.exit(__doc__)
    command = sys.argv.pop(1)
    _monkey_patch()
    _patch_baseplate()
    import baseplate.server

    if command == "serve":
        baseplate.server.configure_tracing()
        baseplate.server.load_app_and_run_server()
    else:
        baseplate.server.load_and_run_script()


if __name__ == "__main__":
    main()
