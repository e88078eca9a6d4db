"""The users service: create, look up, list and delete users.

A username is unique regardless of case, and an id is unique: both are
enforced by the database (a unique index on ``lower(username)`` and the
primary key), and the insert uses ON CONFLICT DO NOTHING, so of two racing
creations exactly one wins and the other gets a 409.
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from galaxy_express.core import clock
from galaxy_express.core.context import ServiceContext
from galaxy_express.core.errors import Conflict, FieldError, NotFound
from galaxy_express.core.pagination import Page, PageQuery, SortKey, fingerprint, paginate
from galaxy_express.db import insert_ignoring_conflicts, unit_of_work
from galaxy_express.users.commands import CreateUser
from galaxy_express.users.models import User
from galaxy_express.users.records import UserRecord

USER_ID_PREFIX = "usr_"


def new_user_id() -> str:
    """A fresh id of the id pattern, unguessable and unique in practice."""
    return USER_ID_PREFIX + secrets.token_hex(12)


def create_user(context: ServiceContext, command: CreateUser) -> UserRecord:
    """Create a user; a taken username (any case) or id is a 409 and changes nothing."""
    user = UserRecord(
        id=command.id if command.id is not None else new_user_id(),
        username=command.username,
        created_at=clock.now(),
    )
    with unit_of_work(context.db, write=True) as session:
        values = {"id": user.id, "username": user.username, "created_at": user.created_at}
        if not insert_ignoring_conflicts(session, User.__table__, values):
            raise _conflict(session, user)
    return user


def get_user(context: ServiceContext, user_id: str) -> UserRecord:
    with unit_of_work(context.db) as session:
        return UserRecord.from_row(require_user(session, user_id))


def list_users(context: ServiceContext, query: PageQuery) -> Page[UserRecord]:
    """Users in the order they were created (ties by id)."""
    order = [SortKey(User.created_at), SortKey(User.id)]
    with unit_of_work(context.db) as session:
        page = paginate(
            session,
            select(User),
            order,
            lambda user: (user.created_at, user.id),
            limit=query.limit,
            cursor=query.cursor,
            query_fingerprint=fingerprint(list="users"),
            secrets=context.settings.cursor_secrets,
        )
        return Page([UserRecord.from_row(user) for user in page.items], page.next_cursor)


def delete_user(context: ServiceContext, user_id: str) -> None:
    """Delete a user and their task assignments (tasks they own keep their owner_id)."""
    with unit_of_work(context.db, write=True) as session:
        require_user(session, user_id)
        # Their task assignments go with them: the foreign key cascades
        # (ON DELETE CASCADE; SQLite connections turn foreign keys on).
        session.execute(delete(User).where(User.id == user_id))


def require_user(session: Session, user_id: str) -> User:
    """The user, or NotFound (404)."""
    user = session.get(User, user_id)
    if user is None:
        raise no_such_user(user_id)
    return user


def no_such_user(user_id: str) -> NotFound:
    return NotFound(f"no user {user_id!r}", (FieldError("user_id", "no such user"),))


def _conflict(session: Session, user: UserRecord) -> Conflict:
    """Name what was taken (the row that won is committed and visible by now)."""
    if session.get(User, user.id) is not None:
        return Conflict(f"the id {user.id!r} is taken", (FieldError("id", "already taken"),))
    taken = session.execute(
        select(User.id).where(func.lower(User.username) == user.username.lower())
    ).first()
    if taken is not None:
        return Conflict(
            f"the username {user.username!r} is taken",
            (FieldError("username", "already taken (usernames ignore case)"),),
        )
    # The winner was deleted again in the meantime; still not ours to create.
    return Conflict("the id or username was taken by a concurrent request")
