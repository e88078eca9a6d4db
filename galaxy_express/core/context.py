"""What the service layer needs from a request's context.

Both a baseplate Pyramid request and a Thrift handler's context carry these
attributes (baseplate attaches them per request), so service functions take a
``ServiceContext`` and never know which edge called them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, cast

from baseplate import Baseplate
from redis import Redis
from sqlalchemy.orm import Session

from galaxy_express.core.config import Settings


class ServiceContext(Protocol):
    db: Session
    redis: Redis
    settings: Settings


@contextmanager
def standalone_context(baseplate: Baseplate, name: str) -> Iterator[ServiceContext]:
    """A request context outside any server (scripts, the reporter, the shell, tests).

    Its clients are closed when the block ends, as at the end of a request.
    """
    context = baseplate.make_context_object()
    span = baseplate.make_server_span(context, name)
    span.start()
    try:
        yield cast(ServiceContext, context)
    finally:
        span.finish()
