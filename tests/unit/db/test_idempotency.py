"""The idempotency key store and its rules, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from galaxy_express.core import clock
from galaxy_express.core.errors import IdempotencyKeyReused, MalformedRequest
from galaxy_express.core.idempotency import Answer, fingerprint, is_kept, parse_key, scope_of
from galaxy_express.db import idempotency as keys
from galaxy_express.db import unit_of_work
from galaxy_express.db.driver import driver_transaction
from galaxy_express.db.unit_of_work import in_request_transaction, request_transaction

SCOPE = scope_of("POST", "/v1/tasks", None)
ANSWER = Answer(201, b'{"id":"t-1"}', {"Location": "/v1/tasks/t-1"})


def count_keys(context: Any) -> int:
    with unit_of_work(context.db) as session:
        return int(
            session.execute(select(func.count()).select_from(keys.IdempotencyKey)).scalar_one()
        )


@pytest.mark.parametrize("key", ["a", "~" * 255, "Az09!#$%&'()*+,-./:;<=>?@[]^_`{|}~"])
def test_visible_ascii_keys_of_1_to_255_characters_are_taken(key: str) -> None:
    assert parse_key(key) == key


@pytest.mark.parametrize("key", ["", " ", "a b", "é", "x" * 256, "a\nb", "\x7f"])
def test_other_keys_are_malformed(key: str) -> None:
    with pytest.raises(MalformedRequest):
        parse_key(key)


def test_scopes_differ_by_method_path_and_caller() -> None:
    scopes = {
        scope_of("POST", "/v1/tasks", None),
        scope_of("PUT", "/v1/tasks", None),
        scope_of("POST", "/v1/users", None),
        scope_of("POST", "/v1/tasks", "caller-1"),
    }
    assert len(scopes) == 4


def test_the_fingerprint_ignores_the_order_of_keys() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": "1"})


def test_operation_answers_are_kept_refusals_and_failures_are_not() -> None:
    assert [s for s in (200, 201, 204, 404, 409) if is_kept(s)] == [200, 201, 204, 404, 409]
    assert not [s for s in (400, 401, 413, 415, 422, 500, 503) if is_kept(s)]


def test_a_claimed_key_answers_its_repeats(context: Any) -> None:
    with request_transaction(context.db) as session:
        assert keys.claim(session, SCOPE, "k", "POST /v1/tasks", "f1") is None
        keys.record(session, SCOPE, "k", ANSWER)
    with request_transaction(context.db) as session:
        assert keys.claim(session, SCOPE, "k", "POST /v1/tasks", "f1") == ANSWER
    with request_transaction(context.db) as session, pytest.raises(IdempotencyKeyReused):
        keys.claim(session, SCOPE, "k", "POST /v1/tasks", "f2")
    assert count_keys(context) == 1


def test_a_claim_rolled_back_with_its_effects_leaves_no_key(context: Any) -> None:
    def fail_after_claiming() -> None:
        with request_transaction(context.db) as session:
            keys.claim(session, SCOPE, "k", "POST /v1/tasks", "f1")
            raise RuntimeError("the operation failed")

    with pytest.raises(RuntimeError):
        fail_after_claiming()
    assert count_keys(context) == 0


def test_a_released_key_is_free_again(context: Any) -> None:
    with request_transaction(context.db) as session:
        keys.claim(session, SCOPE, "k", "POST /v1/tasks", "f1")
        keys.release(session, SCOPE, "k")
    with request_transaction(context.db) as session:
        assert keys.claim(session, SCOPE, "k", "POST /v1/tasks", "f2") is None
        keys.record(session, SCOPE, "k", ANSWER)
    assert count_keys(context) == 1


def test_units_of_work_join_the_request_transaction_as_savepoints(context: Any) -> None:
    with request_transaction(context.db) as session:
        assert in_request_transaction(session)
        keys.claim(session, SCOPE, "k", "POST /v1/tasks", "f1")

        def fail_in_a_unit() -> None:
            with unit_of_work(session, write=True):
                keys.claim(session, SCOPE, "other", "POST /v1/tasks", "f1")
                raise RuntimeError("this unit alone rolls back")

        with pytest.raises(RuntimeError):
            fail_in_a_unit()
        keys.record(session, SCOPE, "k", ANSWER)
    assert not in_request_transaction(context.db)
    with unit_of_work(context.db) as session:
        assert [s.key for s in keys.look_up(session, "k")] == ["k"]
        assert keys.look_up(session, "other") == []


def test_a_driver_transaction_joins_the_request_transaction_as_a_savepoint(context: Any) -> None:
    """A failed driver write (here a real constraint error, which on PostgreSQL
    aborts the whole transaction unless rolled back to its savepoint) undoes
    only itself; the request's other writes and a later driver write commit."""
    table = keys.IdempotencyKey.__table__
    row = {
        "scope": SCOPE,
        "operation": "POST /v1/tasks",
        "fingerprint": "f1",
        "created_at": clock.now(),
    }
    with request_transaction(context.db) as session:
        keys.claim(session, SCOPE, "k", "POST /v1/tasks", "f1")

        def fail_in_a_driver_write() -> None:
            with driver_transaction(session) as transaction:
                transaction.execute(insert(table), {**row, "key": "undone"})
                transaction.execute(insert(table), {**row, "key": "k"})  # taken: refused

        with pytest.raises(IntegrityError):
            fail_in_a_driver_write()
        with driver_transaction(session) as transaction:
            transaction.execute(insert(table), {**row, "key": "kept"})
        keys.record(session, SCOPE, "k", ANSWER)
    with unit_of_work(context.db) as session:
        assert [s.answer for s in keys.look_up(session, "k")] == [ANSWER]
        assert [s.key for s in keys.look_up(session, "kept")] == ["kept"]
        assert keys.look_up(session, "undone") == []


