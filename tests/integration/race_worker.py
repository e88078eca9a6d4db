"""One racing process for test_races: sends the same package ids many times.

Run as ``python -m tests.integration.race_worker URL REDIS_URL START ROUNDS ID...``;
prints a JSON object counting its 201-like (created) and 200-like (replayed)
answers. Every process starts at the same wall-clock instant, START.
"""

from __future__ import annotations

import json
import random
import sys
import time

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.core.errors import DependencyUnavailable
from galaxy_express.core.validation import validate
from galaxy_express.delivery import service
from galaxy_express.delivery.commands import SendPackage


def main() -> None:
    url, redis_url, start, rounds, *ids = sys.argv[1:]
    baseplate, _ = make_baseplate({"db.url": url, "redis.url": redis_url})
    commands = [
        validate(
            SendPackage,
            {
                "timestamp": "2142-01-01T00:00:00Z",
                "sender_id": "racer",
                "recipient_id": f"r{index % 3}",
                "package_id": package_id,
                "package_type": ("personal", "marketing")[index % 2],
            },
        )
        for index, package_id in enumerate(ids)
    ]
    counts = {"created": 0, "replayed": 0, "unavailable": 0}
    time.sleep(max(0.0, float(start) - time.time()))
    for _ in range(int(rounds)):
        random.shuffle(commands)
        for command in commands:
            with baseplate.server_context("race") as context:
                try:
                    outcome = service.send_package(context, command)
                    counts["replayed" if outcome.replayed else "created"] += 1
                except DependencyUnavailable:
                    counts["unavailable"] += 1
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
