"""Nothing the service runs imports the trees the lock leaves out (requirements/overrides.txt).

baseplate 2.7.1 requires boto3 (for an S3 sidecar we don't run) and formenergy-observability,
which requires dagster (for a module nothing imports); neither tree is installed. Each check
runs in a fresh interpreter whose import system refuses those packages, so an import anywhere
fails the check even if a developer has them installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts processes

ROOT = Path(__file__).resolve().parents[2]

LEFT_OUT = (
    "boto3",
    "botocore",
    "s3transfer",
    "dagster",
    "dagster_pipes",
    "dagster_shared",
)

_REFUSE_LEFT_OUT = f"""
import importlib.abc, json, sys

LEFT_OUT = {LEFT_OUT!r}

class RefuseLeftOut(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in LEFT_OUT:
            raise ImportError(f"{{name}} is left out of the install, yet something imports it")
        return None

sys.meta_path.insert(0, RefuseLeftOut())
app_config = json.loads(sys.argv[1])
"""

_CHECKS = {
    "http app": """
from galaxy_express.http.app import make_wsgi_app
make_wsgi_app(app_config)
""",
    "thrift app": """
from galaxy_express.thrift.app import make_processor
make_processor(app_config)
""",
    "launcher, shell and reporter": """
from galaxy_express.runtime import launcher, reporter, shell
""",
    "migrate": """
from galaxy_express.runtime.migrate import upgrade
upgrade(app_config["db.url"])
""",
    "rebuild": """
from galaxy_express.runtime.rebuild import run
run(app_config)
""",
    "bench": """
import runpy
sys.path.insert(0, "scripts")  # as `python scripts/bench.py` has it
runpy.run_path("scripts/bench.py", run_name="bench")
""",
}


@pytest.mark.parametrize("check", list(_CHECKS))
def test_nothing_the_service_runs_imports_the_left_out_trees(
    check: str, sqlite_url: str, redis_url: str, tmp_path: Path
) -> None:
    from tests.conftest import load_app_config

    app_config = load_app_config(
        **{"db.url": sqlite_url, "redis.url": redis_url, "reports.dir": str(tmp_path / "r")}
    )
    code = _REFUSE_LEFT_OUT + _CHECKS[check] + "\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(app_config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    imported = {name.partition(".")[0] for name in json.loads(done.stdout.splitlines()[-1])}
    assert imported.isdisjoint(LEFT_OUT)
    assert "galaxy_express" in imported


def test_the_left_out_trees_are_not_installed() -> None:
    """`make install` installs the lock, and the lock keeps them out (markers never true)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {package["name"].lower() for package in json.loads(done.stdout)}
    assert installed.isdisjoint({"boto3", "botocore", "s3transfer", "dagster", "dagster-pipes"})
