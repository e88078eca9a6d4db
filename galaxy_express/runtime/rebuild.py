"""Rebuild every sender's Redis spam count exactly from the stored reports.

Run it after Redis lost its data (a restart without persistence, FLUSHDB) or
after spam reports were stored while Redis was down (the log says so, and
``galaxy_express_spam_count_sync_failures_total`` counts them). It is safe to
run while the service takes reports, and to run again. It touches only the
keys under the deployment's ``redis.key_prefix``. A rebuild of more than
PROGRESS_FROM reports shows a progress bar on a terminal.

    python -m galaxy_express.runtime.rebuild --config configs/local.ini
    baseplate-script configs/local.ini galaxy_express.runtime.rebuild:run
    make rebuild-spam-counts
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from galaxy_express.bootstrap import make_baseplate, read_app_config
from galaxy_express.core.context import ServiceContext
from galaxy_express.inbox import service
from galaxy_express.inbox.records import SpamCountRebuild
from galaxy_express.inbox.spam_reports import stored_report_count
from galaxy_express.runtime import logs

PROGRESS_FROM = 10_000


def run(app_config: Mapping[str, str]) -> SpamCountRebuild:
    """The ``baseplate-script`` entry point: rebuild with the app's db and redis."""
    baseplate, _ = make_baseplate(app_config)
    with (
        baseplate.server_context("rebuild_spam_counts") as context,
        _progress_bar(context) as progress,
    ):
        outcome = service.rebuild_spam_counts(context, progress)
    print(
        f"rebuilt spam counts: {outcome.senders} senders, {outcome.reports} reports, "
        f"{outcome.removed} counts of senders without reports removed"
    )
    return outcome


@contextmanager
def _progress_bar(context: ServiceContext) -> Iterator[Callable[[int], None] | None]:
    """A tqdm bar over the stored reports, on a terminal and for large rebuilds only."""
    if not sys.stderr.isatty():
        yield None
        return
    total = stored_report_count(context)
    if total < PROGRESS_FROM:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="report", desc="rebuilding", leave=False) as bar:
        yield bar.update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/local.ini")
    args = parser.parse_args()
    logs.configure()
    try:
        app_config = read_app_config(args.config)
    except FileNotFoundError as error:
        parser.error(str(error))
    run(app_config)


if __name__ == "__main__":
    main()
