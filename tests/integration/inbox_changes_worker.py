"""One process changing a shared mailbox, for test_inbox_changes' process races.

Run as ``python -m tests.integration.inbox_changes_worker URL REDIS_URL RECIPIENT NAME
ROUNDS``. It prints ``ready``, waits for a line on stdin (the go signal), then for
``ROUNDS`` rounds sends packages (alone and in batches) to RECIPIENT as sender NAME and
acts on its own packages (by id and by filter on its sender), and prints the JSON list
of the change events it expects, ``[kind, package_id, from, to]`` in its own order:
it knows each of its packages' state, so it knows which action changes something.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.core.validation import validate
from galaxy_express.delivery import service as delivery
from galaxy_express.delivery.commands import SendPackage
from galaxy_express.inbox import service as inbox
from galaxy_express.inbox.commands import BulkByFilter
from galaxy_express.inbox.records import InboxAction

DESTINATION = {"trash": "trash", "restore": "inbox", "spam": "spam"}


class Mailbox:
    """This worker's packages as it left them: id -> [folder, read]."""

    def __init__(self) -> None:
        self.state: dict[str, list[Any]] = {}
        self.expected: list[list[Any]] = []

    def delivered(self, package_id: str) -> None:
        self.state[package_id] = ["inbox", False]
        self.expected.append(["delivered", package_id, None, None])

    def act(self, action: str, package_ids: list[str]) -> None:
        """What ``action`` changes, in package id order (one action's event order)."""
        for package_id in sorted(package_ids):
            folder, read = self.state[package_id]
            if action == "delete":
                del self.state[package_id]
                self.expected.append(["deleted", package_id, None, None])
            elif action == "read" and not read:
                self.state[package_id][1] = True
                self.expected.append(["read", package_id, None, None])
            elif action == "unread" and read:
                self.state[package_id][1] = False
                self.expected.append(["unread", package_id, None, None])
            elif action in DESTINATION and folder != DESTINATION[action]:
                self.state[package_id][0] = DESTINATION[action]
                self.expected.append(["moved", package_id, folder, DESTINATION[action]])


def main() -> None:
    url, redis_url, recipient, name, rounds = sys.argv[1:]
    baseplate, _ = make_baseplate({"db.url": url, "redis.url": redis_url})
    mine = Mailbox()
    chooser = random.Random(name)
    counter = 0

    def command(package_id: str) -> SendPackage:
        return validate(
            SendPackage,
            {
                "timestamp": "2142-01-01T00:00:00Z",
                "sender_id": name,
                "recipient_id": recipient,
                "package_id": package_id,
                "package_type": "personal",
            },
        )

    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(int(rounds)):
        with baseplate.server_context("inbox-race") as context:
            counter += 1
            single = f"{name}-{counter:04d}"
            delivery.send_package(context, command(single))
            mine.delivered(single)
            batch = [f"{name}-{counter:04d}-{n}" for n in range(2)]
            delivery.send_packages(context, [command(package_id) for package_id in batch])
            for package_id in sorted(batch):  # a batch runs in package id order
                mine.delivered(package_id)
            action = chooser.choice(["read", "unread", "trash", "restore", "spam", "delete"])
            ids = chooser.sample(sorted(mine.state), k=min(3, len(mine.state)))
            inbox.update_inbox(context, recipient, InboxAction(action), ids)
            mine.act(action, ids)
            if chooser.random() < 0.3:
                bulk_action = chooser.choice(["read", "unread", "trash", "restore"])
                matching = sorted(mine.state)
                inbox.update_inbox_by_filter(
                    context,
                    recipient,
                    validate(
                        BulkByFilter,
                        {"action": bulk_action, "filter": {"sender_id": name}, "up_to_seq": 2**62},
                    ),
                )
                # The bulk walks by (timestamp, package id) in batches, its events in
                # package id order per batch: with one timestamp, package id order.
                mine.act(bulk_action, matching)
    print(json.dumps(mine.expected), flush=True)


if __name__ == "__main__":
    main()
