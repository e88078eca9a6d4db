"""The HTTP operations, gathered per domain: each module's ``api``, in route order.

Each domain declares its operations in its own ``views.py``; the app factory
routes them and ``/openapi.json`` documents them, both from this one list.
"""

from __future__ import annotations

import importlib

from galaxy_express.http.web import Api

# The HTTP operations of each domain (a module with an ``api``), in route order.
DOMAIN_VIEWS: tuple[str, ...] = (
    "galaxy_express.http.ops",
    "galaxy_express.delivery.views",
    "galaxy_express.inbox.views",
    "galaxy_express.users.views",
    "galaxy_express.tasks.views",
    "galaxy_express.webhooks.views",
    "galaxy_express.reports.views",
)


def domain_apis() -> list[Api]:
    """Every domain's ``Api``, imported on first use (``http.ops`` is one of them)."""
    return [importlib.import_module(name).api for name in DOMAIN_VIEWS]
