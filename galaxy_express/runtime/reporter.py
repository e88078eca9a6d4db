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
from pathlib import Path
from types import FrameType

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.core.context import ServiceContext
from galaxy_express.db.idempotency import prune_expired
from galaxy_express.inbox.changes import prune_changes
from galaxy_express.reports.runner import Reporter, prune_report_files
from galaxy_express.webhooks.service import prune_deliveries, prune_seen_ids


def housekeeping_round(context: ServiceContext, reports_folder: Path) -> dict[str, int]:
    """One bounded round of retention pruning over every domain: what each pruned.

    It lives here, not in a domain, because it reaches several of them.
    """
    files = prune_report_files(reports_folder, context.settings.report_retention_days)
    webhooks = prune_deliveries(context)
    keys = prune_expired(context.db, context.settings.idempotency_retention_days)
    inbox_changes = prune_changes(context, context.settings.inbox_changes_retention_days)
    seen_ids = prune_seen_ids(context)
    return {
        "report files": files,
        "webhook bodies": webhooks.bodies,
        "webhook deliveries": webhooks.deliveries,
        "idempotency keys": keys,
        "inbox changes": inbox_changes,
        "webhook ids": seen_ids,
    }


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
        housekeeping=housekeeping_round,
    )
    reporter.run_forever()


def prune(app_config: dict[str, str]) -> None:
    """baseplate-script entrypoint: one housekeeping round, for cron without a reporter."""
    baseplate, settings = make_baseplate(app_config)
    with baseplate.server_context("prune") as context:
        pruned = housekeeping_round(context, settings.reports_dir)
    print("pruned: " + ", ".join(f"{count} {what}" for what, count in pruned.items()))
