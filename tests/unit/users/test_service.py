"""The users service on its own: conflicts decided by the database, not by a prior read."""

from __future__ import annotations

from typing import Any

import gevent
import pytest

from galaxy_express.bootstrap import make_baseplate
from galaxy_express.core.errors import Conflict
from galaxy_express.users import service
from galaxy_express.users.commands import CreateUser


def test_generated_ids_fit_the_id_pattern_and_differ(context) -> None:
    first = service.create_user(context, CreateUser(username="leela"))
    second = service.create_user(context, CreateUser(username="fry"))
    assert first.id != second.id
    assert service.get_user(context, first.id) == first


def test_racing_creations_in_separate_sessions_give_one_user(app_config) -> None:
    """Each greenlet has its own request context and database session, as requests do."""
    baseplate, _ = make_baseplate(app_config)
    outcomes: list[Any] = []

    def create(username: str) -> None:
        context = baseplate.make_context_object()
        span = baseplate.make_server_span(context, "test")
        span.start()
        try:
            outcomes.append(service.create_user(context, CreateUser(username=username, id="same")))
        except Conflict as conflict:
            outcomes.append(conflict)
        finally:
            span.finish()

    gevent.joinall([gevent.spawn(create, f"racer{i}") for i in range(8)], raise_error=True)
    created = [outcome for outcome in outcomes if not isinstance(outcome, Conflict)]
    assert len(created) == 1
    assert len(outcomes) == 8
    assert all(o.errors[0].field == "id" for o in outcomes if isinstance(o, Conflict))


def test_conflict_names_the_username_whatever_its_case(context) -> None:
    service.create_user(context, CreateUser(username="Kif.Kroker"))
    with pytest.raises(Conflict) as raised:
        service.create_user(context, CreateUser(username="kif.KROKER"))
    assert [error.field for error in raised.value.errors] == ["username"]
