"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

A delivery carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` entries over
``"{id}.{timestamp}.{raw body}"``. Any one matching entry is enough (senders
list several while rotating secrets). Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

from galaxy_express.core.errors import Unauthorized

SECRET_PREFIX = "whsec_"
# Unix seconds as 1 to 20 ASCII digits, without leading zeros (one spelling per
# instant): int() would also take "+1", " 1", "0001", "1_0" and other scripts'
# digits, and 400 digits overflow the comparison with a float.
_TIMESTAMP = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True)
class SignedHeaders:
    webhook_id: str | None
    timestamp: str | None
    signature: str | None


def signing_key(secret: str) -> bytes:
    """The HMAC key: ``whsec_<base64>`` secrets are decoded, others used as UTF-8."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
        except binascii.Error:
            pass
    return secret.encode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value a sender would send (for clients and tests)."""
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str, headers: SignedHeaders, body: bytes, now: datetime, tolerance_seconds: int
) -> str:
    """The delivery's ``webhook-id`` when its signature holds; otherwise ``Unauthorized``."""
    if not (headers.webhook_id and headers.timestamp and headers.signature):
        raise Unauthorized("webhook-id, webhook-timestamp and webhook-signature are required")
    if not _TIMESTAMP.fullmatch(headers.timestamp):
        raise Unauthorized("webhook-timestamp must be Unix seconds (1 to 20 ASCII digits)")
    sent_at = int(headers.timestamp)
    if abs(now.timestamp() - sent_at) > tolerance_seconds:
        raise Unauthorized(f"webhook-timestamp is more than {tolerance_seconds} seconds off")
    expected = sign(secret, headers.webhook_id, sent_at, body).encode()
    offered = [entry.encode() for entry in headers.signature.split(" ") if entry]
    # Compare with every entry, so the time taken doesn't tell which one matched.
    matches = [hmac.compare_digest(expected, entry) for entry in offered]
    if not any(matches):
        raise Unauthorized("the webhook signature does not match")
    return headers.webhook_id
