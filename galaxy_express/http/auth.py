"""Optional API-key authentication for the HTTP edge.

Off while ``auth.api_keys`` (``API_KEYS``, comma separated) is empty. When on,
every request but ``GET /health`` must present one of the keys, either as
``Authorization: Bearer <key>`` or as ``X-API-Key: <key>``; anything else is
answered 401 problem+json with ``WWW-Authenticate: Bearer``, before any view
runs or any body is read. A request showing both headers is let in when either
holds a key. Keys are compared in constant time against every configured key
(digests, so not even a key's length leaks through timing). Thrift is not
covered: it listens for trusted internal callers only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable

from pyramid.config import Configurator
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response
from pyramid.tweens import INGRESS

from galaxy_express.core.config import Settings
from galaxy_express.core.errors import Unauthorized
from galaxy_express.http.web import PRINCIPAL_ENVIRON, problem_response

OPEN_PATHS = frozenset({"/health"})
API_KEY_HEADER = "X-API-Key"

Handler = Callable[[Request], Response]


def includeme(config: Configurator) -> None:
    # Just below ingress: outside baseplate's tween, so a refused request costs nothing.
    config.add_tween("galaxy_express.http.auth.api_key_tween_factory", under=INGRESS)


def api_key_tween_factory(handler: Handler, registry: Registry) -> Handler:
    settings: Settings = registry.settings["galaxy_express.settings"]
    if not settings.api_keys:
        return handler
    digests = tuple(_digest(key) for key in settings.api_keys)

    def api_key_tween(request: Request) -> Response:
        if request.path_info in OPEN_PATHS:
            return handler(request)
        presented = _presented(request)
        if holds_a_key(presented, digests):
            request.environ[PRINCIPAL_ENVIRON] = principal_of(presented, digests)
            return handler(request)
        response = problem_response(Unauthorized(_why(request)))
        response.headers["WWW-Authenticate"] = 'Bearer realm="galaxy-express"'
        return response

    return api_key_tween


def holds_a_key(presented: Iterable[str], digests: tuple[bytes, ...]) -> bool:
    """Whether any presented value is a configured key, in time independent of the keys."""
    found = False
    for value in presented:
        candidate = _digest(value)
        for digest in digests:
            # No short cut: every key is compared, whichever matches.
            found |= hmac.compare_digest(candidate, digest)
    return found


def principal_of(presented: Iterable[str], digests: tuple[bytes, ...]) -> str:
    """Which configured key the caller holds, as a digest (idempotency keys' scope)."""
    for value in presented:
        candidate = _digest(value)
        if any(hmac.compare_digest(candidate, digest) for digest in digests):
            return candidate.hex()[:32]
    raise AssertionError("principal_of is asked only once a key matched")


def _presented(request: Request) -> list[str]:
    values = []
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        values.append(credentials.strip())
    api_key = request.headers.get(API_KEY_HEADER, "").strip()
    if api_key:
        values.append(api_key)
    return values


def _why(request: Request) -> str:
    if _presented(request):
        return "the API key is not valid"
    return f"an API key is required (Authorization: Bearer <key> or {API_KEY_HEADER}: <key>)"


def _digest(value: str) -> bytes:
    # Header values arrive as latin-1 text; any text encodes to UTF-8.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()
