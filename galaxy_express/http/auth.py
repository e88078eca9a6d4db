"""Optional API-key authentication for the HTTP edge.

Off while neither ``auth.api_keys`` (``API_KEYS``, comma separated; unscoped
keys) nor ``auth.keys`` (``AUTH_KEYS``; scoped keys, see access.py) holds a
key: that is open mode. When on, every request but ``GET /health`` must
present one of the keys, either as
``Authorization: Bearer <key>`` or as ``X-API-Key: <key>``; anything else is
answered 401 problem+json with ``WWW-Authenticate: Bearer``, before any view
runs or any body is read. A request showing both headers is let in when either
holds a key. Keys are compared in constant time against every configured key
(digests, so not even a key's length leaks through timing). The key found
gives the request its ``principal`` (access.py decides what it may do; a path
its scopes don't reach is 403 here, before any view). Thrift is not covered:
it listens for trusted internal callers only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable

from pyramid.config import Configurator
from pyramid.registry import Registry
from pyramid.request import Request
from pyramid.response import Response
from pyramid.tweens import INGRESS

from galaxy_express.core import access
from galaxy_express.core.config import Settings
from galaxy_express.core.errors import Forbidden, Unauthorized
from galaxy_express.http.web import PRINCIPAL_ENVIRON, problem_response

logger = logging.getLogger(__name__)

# The explorer must load without a key, so a person can then enter theirs in "Authorize".
EXPLORER_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js")
OPEN_PATHS = frozenset(
    {"/health", "/docs", "/openapi.json", *(f"/docs/static/{name}" for name in EXPLORER_ASSETS)}
)
API_KEY_HEADER = "X-API-Key"

Handler = Callable[[Request], Response]


def includeme(config: Configurator) -> None:
    # Just below ingress: outside baseplate's tween, so a refused request costs nothing.
    config.add_tween("galaxy_express.http.auth.api_key_tween_factory", under=INGRESS)


def api_key_tween_factory(handler: Handler, registry: Registry) -> Handler:
    settings: Settings = registry.settings["galaxy_express.settings"]
    principals = dict.fromkeys(settings.api_keys, access.UNSCOPED_KEY)
    principals.update(settings.scoped_keys)
    _warn_of_an_open_spam_threshold(settings)
    if not principals:

        def open_mode_tween(request: Request) -> Response:
            request.principal = access.OPEN
            return handler(request)

        return open_mode_tween
    keys = tuple((_digest(key), principal) for key, principal in principals.items())

    def api_key_tween(request: Request) -> Response:
        if request.path_info in OPEN_PATHS:
            request.principal = access.OPEN
            return handler(request)
        presented = _presented(request)
        principal = principal_of_key(presented, keys)
        if principal is None:
            response = problem_response(Unauthorized(_why(request)))
            response.headers["WWW-Authenticate"] = 'Bearer realm="galaxy-express"'
            return response
        if not access.may_reach(principal, request.path_info):
            return problem_response(Forbidden("this needs a key with the admin scope"))
        request.principal = principal
        request.environ[PRINCIPAL_ENVIRON] = key_id(presented, keys)
        return handler(request)

    return api_key_tween


def principal_of_key(
    presented: Iterable[str], keys: tuple[tuple[bytes, access.Principal], ...]
) -> access.Principal | None:
    """The principal of the presented key, in time independent of the keys; None if none."""
    found: access.Principal | None = None
    for value in presented:
        candidate = _digest(value)
        for digest, principal in keys:
            # No short cut: every key is compared, whichever matches.
            if hmac.compare_digest(candidate, digest) and found is None:
                found = principal
    return found


def key_id(presented: Iterable[str], keys: tuple[tuple[bytes, access.Principal], ...]) -> str:
    """Which configured key the caller showed, as a digest: the scope of its idempotency
    keys (unscoped keys share one principal, so the principal can't tell them apart)."""
    digests = {digest for digest, _ in keys}
    for value in presented:
        candidate = _digest(value)
        if candidate in digests:
            return candidate.hex()[:32]
    raise AssertionError("key_id is asked only once a key matched")


def _warn_of_an_open_spam_threshold(settings: Settings) -> None:
    """Said once at start-up: without scoped keys, spam reports prove nobody's identity."""
    if settings.spam_drop_threshold and not settings.scoped_keys:
        logger.warning(
            "delivery.spam_drop_threshold is %d without scoped keys (auth.keys): any caller "
            "can report spam for any recipient and get a sender's packages dropped "
            "(README: Scoped keys, and what open mode allows)",
            settings.spam_drop_threshold,
        )


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
