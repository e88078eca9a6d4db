"""scripts/bench.py's README table: the latest recorded run's figures, in its own section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.scripts import load_script


@pytest.fixture(scope="module")
def bench() -> Any:
    return load_script("bench")


def _results(bench: Any) -> Any:
    results = bench.Results(
        label="sqlite-2w",
        started_at="2026-12-02 15:00 UTC",
        settings={
            "database": "sqlite",
            "workers": 2,
            "duration_s": 10,
            "connections": [1, 64],
            "metrics": "on",
        },
        machine={"cpus": 2, "load_average_before": 0.1, "cpu_check_ms": 80.0, "wrk": "wrk 4"},
    )
    results.machine["python"] = "3.11.7"
    rows = [
        ("GET /ping (no-op)", 64, 1_000, 6_000.0, 0.25),
        ("POST /v1/packages", 64, 1_000, 3_000.0, 0.5),
        ("inbox page (50)", 1, 1_000, 400.0, 1.0),
        ("inbox page (50)", 1, 10_000_000, 390.0, 1.1),
    ]
    for measure, conns, stored, rps, cpu in rows:
        row = bench.Row(measure, conns, stored, rps, 2.0, 9.0, 0)
        row.cpu_ms = cpu
        results.rows.append(row)
    results.fairness = {"min": 90, "max": 100, "ratio": 0.9}
    results.rss_mb = {"http-0": 120.4, "http-1": 131.6}
    results.loads = [{"stored": 10_000_000, "packages_per_second": 42_000, "database_mb": 6300.0}]
    results.targets = [("send-package p99 ≤ 20 ms", "9.0 ms", True), ("x ≥ 1", "0", False)]
    return results


def test_the_readme_table_gives_each_row_its_cpu_beside_pings(bench: Any) -> None:
    table = bench._readme_table(_results(bench))

    assert "| POST /v1/packages | 64 | 3,000 | 2.00 | 9.0 | 0 | 0.50 ms | 2.0x |" in table
    assert "| inbox page (50): 1,000 → 10,000,000 stored | 1 | 400 → 390 |" in table
    assert "min 90, max 100 (90%)" in table
    assert "132 MB (largest of 2)" in table
    assert "42,000/s, 6,300 MB" in table
    assert "- ✅ send-package p99 ≤ 20 ms: **9.0 ms**" in table
    assert "- ❌ x ≥ 1: **0**" in table


def test_a_recorded_section_replaces_only_its_own(bench: Any, tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text("before\n<!-- bench:readme -->\nold\n<!-- /bench:readme -->\nafter\n")

    bench._update_section(page, "readme", "new\n")

    assert page.read_text() == "before\n<!-- bench:readme -->\nnew\n<!-- /bench:readme -->\nafter\n"


def test_the_task_list_page_is_judged_beside_pings_cpu(bench: Any) -> None:
    results = _results(bench)
    results.targets = []
    row = bench.Row("task list page (50)", 64, 1_000, 2_000.0, 2.0, 9.0, 0)
    row.cpu_ms = 0.5
    results.rows.append(row)

    bench._judge(results)

    assert (
        "task list page (50): ≤ 0.6 ms of worker CPU per request at 64 connections",
        "0.50 ms (2.0x /ping's)",
        True,
    ) in results.targets
