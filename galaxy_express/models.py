"""Every domain's tables, imported so the metadata (and Alembic) knows them all."""

from galaxy_express.delivery.models import Package, PackageCounter, PreferenceUpdate
from galaxy_express.inbox.models import InboxEntry, SpamReport

__all__ = ["InboxEntry", "Package", "PackageCounter", "PreferenceUpdate", "SpamReport"]