def test_keys_past_their_retention_are_pruned_in_batches(context: Any) -> None:
    old = datetime(2140, 1, 1, tzinfo=UTC)
    with clock.frozen(old), unit_of_work(context.db, write=True) as session:
        for index in range(keys.PRUNE_BATCH + 3):
            keys.claim(session, SCOPE, f"old-{index}", "POST /v1/tasks", "f")
            keys.record(session, SCOPE, f"old-{index}", ANSWER)
    with clock.frozen(old + timedelta(days=29)), unit_of_work(context.db, write=True) as session:
        keys.claim(session, SCOPE, "young", "POST /v1/tasks", "f")
        keys.record(session, SCOPE, "young", ANSWER)
    with clock.frozen(old + timedelta(days=31)):
        assert keys.prune_expired(context.db, 0) == 0  # kept forever
        assert keys.prune_expired(context.db, 30, batches=1) == keys.PRUNE_BATCH
        assert keys.prune_expired(context.db, 30) == 3
    with unit_of_work(context.db) as session:
        [young] = keys.look_up(session, "young")
    assert young.answer == ANSWER
    assert young.operation == "POST /v1/tasks"
    assert count_keys(context) == 1


def test_the_housekeeping_round_prunes_keys_too(context: Any, tmp_path: Any) -> None:
    from galaxy_express.runtime.reporter import housekeeping_round

    old = datetime(2140, 1, 1, tzinfo=UTC)
    with clock.frozen(old), unit_of_work(context.db, write=True) as session:
        keys.claim(session, SCOPE, "old", "POST /v1/tasks", "f")
        keys.record(session, SCOPE, "old", ANSWER)
    with clock.frozen(old + timedelta(days=29)):
        assert housekeeping_round(context, tmp_path)["idempotency keys"] == 0
    with clock.frozen(old + timedelta(days=31)):
        assert housekeeping_round(context, tmp_path)["idempotency keys"] == 1
    assert count_keys(context) == 0
