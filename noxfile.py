"""`make check-pythons`: install the locked service and smoke-test it on each CPython 3.11+.

A version that isn't installed is skipped (the Makefile also looks in pyenv's versions).
"""

from __future__ import annotations

import nox

nox.options.error_on_missing_interpreters = False
nox.options.reuse_existing_virtualenvs = False


@nox.session(python=["3.11", "3.12", "3.13"])
def smoke(session: nox.Session) -> None:
    """The install `make install` does, then scripts/smoke.py on it."""
    session.install("--quiet", "--upgrade", "pip")
    session.install("--quiet", "--require-hashes", "--no-deps", "-r", "requirements/runtime.txt")
    session.install("--quiet", "--no-deps", "--no-build-isolation", ".")
    session.run("python", "scripts/smoke.py")
