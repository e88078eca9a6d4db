"""The explorer in a real browser: /docs in headless Chromium, API keys on.

Every operation of the document is listed, and "Try it out" with a key
entered in "Authorize" gets a 200 from the live server. Skips, saying why,
where Chromium is missing (Debian: apt-get install chromium).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chromium import CHROMIUM, Browser
from tests.launched import Launched, launch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)"),
]

KEY = "explorer-test-key"

# Waits for Swagger UI to render, then reads every operation block it shows.
LIST_OPERATIONS = """
(async () => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  for (let i = 0; i < 300 && !document.querySelector('.opblock, .errors-wrapper'); i++) {
    await sleep(100);
  }
  const errors = document.querySelector('.errors-wrapper');
  return {
    errors: errors ? errors.textContent : '',
    version: document.querySelector('.info .version, .version-stamp')?.textContent || '',
    operations: [...document.querySelectorAll('.opblock')].map((block) =>
      block.querySelector('.opblock-summary-method').textContent.toLowerCase() + ' ' +
      block.querySelector('.opblock-summary-path').getAttribute('data-path')),
  };
})()
"""

# Authorize with the key, open one operation, Try it out, Execute: the status shown.
TRY_IT_OUT = """
(async () => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const until = async (find) => {
    for (let i = 0; i < 300; i++) {
      const found = find();
      if (found) return found;
      await sleep(100);
    }
    throw new Error('not found: ' + find);
  };
  window.ui.preauthorizeApiKey('apiKeyHeader', KEY);
  const block = document.getElementById(BLOCK_ID);
  block.querySelector('.opblock-summary-control').click();
  (await until(() => block.querySelector('.try-out__btn'))).click();
  (await until(() => block.querySelector('.execute'))).click();
  const status = await until(
    () => block.querySelector('.live-responses-table tbody .response-col_status'));
  return status.textContent.trim();
})()
"""


@pytest.fixture
def keyed_server(sqlite_url: str, redis_url: str, tmp_path: Path) -> Iterator[Launched]:
    server = launch(
        sqlite_url, redis_url, tmp_path / "var", workers=1, env={"API_KEYS": KEY}, quiet=True
    )
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    started = Browser()
    try:
        yield started
    finally:
        started.close()


def test_the_explorer_lists_every_operation_and_tries_one_with_a_key(
    keyed_server: Launched, browser: Browser
) -> None:
    status, _, document = keyed_server.request("GET", "/openapi.json")
    assert status == 200, "the document is open without a key"
    assert keyed_server.request("GET", "/v1/stats")[0] == 401, "the API itself is not"
    expected = {f"{method} {path}" for path, ops in document["paths"].items() for method in ops}

    page = browser.open(f"http://127.0.0.1:{keyed_server.http_port}/docs")
    try:
        shown = page.evaluate(LIST_OPERATIONS)
        assert shown["errors"] == "", shown["errors"]
        assert set(shown["operations"]) == expected
        stats = document["paths"]["/v1/stats"]["get"]
        block_id = f"operations-{stats['tags'][0]}-{stats['operationId']}"
        script = TRY_IT_OUT.replace("BLOCK_ID", json.dumps(block_id))
        assert page.evaluate(script.replace("KEY", json.dumps(KEY))) == "200"
    finally:
        page.close()
