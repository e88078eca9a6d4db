"""The package's HTTP shape: its OpenAPI model and its JSON (delivery and the inbox answer it).

Both follow from ``PackageRecord``'s fields (core.shapes); only the documented
types the record holds more plainly are named here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from galaxy_express.core.shapes import record_json, shaped_like
from galaxy_express.packages.records import Content, PackageRecord


@shaped_like(Content)
class ContentOut(BaseModel):
    pass


@shaped_like(
    PackageRecord, types={"content": ContentOut | None, "status": Literal["delivered", "dropped"]}
)
class PackageOut(BaseModel):
    pass


def package_json(package: PackageRecord) -> dict[str, Any]:
    return record_json(package)
