"""A JSON body is read as WebOb's ``body_file`` reads it, also when read straight
from the server's input (``web._body_of``)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from pyramid.request import Request
from webob.request import DisconnectionError

from galaxy_express.core import errors
from galaxy_express.http.web import read_json_bytes

BODY = b'{"package_id": "p-1", "note": "caf\\u00e9"}'


def _request(body: bytes, **environ: Any) -> Request:
    base = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/packages",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    return Request({**base, **environ})


def _webob(request: Request, max_bytes: int = 64) -> bytes:
    """What WebOb's own reading gives (the path before the direct one)."""
    body: bytes = request.body_file.read(max_bytes + 1)
    return body


def test_a_body_of_a_declared_length_reads_as_webob_reads_it() -> None:
    assert read_json_bytes(_request(BODY), 64) == _webob(_request(BODY)) == BODY


def test_a_declared_length_is_read_and_no_byte_after_it() -> None:
    # The input holds more than declared (the next request's bytes, say).
    request = _request(BODY + b"trailing", CONTENT_LENGTH=str(len(BODY)))
    assert read_json_bytes(request, 64) == BODY
    assert request.environ["wsgi.input"].read() == b"trailing"


def test_a_body_cut_short_is_a_disconnection_as_in_webob() -> None:
    def short() -> Request:
        return _request(BODY[:10], CONTENT_LENGTH=str(len(BODY)))

    with pytest.raises(DisconnectionError) as webob_error:
        _webob(short())
    with pytest.raises(DisconnectionError) as direct_error:
        read_json_bytes(short(), 64)
    assert str(direct_error.value) == str(webob_error.value)


def test_a_buffered_or_chunked_body_reads_as_before() -> None:
    buffered = _request(b"")
    buffered.body = BODY  # as the Idempotency-Key's fingerprint leaves it
    assert read_json_bytes(buffered, 64) == BODY
    chunked = _request(BODY, CONTENT_LENGTH="", **{"wsgi.input_terminated": True})
    assert read_json_bytes(chunked, 64) == BODY
    with pytest.raises(errors.PayloadTooLarge):
        read_json_bytes(_request(BODY, CONTENT_LENGTH="", **{"wsgi.input_terminated": True}), 8)


def test_an_empty_body_is_empty() -> None:
    assert read_json_bytes(_request(b"", CONTENT_LENGTH="0"), 64) == b""
