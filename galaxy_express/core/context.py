"""What the service layer needs from a request's context.

Both a baseplate Pyramid request and a Thrift handler's context carry these
attributes (baseplate attaches them per request), so service functions take a
``ServiceContext`` and never know which edge called them.
"""

from __future__ import annotations

from typing import Protocol

from redis import Redis
from sqlalchemy.orm import Session

from galaxy_express.core.config import Settings


class ServiceContext(Protocol):
    db: Session
    redis: Redis
    settings: Settings
