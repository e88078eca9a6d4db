"""A separate process that reports spam: ``python -m tests.unit.inbox.spam_worker ARGS_JSON``.

Used by the multi-process concurrency test. It prints ``ready`` once set up
and starts reporting when a line arrives on stdin, so that every process
reports at the same moment however long each took to start.
"""

from __future__ import annotations

import json
import sys

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.inbox import service
from galaxy_express.inbox.records import InboxAction


def main() -> None:
    args = json.loads(sys.argv[1])
    baseplate, _ = make_baseplate(args["app_config"])
    with baseplate.server_context("spam_worker") as context:
        context.redis.ping()
        print("ready", flush=True)
        sys.stdin.readline()
        for _ in range(2):
            for recipient_id, package_ids in args["mailboxes"].items():
                for package_id in package_ids:
                    service.update_inbox(context, recipient_id, InboxAction.SPAM, [package_id])


if __name__ == "__main__":
    main()
