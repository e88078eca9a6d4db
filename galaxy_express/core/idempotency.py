"""Idempotency keys: the rules both edges share (the store is ``db.idempotency``).

A client that never learned whether a write happened repeats it with the same
``Idempotency-Key``; the repeat gets the first answer and changes nothing. The
edges (``http.web`` and ``thrift.edge``) hold the one mechanism: they claim the
key in the transaction the operation's units of work join
(``db.unit_of_work.request_transaction``), run the operation, and store its
answer before that transaction commits, so the effects and the key commit
together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from galaxy_express.core.errors import FieldError, IdempotencyKeyReused, MalformedRequest

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
DEFAULT_RETENTION_DAYS = 30
MAX_KEY_LENGTH = 255
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_VISIBLE_ASCII = re.compile(rf"[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}")


@dataclass(frozen=True)
class Answer:
    """The first answer to a key: an HTTP status (Thrift: 200 or the error's code),
    the body as sent (Thrift: the serialized result struct) and the headers kept."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def parse_key(raw: str, field_name: str = KEY_HEADER) -> str:
    """The key, or 400 when it is not 1-255 visible ASCII characters."""
    if not _VISIBLE_ASCII.fullmatch(raw):
        raise MalformedRequest(
            f"the {field_name} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters",
            (FieldError(field_name, "1 to 255 visible ASCII characters (no spaces)"),),
        )
    return raw


def scope_of(method: str, path: str, principal: str | None) -> str:
    """What a key is scoped to: the method, the path and the caller's API key (a digest)."""
    return hashlib.sha256(f"{method} {path} {principal or ''}".encode()).hexdigest()


def fingerprint(normalised: Any) -> str:
    """A digest of the request after normalising (ids as strings, timestamps as
    instants: what the request models make of them), so a repeat spelling ``7`` as
    ``"7"`` or ``...Z`` as ``...+00:00`` is the same request."""
    canonical = json.dumps(normalised, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def is_kept(status: int) -> bool:
    """Whether an answer is stored for its key.

    Answers of the operation itself are (successes, 404, 409: a repeat must not
    turn a DELETE that worked into a 404). Refusals before it ran (400, 413,
    415, 422 from validation) and failures (401, 5xx) are not: the client may
    fix the request, or retry, under the same key.
    """
    return status < 400 or status in (404, 409, 410)


def reused(stored_fingerprint: str, asked: str, key_field: str = KEY_HEADER) -> None:
    """422 when a key comes back with another request; nothing is done."""
    if stored_fingerprint != asked:
        raise IdempotencyKeyReused(
            f"this {key_field} was used for a different request; use a new key",
            (FieldError(key_field, "already used with a different request"),),
        )
