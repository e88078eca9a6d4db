"""Rebuild every sender's Redis spam count exactly from the stored reports.

Run it after Redis lost its data (a restart without persistence, FLUSHDB) or
after spam reports were stored while Redis was down (the log says so, and
``galaxy_express_spam_count_sync_failures_total`` counts them). It is safe to
run while the service takes reports, and to run again.

    python -m galaxy_express.runtime.rebuild --config configs/local.ini
    baseplate-script configs/local.ini galaxy_express.runtime.rebuild:run
    make rebuild-spam-counts
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping

from galaxy_express.bootstrap import make_baseplate, read_app_config
from galaxy_express.inbox import service
from galaxy_express.inbox.records import SpamCountRebuild


def run(app_config: Mapping[str, str]) -> SpamCountRebuild:
    """The ``baseplate-script`` entry point: rebuild with the app's db and redis."""
    baseplate, _ = make_baseplate(app_config)
    with baseplate.server_context("rebuild_spam_counts") as context:
        outcome = service.rebuild_spam_counts(context)
    print(
        f"rebuilt spam counts: {outcome.senders} senders, {outcome.reports} reports, "
        f"{outcome.removed} counts of senders without reports removed"
    )
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/local.ini")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        app_config = read_app_config(args.config)
    except FileNotFoundError as error:
        parser.error(str(error))
    run(app_config)


if __name__ == "__main__":
    main()
