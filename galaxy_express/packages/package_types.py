"""The registry of package types.

Adding a type is one entry here: schemas, preferences, statistics, the OpenAPI
document and the Thrift edge all read this tuple.
"""

from __future__ import annotations

from typing import Literal

PACKAGE_TYPES: tuple[str, ...] = ("personal", "marketing")

# Why a package was dropped. ``invalid`` counts rejected requests (never stored);
# ``sender_reported`` is used when spam blocking is configured.
DROP_REASONS: tuple[str, ...] = ("opted_out", "invalid", "sender_reported")

# The type a request names, as pydantic validates it and OpenAPI documents it.
PackageType = Literal[PACKAGE_TYPES]  # type: ignore[valid-type]
