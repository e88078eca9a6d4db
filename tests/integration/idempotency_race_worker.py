"""One racing process for test_idempotency_races: repeats keyed requests at set instants.

Run as ``python -m tests.integration.idempotency_race_worker URL REDIS_URL PLAN``, PLAN
a JSON list of requests ``[method, path, body, key]``. The process builds the app,
prints ``ready``, waits for ``go START`` on stdin, then sends request ``i`` at
``START + i * STEP`` (wall clock, shared by every racer) and prints one JSON list:
each answer's status, body, whether it was replayed, and when it began and ended.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import webtest

from galaxy_express.http.app import make_wsgi_app
from tests.conftest import load_app_config

STEP = 0.08


def main() -> None:
    url, redis_url, plan_json = sys.argv[1:]
    plan = json.loads(plan_json)
    app = webtest.TestApp(make_wsgi_app(load_app_config(**{"db.url": url, "redis.url": redis_url})))
    app.get("/v1/stats")  # connect and warm up before the race
    print("ready", flush=True)
    command, start = sys.stdin.readline().split()
    assert command == "go"
    answers: list[dict[str, Any]] = []
    for index, (method, path, body, key) in enumerate(plan):
        time.sleep(max(0.0, float(start) + index * STEP - time.time()))
        began = time.time()
        response = app.request(
            path,
            method=method,
            body=b"" if body is None else json.dumps(body).encode(),
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
            expect_errors=True,
        )
        answers.append(
            {
                "status": response.status_int,
                "body": response.text,
                "replayed": response.headers.get("Idempotent-Replayed") == "true",
                "began": began,
                "ended": time.time(),
            }
        )
    print(json.dumps(answers), flush=True)


if __name__ == "__main__":
    main()
