"""Health of the service's dependencies, for /health and Thrift's is_healthy."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from galaxy_express.core.context import ServiceContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    database: bool
    redis: bool

    @property
    def healthy(self) -> bool:
        return self.database and self.redis


def check_health(context: ServiceContext) -> Health:
    return Health(database=_database_answers(context), redis=_redis_answers(context))


def _database_answers(context: ServiceContext) -> bool:
    try:
        context.db.execute(text("SELECT 1"))
        context.db.rollback()
        return True
    except SQLAlchemyError:
        logger.warning("health: the database does not answer", exc_info=True)
        context.db.rollback()
        return False


def _redis_answers(context: ServiceContext) -> bool:
    try:
        return bool(context.redis.ping())
    except (RedisError, OSError):
        logger.warning("health: Redis does not answer", exc_info=True)
        return False
