"""Thrift clients that misbehave: the server keeps serving everyone else."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest
from baseplate.thrift.ttypes import Error
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.Thrift import TApplicationException, TMessageType
from thrift.transport.TSocket import TSocket
from thrift.transport.TTransport import TBufferedTransport, TMemoryBuffer

from galaxy_express.thrift.gen import GalaxyExpress, ttypes
from tests.conftest import connect_thrift, serving_thrift
from tests.support import OwnRedis, new_id, send_over_thrift, spam_report_rows


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The Thrift edge misbehaves the same on any database: SQLite is enough here."""
    return sqlite_url


def send_request(package_id: str) -> ttypes.SendPackageRequest:
    return ttypes.SendPackageRequest(
        timestamp=7_000_000_000_000,
        sender_id="venus-3",
        recipient_id="mars-9",
        package_id=package_id,
        package_type="personal",
        content=ttypes.Content(subject="hi", body="x" * 2000),
    )


def call_bytes(package_id: str) -> bytes:
    """A whole send_package call as a plain binary client puts it on the wire."""
    buffer = TMemoryBuffer()
    GalaxyExpress.Client(TBinaryProtocol(buffer)).send_send_package(send_request(package_id))
    return buffer.getvalue()


def raw_connection(server: tuple[str, int]) -> socket.socket:
    return socket.create_connection(server, timeout=5)


def still_serving(server: tuple[str, int]) -> Any:
    client, transport = connect_thrift(*server)
    try:
        return client.get_statistics()
    finally:
        transport.close()


def test_a_client_gone_mid_request_leaves_nothing_and_harms_no_one(
    thrift_server: tuple[str, int],
) -> None:
    package_id = new_id("half")
    wire = call_bytes(package_id)
    with raw_connection(thrift_server) as half:
        half.sendall(wire[: len(wire) // 2])

    client, transport = connect_thrift(*thrift_server)
    try:
        with pytest.raises(Error) as missing:
            client.get_package(package_id)
        assert missing.value.code == 404, "half a call is never processed"
        assert client.send_package(send_request(package_id)).replayed is False
    finally:
        transport.close()


def test_a_client_gone_before_the_answer_finds_it_on_retry(
    thrift_server: tuple[str, int],
) -> None:
    package_id = new_id("lost-answer")
    with raw_connection(thrift_server) as impatient:
        impatient.sendall(call_bytes(package_id))
        impatient.shutdown(socket.SHUT_RDWR)  # never reads the answer

    client, transport = connect_thrift(*thrift_server)
    try:
        for _ in range(50):  # the server may still be processing the abandoned call
            try:
                stored = client.get_package(package_id)
                break
            except Error:
                import gevent

                gevent.sleep(0.05)
        retried = client.send_package(send_request(package_id))
    finally:
        transport.close()
    assert stored.package_id == package_id
    assert retried.replayed is True, "the retry replays, nothing is delivered twice"
    assert still_serving(thrift_server).delivered_by_type["personal"] == 1


GARBAGE = [
    pytest.param(os.urandom(4096), id="random-bytes"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http-request"),
    pytest.param(b"\x3f\xff\xff\xff" + b"\x00" * 16, id="frame-claims-a-gigabyte"),
    pytest.param(b"\x7f\xff\xff\xff", id="frame-beyond-the-limit"),
    pytest.param(b"\x80\x01\x00\x01\x7f\xff\xff\xffsend_package", id="name-claims-2-gib"),
    pytest.param(b"\x80\x01\x00\x01\x00\x00\x00\x0csend_package\x00\x00\x00\x01\x0c", id="cut"),
    pytest.param(b"\x00\x00\x00\x08" + b"\x0f\xff" + b"\x00" * 6, id="header-frame-bad-magic"),
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_malformed_frames_are_dropped_and_others_are_served(
    thrift_server: tuple[str, int], garbage: bytes
) -> None:
    with raw_connection(thrift_server) as bad, raw_connection(thrift_server) as stalled:
        stalled.sendall(call_bytes(new_id("stalled"))[:10])  # holds its connection open
        bad.sendall(garbage)
        bad.settimeout(0.5)
        try:
            answer = bad.recv(65536)
        except (TimeoutError, ConnectionError):
            answer = b""
        # Meanwhile everyone else is served.
        assert still_serving(thrift_server).packages_delivered == 0
    assert b"send_package" not in answer, "nothing the garbage said was taken for a call"
    client, transport = connect_thrift(*thrift_server)
    try:
        assert client.send_package(send_request(new_id("after"))).replayed is False
    finally:
        transport.close()


def test_an_unknown_method_is_answered_and_the_connection_goes_on(
    thrift_server: tuple[str, int],
) -> None:
    transport = TBufferedTransport(TSocket(*thrift_server))
    protocol = TBinaryProtocol(transport)
    transport.open()
    try:
        protocol.writeMessageBegin("no_such_method", TMessageType.CALL, 7)
        protocol.writeStructBegin("no_such_method_args")
        protocol.writeFieldStop()
        protocol.writeStructEnd()
        protocol.writeMessageEnd()
        transport.flush()
        name, kind, seqid = protocol.readMessageBegin()
        error = TApplicationException()
        error.read(protocol)
        protocol.readMessageEnd()
        # The same connection serves a real call afterwards.
        statistics = GalaxyExpress.Client(protocol).get_statistics()
    finally:
        transport.close()
    assert (name, kind, seqid) == ("no_such_method", TMessageType.EXCEPTION, 7)
    assert error.type == TApplicationException.UNKNOWN_METHOD
    assert statistics.packages_delivered == 0


def test_spam_reports_and_counts_go_on_from_the_database_while_redis_is_down(
    app_config: dict[str, str], own_redis: OwnRedis, database_url: str
) -> None:
    """The Redis-reading methods with the real server stopped: no error, the rows counted."""
    config = app_config | {"redis.url": own_redis.url, "delivery.spam_drop_threshold": "2"}
    spammer = new_id("spammer")

    def status(package_id: str) -> str:
        return str(client.get_package(package_id).status)

    def report(recipient_id: str, package_id: str) -> Any:
        request = ttypes.UpdateInboxRequest(recipient_id, ttypes.InboxAction.SPAM, [package_id])
        return client.update_inbox(request)

    with serving_thrift(config) as server:
        client, transport = connect_thrift(*server)
        try:
            first, second = (send_over_thrift(client, r, sender_id=spammer) for r in ("m1", "m2"))
            report("m1", first)
            before = client.get_spam_report_count(spammer).reporter_count
            own_redis.stop()
            reported = report("m2", second)
            counted = client.get_spam_report_count(spammer).reporter_count
            dropped = status(send_over_thrift(client, "m3", sender_id=spammer))
            delivered = status(send_over_thrift(client, "m3", sender_id="earth-1"))
        finally:
            transport.close()
            own_redis.start()

    assert before == 1
    assert (reported.updated, reported.not_found) == (1, [])
    assert (spammer, "m2", second) in spam_report_rows(database_url)
    assert counted == 2, "the rows counted while Redis is down"
    assert (dropped, delivered) == ("dropped", "delivered")


def test_a_bug_is_a_bare_500(thrift_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from galaxy_express.delivery import service

    def bug(_context: Any) -> None:
        raise RuntimeError("SELECT secret FROM /srv/app/secret.py")

    monkeypatch.setattr(service, "get_statistics", bug)
    with pytest.raises(Error) as internal:
        thrift_client.get_statistics()

    assert (internal.value.code, internal.value.message) == (500, "Internal server error")
