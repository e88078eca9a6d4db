from __future__ import annotations

from pathlib import Path

import pytest
from baseplate.thrift.ttypes import Error, IsHealthyProbe, IsHealthyRequest

from galaxy_express.thrift.gen import ttypes
from tests.conftest import connect_thrift
from tests.support import new_id


def test_send_package_and_replay_over_thrift(thrift_client) -> None:
    request = ttypes.SendPackageRequest(
        timestamp=7_000_000_000_000,
        sender_id="s",
        recipient_id="r",
        package_id=new_id("p"),
        package_type="personal",
        content=ttypes.Content(subject="hello", body="from Mars"),
    )
    first = thrift_client.send_package(request)
    again = thrift_client.send_package(request)
    assert (first.replayed, again.replayed) == (False, True)
    assert first.sent_package == again.sent_package
    assert first.sent_package.status == "delivered"
    assert thrift_client.get_statistics().delivered_by_type["personal"] == 1


def test_errors_carry_the_http_status(thrift_client) -> None:
    with pytest.raises(Error) as missing:
        thrift_client.get_package("nope")
    assert missing.value.code == 404
    bad = ttypes.SendPackageRequest(
        timestamp=1, sender_id="", recipient_id="r", package_id="p", package_type="x"
    )
    with pytest.raises(Error) as invalid:
        thrift_client.send_package(bad)
    assert invalid.value.code == 422
    assert set(invalid.value.details) == {"sender_id", "package_type"}
    assert thrift_client.get_statistics().dropped_by_reason["invalid"] == 1


def test_is_healthy(thrift_client) -> None:
    assert thrift_client.is_healthy(IsHealthyRequest(probe=IsHealthyProbe.READINESS)) is True


def test_liveness_probe_does_not_ask_redis(app_config, request: pytest.FixtureRequest) -> None:
    app_config["redis.url"] = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    client, transport = connect_thrift(*request.getfixturevalue("thrift_server"))
    try:
        assert client.is_healthy(IsHealthyRequest(probe=IsHealthyProbe.LIVENESS)) is True
        assert client.is_healthy(IsHealthyRequest(probe=IsHealthyProbe.READINESS)) is False
    finally:
        transport.close()


def test_the_readme_client_works(thrift_server: tuple[str, int], capsys) -> None:
    """The README's Thrift client, run as written against a real server on a free port."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("<!-- readme-thrift-client:", 1)[1].split("```python\n", 1)[1]
    code = block.split("```", 1)[0].replace("localhost:9091", "{}:{}".format(*thrift_server))
    exec(compile(code, "README.md", "exec"), {})
    replayed, status = capsys.readouterr().out.splitlines()[0].split()
    assert (replayed, status) == ("False", "delivered")
