"""One racing client for test_reconciliation: batches or single sends of the same ids.

Run as ``python -m tests.integration.batch_race_worker PORT MODE ROUNDS ID...`` (MODE
``batch`` or ``single``). Prints ``ready``, waits for ``go`` on stdin (so every racer
starts together), sends every id ROUNDS times over HTTP, then prints a JSON object:
the count of each answered status and the wall-clock instants it started and ended
(the test asserts the racers overlapped).
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import time
from collections import Counter
from typing import Any


def body_of(package_id: str) -> dict[str, Any]:
    return {
        "timestamp": "2142-01-01T00:00:00Z",
        "sender_id": "racer",
        "recipient_id": "mars-" + package_id[-1],
        "package_id": package_id,
        "package_type": "personal",
    }


def post(connection: http.client.HTTPConnection, path: str, body: Any) -> tuple[int, Any]:
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def main() -> None:
    port, mode, rounds, *ids = sys.argv[1:]
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"
    statuses: Counter[int] = Counter()
    started = time.time()
    for _ in range(int(rounds)):
        random.shuffle(ids)
        if mode == "batch":
            status, answer = post(
                connection, "/v1/packages/batch", {"packages": [body_of(i) for i in ids]}
            )
            assert status == 200, answer
            statuses.update(item["status"] for item in answer["results"])
        else:
            for package_id in ids:
                status, _ = post(connection, "/v1/packages", body_of(package_id))
                statuses[status] += 1
    print(json.dumps({"statuses": statuses, "started": started, "ended": time.time()}))


if __name__ == "__main__":
    main()
