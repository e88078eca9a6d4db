"""Every domain's tables, imported so the metadata (and Alembic) knows them all.

Only migrations and the entry points need every table at once, and only the
runtime may know every domain, so the list lives here.
"""

from galaxy_express.db.idempotency import IdempotencyKey
from galaxy_express.delivery.models import PackageCounter, PreferenceUpdate
from galaxy_express.inbox.models import InboxChange, InboxEntry, InboxSequence, SpamReport
from galaxy_express.packages.models import Package
from galaxy_express.reports.models import ReportWindow
from galaxy_express.tasks.models import Task, TaskAssignee
from galaxy_express.users.models import User
from galaxy_express.webhooks.models import ExternalTask, SeenWebhookId, WebhookDelivery

__all__ = [
    "ExternalTask",
    "IdempotencyKey",
    "InboxChange",
    "InboxEntry",
    "InboxSequence",
    "Package",
    "PackageCounter",
    "PreferenceUpdate",
    "ReportWindow",
    "SeenWebhookId",
    "SpamReport",
    "Task",
    "TaskAssignee",
    "User",
    "WebhookDelivery",
]
