"""The Thrift handler: one class made of each domain's methods.

Every method takes the baseplate request context first (the processor is
wrapped with ``baseplateify_processor``, or with tracing off its lean twin
``observed.observe_processor``); service errors leave as
``baseplate.Error`` with the HTTP status as their code. Mutating methods
answer repeats under an ``idempotency_key`` once (``edge.answer_idempotently``).
"""

from __future__ import annotations

from baseplate.thrift.ttypes import IsHealthyProbe, IsHealthyRequest

from galaxy_express.core.context import ServiceContext
from galaxy_express.core.health import check_health
from galaxy_express.thrift.delivery import DeliveryHandler
from galaxy_express.thrift.edge import answer_idempotently, translate_service_errors
from galaxy_express.thrift.inbox import InboxHandler
from galaxy_express.thrift.reports import ReportsHandler
from galaxy_express.thrift.tasks import TasksHandler
from galaxy_express.thrift.users import UsersHandler
from galaxy_express.thrift.webhooks import WebhooksHandler


@translate_service_errors
@answer_idempotently
class Handler(
    DeliveryHandler, InboxHandler, UsersHandler, TasksHandler, ReportsHandler, WebhooksHandler
):
    def is_healthy(self, context: ServiceContext, request: IsHealthyRequest | None = None) -> bool:
        # Liveness asks only whether this process serves: a dependency outage must not get
        # healthy workers restarted. Readiness, startup and probes we don't know ask both.
        if request is not None and request.probe == IsHealthyProbe.LIVENESS:
            return True
        return check_health(context).healthy
