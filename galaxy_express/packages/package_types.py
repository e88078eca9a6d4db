"""The registry of package types.

Adding a type is one entry here: schemas, preferences, statistics, the OpenAPI
document and the Thrift edge all read this tuple.
"""

from __future__ import annotations

PACKAGE_TYPES: tuple[str, ...] = ("personal", "marketing")

# Why a package was dropped. ``invalid`` counts rejected requests (never stored);
# ``sender_reported`` is used when spam blocking is configured.
DROP_REASONS: tuple[str, ...] = ("opted_out", "invalid", "sender_reported")
