"""Operator helpers for ``make shell`` (baseplate-shell's ``[shell] setup``)."""

from __future__ import annotations

from typing import Any

from galaxy_express.context import ServiceContext
from galaxy_express.delivery import service as delivery
from galaxy_express.delivery.records import PackageRecord, Statistics
from galaxy_express.inbox import service as inbox
from galaxy_express.inbox.records import SpamCountRebuild


class Helpers:
    """Bound to the shell's context; each helper is one service call."""

    def __init__(self, context: ServiceContext) -> None:
        self._context = context

    def stats(self) -> Statistics:
        """Delivery statistics, as GET /v1/stats answers."""
        return delivery.get_statistics(self._context)

    def package(self, package_id: str) -> PackageRecord:
        """Look up one package record."""
        return delivery.get_package(self._context, package_id)

    def rebuild_spam_counts(self) -> SpamCountRebuild:
        """Rebuild every sender's Redis spam count exactly from the stored reports."""
        return inbox.rebuild_spam_counts(self._context)


def setup(env: dict[str, Any], env_banner: dict[str, str]) -> None:
    context = env["context"]
    helpers = Helpers(context)
    env.update(db=context.db, redis=context.redis, ops=helpers)
    env_banner.update(
        db="SQLAlchemy session (commit explicitly)",
        redis="Redis client",
        ops="helpers: ops.stats(), ops.package(id), ops.rebuild_spam_counts()",
    )
