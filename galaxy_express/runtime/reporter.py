"""The reporter loop's entry point: ``baseplate-script CONFIG galaxy_express.runtime.reporter:run``.

``make reports`` runs it alone and ``make run`` (the launcher) starts one; the
windows, claims and files are the reports domain's (``reports.runner``).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from datetime import timedelta
from types import FrameType

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.reports.runner import Reporter


def run(app_config: dict[str, str]) -> None:
    """baseplate-script entrypoint: report until SIGTERM or SIGINT.

    A signal lets the window being written finish (they take milliseconds);
    the process then exits and the next reporter run continues after it.
    """
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    baseplate, settings = make_baseplate(app_config)
    reporter = Reporter(
        baseplate,
        timedelta(seconds=settings.report_interval_seconds),
        settings.reports_dir,
        name=f"{socket.gethostname()}:{os.getpid()}",
        stopping=stopping,
        key_retention=timedelta(days=settings.idempotency_retention_days),
    )
    reporter.run_forever()
