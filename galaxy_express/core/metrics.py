"""The service's own Prometheus counters (baseplate exports its server metrics)."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter

PACKAGES = Counter(
    "galaxy_express_packages_total",
    "Packages processed, by outcome",
    ["status", "reason", "package_type"],
)
SPAM_REPORTS = Counter(
    "galaxy_express_spam_reports_total", "Spam reports that added a new reporter to a sender"
)
SPAM_COUNT_SYNC_FAILURES = Counter(
    "galaxy_express_spam_count_sync_failures_total",
    "Spam reports stored while Redis could not be told (run the spam count rebuild)",
)
INBOX_WAKEUP_FAILURES = Counter(
    "galaxy_express_inbox_wakeup_failures_total",
    "Inbox changes committed whose Redis wake-up could not be published (streams poll)",
)
WEBHOOK_DELIVERIES = Counter(
    "galaxy_express_webhook_deliveries_total", "Task webhook deliveries, by outcome", ["outcome"]
)


def count_package(status: str, reason: str | None, package_type: str | None) -> None:
    _package_counter(status, reason, package_type).inc()


# labels() checks, joins and looks up the label values under a lock on every call; a
# send's come from a few known values (two statuses, the drop reasons, the package
# types), so each labelled child is looked up once per process and kept.
@functools.cache
def _package_counter(status: str, reason: str | None, package_type: str | None) -> Any:
    return PACKAGES.labels(status=status, reason=reason or "", package_type=package_type or "")
