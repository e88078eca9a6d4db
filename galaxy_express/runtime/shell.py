"""Operator helpers for ``make shell`` (baseplate-shell's ``[shell] setup``)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import baseplate.server

from galaxy_express.core.context import ServiceContext
from galaxy_express.db import idempotency, unit_of_work
from galaxy_express.delivery import service as delivery
from galaxy_express.delivery.records import Statistics
from galaxy_express.inbox import service as inbox
from galaxy_express.inbox.commands import MAX_CHANGES_LIMIT
from galaxy_express.inbox.records import SpamCountRebuild
from galaxy_express.inbox.schemas import change_event_json
from galaxy_express.packages.records import PackageRecord
from galaxy_express.webhooks import deliveries
from galaxy_express.webhooks.commands import DeliveryQuery
from galaxy_express.webhooks.records import DeliveryRecord, Replay


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

    def idempotency_key(self, key: str) -> list[idempotency.StoredKey]:
        """Every stored use of an Idempotency-Key: operation, when, and its first answer."""
        with unit_of_work(self._context.db) as session:
            return idempotency.look_up(session, key)

    def prune_idempotency_keys(self) -> int:
        """Prune the keys past idempotency.retention_days now (the reporter does it too)."""
        days = self._context.settings.idempotency_retention_days
        return idempotency.prune_expired(self._context.db, days)

    def rebuild_spam_counts(self) -> SpamCountRebuild:
        """Rebuild every sender's Redis spam count exactly from the stored reports."""
        return inbox.rebuild_spam_counts(self._context)

    def tail_changes(
        self,
        recipient_id: str,
        since: int = 0,
        *,
        follow: bool = True,
        poll_seconds: float = 1.0,
        show: Callable[[str], None] = print,
    ) -> int:
        """Print a mailbox's changes after ``since``, one JSON line each (as GET
        /v1/inbox/{id}/changes renders them), then wait for more until Ctrl-C
        (``follow=False``: stop once caught up). Returns the last seq shown."""
        try:
            while True:
                page = inbox.read_changes(self._context, recipient_id, since, MAX_CHANGES_LIMIT)
                for event in page.changes:
                    show(json.dumps(change_event_json(event), separators=(",", ":")))
                since = page.next_since
                if page.has_more:
                    continue
                if not follow:
                    return since
                time.sleep(poll_seconds)
        except KeyboardInterrupt:
            return since

    def deliveries(self, **filters: Any) -> list[DeliveryRecord]:
        """Logged webhook deliveries, newest first (outcome=, event=, external_id=, limit=)."""
        query = DeliveryQuery.model_validate(filters)
        return deliveries.list_deliveries(self._context, query).items

    def delivery(self, delivery_id: int) -> DeliveryRecord:
        """One logged webhook delivery with its body and headers (signature redacted)."""
        return deliveries.get_delivery(self._context, delivery_id)

    def replay(self, delivery_id: int) -> Replay:
        """Replay a logged webhook delivery, as POST /v1/webhooks/deliveries/{id}/replay."""
        return deliveries.replay_delivery(self._context, delivery_id)


def setup(env: dict[str, Any], env_banner: dict[str, str]) -> None:
    context = env["context"]
    helpers = Helpers(context)
    env.update(db=context.db, redis=context.redis, ops=helpers)
    env_banner.update(
        db="SQLAlchemy session (commit explicitly)",
        redis="Redis client",
        ops=(
            "helpers: ops.stats(), ops.package(id), ops.rebuild_spam_counts(), "
            "ops.idempotency_key(key), ops.prune_idempotency_keys(), "
            "ops.tail_changes(recipient_id, since=0), "
            "ops.deliveries(outcome=..., external_id=...), ops.delivery(id), ops.replay(id)"
        ),
    )


def main() -> None:
    """``baseplate-shell``, with its audit log in ``var/`` when baseplate's isn't writable.

    baseplate writes every line typed to /var/log/baseplate-shell.log (or, in a
    container, to PID 1's stdout), which a developer's own account usually
    can't write.
    """
    if not _writable(baseplate.server._get_shell_log_path()):
        local_log = Path("var/baseplate-shell.log").resolve()
        local_log.parent.mkdir(parents=True, exist_ok=True)
        baseplate.server._get_shell_log_path = lambda: str(local_log)
    sys.argv = ["baseplate-shell", *sys.argv[1:]]
    baseplate.server.load_and_run_shell()


def _writable(path: str) -> bool:
    try:
        with open(path, "a", encoding="utf-8"):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
