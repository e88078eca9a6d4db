"""The package's HTTP shape: its OpenAPI model and its JSON (delivery and the inbox answer it).

Both follow from ``PackageRecord``'s fields (core.shapes); only the documented
types the record holds more plainly are named here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from galaxy_express.core.shapes import json_text_renderer, record_json, shaped_like
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


def package_json_text(package: PackageRecord) -> str:
    """``json_text(package_json(package))``, written as text: a send's answer is one
    package, and building its dict to encode it was a tenth of the send's own CPU."""
    return _package_text(package)


_package_text = json_text_renderer(PackageRecord)
