"""idempotency_key on every mutating Thrift method, against a real Thrift server.

Driven by the generated code: every method taking an ``idempotency_key`` needs an
example here, and every method but the reads (get_, list_, is_healthy) must take one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from baseplate.thrift.ttypes import Error

from galaxy_express.thrift.edge import keyed_methods
from galaxy_express.thrift.gen import GalaxyExpress, ttypes
from tests.conftest import new_id
from tests.integration.test_idempotency_http import delivered_webhook, snapshot, stored_keys

Call = Callable[[Any, str | None], Any]  # (client, key) -> answer


@dataclass(frozen=True)
class Example:
    call: Call
    other: Call  # the same method and key, another request
    invalid: Call  # refused by validation


def _package(package_id: str, subject: str = "hi", key: str | None = None) -> Any:
    return ttypes.SendPackageRequest(
        timestamp=5_000_000_000_000,
        sender_id="earth-7",
        recipient_id="mars-1",
        package_id=package_id,
        package_type="personal",
        content=ttypes.Content(subject=subject, body="b"),
        idempotency_key=key,
    )


def _preferences(timestamp: int, key: str | None) -> Any:
    return ttypes.UpdatePreferencesRequest(
        timestamp=timestamp,
        recipient_id="m",
        personal_preference=True,
        marketing_preference=False,
        idempotency_key=key,
    )


def _inbox(client: Any) -> Example:
    for package_id in ("p-a", "p-b"):
        client.send_package(_package(package_id))

    def update(ids: list[str]) -> Call:
        return lambda c, key: c.update_inbox(
            ttypes.UpdateInboxRequest(
                recipient_id="mars-1",
                action=ttypes.InboxAction.TRASH,
                package_ids=ids,
                idempotency_key=key,
            )
        )

    return Example(update(["p-a"]), update(["p-b"]), update([]))


def _inbox_by_filter(client: Any) -> Example:
    for package_id in ("p-a", "p-b"):
        client.send_package(_package(package_id))

    def update(up_to_seq: int) -> Call:
        return lambda c, key: c.update_inbox_by_filter(
            ttypes.UpdateInboxByFilterRequest(
                recipient_id="mars-1",
                action=ttypes.InboxAction.TRASH,
                up_to_seq=up_to_seq,
                idempotency_key=key,
            )
        )

    return Example(update(1), update(2), update(-1))


def _user(client: Any) -> str:
    return str(client.create_user(ttypes.CreateUserRequest(username=new_id("u"))).id)


def _task(client: Any) -> str:
    return str(client.create_task(ttypes.CreateTaskRequest(name="t")).id)


def _by_id(method: str, make: Callable[[Any], str]) -> Callable[[Any], Example]:
    def example(client: Any) -> Example:
        made, other = make(client), make(client)
        return Example(
            lambda c, key: getattr(c, method)(made, key),
            lambda c, key: getattr(c, method)(other, key),
            lambda c, key: getattr(c, method)("bad id", key),
        )

    return example


def _assignment(method: str) -> Callable[[Any], Example]:
    def example(client: Any) -> Example:
        task, user, other = _task(client), _user(client), _user(client)
        for assignee in (user, other):
            client.assign_task(task, assignee, None)
        return Example(
            lambda c, key: getattr(c, method)(task, user, key),
            lambda c, key: getattr(c, method)(task, other, key),
            lambda c, key: getattr(c, method)(task, "bad id", key),
        )

    return example


def _update_task(client: Any) -> Example:
    task = _task(client)

    def update(name: str) -> Call:
        return lambda c, key: c.update_task(
            ttypes.UpdateTaskRequest(task_id=task, name=name, idempotency_key=key)
        )

    return Example(update("a"), update("b"), update(""))


def _lookup(client: Any) -> Example:
    client.send_package(_package("p-1"))

    def lookup(ids: list[str]) -> Call:
        return lambda c, key: c.lookup_packages(
            ttypes.LookupPackagesRequest(package_ids=ids, idempotency_key=key)
        )

    return Example(lookup(["p-1"]), lookup(["p-1", "p-2"]), lookup([]))


def _batch(ids: list[str]) -> Call:
    return lambda c, key: c.send_packages(
        ttypes.SendPackagesRequest(packages=[_package(i) for i in ids], idempotency_key=key)
    )


# Webhook deliveries arrive over HTTP only: the replay example makes them with the
# HTTP app of the same database (set by the tests below before each example is made).
_HTTP: list[Any] = []


def _replay(client: Any) -> Example:
    made, other = (delivered_webhook(_HTTP[0], new_id("todo")) for _ in range(2))
    return Example(
        lambda c, key: c.replay_webhook_delivery(made, key),
        lambda c, key: c.replay_webhook_delivery(other, key),
        lambda c, key: c.replay_webhook_delivery(-1, key),
    )


EXAMPLES: dict[str, Callable[[Any], Example]] = {
    "lookup_packages": _lookup,
    "send_packages": lambda client: Example(_batch(["p-1"]), _batch(["p-2"]), _batch([])),
    "replay_webhook_delivery": _replay,
    "send_package": lambda client: Example(
        lambda c, key: c.send_package(_package("p-1", key=key)),
        lambda c, key: c.send_package(_package("p-2", key=key)),
        lambda c, key: c.send_package(_package("bad id", key=key)),
    ),
    "update_preferences": lambda client: Example(
        lambda c, key: c.update_preferences(_preferences(5_000_000_000_000, key)),
        lambda c, key: c.update_preferences(_preferences(5_000_000_001_000, key)),
        lambda c, key: c.update_preferences(_preferences(-1, key)),
    ),
    "update_inbox": _inbox,
    "update_inbox_by_filter": _inbox_by_filter,
    "create_user": lambda client: Example(
        lambda c, key: c.create_user(ttypes.CreateUserRequest(username="zap", idempotency_key=key)),
        lambda c, key: c.create_user(ttypes.CreateUserRequest(username="zip", idempotency_key=key)),
        lambda c, key: c.create_user(ttypes.CreateUserRequest(username="", idempotency_key=key)),
    ),
    "delete_user": _by_id("delete_user", _user),
    "create_task": lambda client: Example(
        lambda c, key: c.create_task(ttypes.CreateTaskRequest(name="a", idempotency_key=key)),
        lambda c, key: c.create_task(ttypes.CreateTaskRequest(name="b", idempotency_key=key)),
        lambda c, key: c.create_task(ttypes.CreateTaskRequest(name="", idempotency_key=key)),
    ),
    "update_task": _update_task,
    "delete_task": _by_id("delete_task", _task),
    "assign_task": _assignment("assign_task"),
    "unassign_task": _assignment("unassign_task"),
}


def _without_marker(answer: Any) -> Any:
    if hasattr(answer, "replayed"):
        answer.replayed = None
    return answer


def test_every_mutating_method_takes_a_key_and_has_an_example() -> None:
    methods = {name for name in dir(GalaxyExpress.Iface) if not name.startswith("_")}
    reads = {name for name in methods if name.startswith(("get_", "list_", "is_healthy"))}
    assert keyed_methods() == methods - reads
    assert set(EXAMPLES) == keyed_methods()


@pytest.mark.parametrize("method", sorted(EXAMPLES))
def test_a_key_answers_once(
    thrift_client: Any, testapp: Any, database_url: str, method: str
) -> None:
    _HTTP[:] = [testapp]
    example = EXAMPLES[method](thrift_client)
    key = new_id("key")

    first = example.call(thrift_client, key)
    assert not getattr(first, "replayed", None)
    before = snapshot(database_url)
    again = example.call(thrift_client, key)
    if first is None:
        assert again is None
    else:
        assert again.replayed is True
        assert _without_marker(again) == _without_marker(first)

    with pytest.raises(Error) as reused:
        example.other(thrift_client, key)
    assert reused.value.code == 422
    assert "idempotency_key" in reused.value.details
    assert snapshot(database_url) == before


@pytest.mark.parametrize("method", sorted(EXAMPLES))
def test_a_refused_request_leaves_its_key_free(
    thrift_client: Any, testapp: Any, database_url: str, method: str
) -> None:
    _HTTP[:] = [testapp]
    example = EXAMPLES[method](thrift_client)
    key = new_id("key")
    with pytest.raises(Error) as refused:
        example.invalid(thrift_client, key)
    assert refused.value.code == 422
    assert "idempotency_key" not in (refused.value.details or {})
    assert stored_keys(database_url, key) == 0
    example.call(thrift_client, key)
    assert stored_keys(database_url, key) == 1


def test_a_key_that_is_not_visible_ascii_is_400(thrift_client: Any) -> None:
    for key in ("", "a b", "x" * 256):
        with pytest.raises(Error) as refused:
            thrift_client.create_task(ttypes.CreateTaskRequest(name="a", idempotency_key=key))
        assert refused.value.code == 400
    assert thrift_client.list_tasks(ttypes.ListTasksRequest()).items == []


def test_a_kept_error_is_replayed(thrift_client: Any) -> None:
    user = _user(thrift_client)
    thrift_client.delete_user(user, "del-1")
    thrift_client.delete_user(user, "del-1")  # the first answer: done, not 404
    with pytest.raises(Error) as missing:
        thrift_client.delete_user(user, "del-2")
    assert missing.value.code == 404
    with pytest.raises(Error) as again:
        thrift_client.delete_user(user, "del-2")
    assert (again.value.code, again.value.message) == (404, missing.value.message)


def test_http_and_thrift_keys_do_not_meet(thrift_client: Any, testapp: Any) -> None:
    made = thrift_client.create_task(ttypes.CreateTaskRequest(name="a", idempotency_key="k"))
    over_http = testapp.post_json("/v1/tasks", {"name": "a"}, headers={"Idempotency-Key": "k"})
    assert "Idempotent-Replayed" not in over_http.headers
    assert over_http.json["id"] != made.id
