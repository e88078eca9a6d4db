"""Who may do what: the one place authorization is decided.

A request's ``Principal`` comes from the API key it showed (``auth.py`` finds
it on the HTTP edge):

- **Open mode** (no key configured) and **unscoped keys** (``auth.api_keys``)
  may do everything, as before scoped keys existed.
- **Scoped keys** (``auth.keys``) carry scopes: ``admin`` (everything),
  ``senders:<id>,<id>`` (send packages as those senders and read them) and
  ``recipients:<id>,<id>`` (those recipients' mailboxes, preferences and their
  packages). A key may carry several scopes. A key without ``admin`` reaches
  only the paths in ``SCOPED_PATHS`` (and ``/health``, the API document);
  statistics, spam-report counts, users, tasks, reports and webhooks need
  ``admin``.
- **Spam reports** count toward ``delivery.spam_drop_threshold`` only when the
  recipient is authenticated: in open mode and for unscoped keys always (the
  caller may name anyone, which README says plainly); once scoped keys are
  configured, only a key scoped to that recipient (or a Thrift caller) counts:
  an admin or unscoped key moving a package to spam doesn't report its sender.

Services call ``require_sender`` / ``require_recipient`` / ``counts_spam_reports``
at their entry; the HTTP edge calls ``may_reach`` once per request. Thrift
callers are trusted internal callers (see README) and get ``INTERNAL``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from galaxy_express.core.errors import Forbidden
from galaxy_express.core.validation import parse_id

ADMIN = "admin"
SENDERS = "senders"
RECIPIENTS = "recipients"
# What a key without admin may reach (prefixes of the path).
SCOPED_PATHS = ("/v1/packages", "/v1/inbox/", "/v1/preferences", "/openapi.json", "/docs")


@dataclass(frozen=True)
class Principal:
    """The caller: unrestricted (open mode, unscoped key, Thrift) or a scoped key."""

    name: str
    unrestricted: bool = False
    admin: bool = False
    senders: frozenset[str] = field(default_factory=frozenset)
    recipients: frozenset[str] = field(default_factory=frozenset)

    @property
    def all_powerful(self) -> bool:
        return self.unrestricted or self.admin


OPEN = Principal("open mode", unrestricted=True)
UNSCOPED_KEY = Principal("unscoped key", unrestricted=True)
INTERNAL = Principal("internal (Thrift)", unrestricted=True)


def parse_scoped_keys(text: str) -> dict[str, Principal]:
    """``auth.keys``: one key per line (or ``;``-separated): ``<key> <scope> [<scope> ...]``.

    Scopes are ``admin``, ``senders:<id>[,<id>...]``, ``recipients:<id>[,<id>...]``.
    A bad entry fails start-up naming its line (never the key itself).
    """
    keys: dict[str, Principal] = {}
    entries = [entry.strip() for line in text.splitlines() for entry in line.split(";")]
    for number, entry in enumerate((e for e in entries if e), start=1):
        key, *scopes = entry.split()
        if not scopes:
            raise ValueError(f"auth.keys entry {number}: a key needs at least one scope")
        if key in keys:
            raise ValueError(f"auth.keys entry {number}: the key is listed twice")
        keys[key] = _principal(f"scoped key {number}", scopes, number)
    return keys


def _principal(name: str, scopes: Iterable[str], number: int) -> Principal:
    admin = False
    ids: dict[str, set[str]] = {SENDERS: set(), RECIPIENTS: set()}
    for scope in scopes:
        kind, _, listed = scope.partition(":")
        if kind == ADMIN and not listed:
            admin = True
        elif kind in ids and listed:
            try:
                ids[kind].update(parse_id(one) for one in listed.split(","))
            except ValueError as exc:
                raise ValueError(f"auth.keys entry {number}: {kind}: an id {exc}") from None
        else:
            raise ValueError(
                f"auth.keys entry {number}: unknown scope {scope!r} "
                "(admin, senders:<ids>, recipients:<ids>)"
            )
    return Principal(
        name, admin=admin, senders=frozenset(ids[SENDERS]), recipients=frozenset(ids[RECIPIENTS])
    )


def principal_of(context: Any) -> Principal:
    """The context's principal; contexts without one (Thrift, scripts) are internal."""
    principal = getattr(context, "principal", None)
    return principal if isinstance(principal, Principal) else INTERNAL


def may_reach(principal: Principal, path: str) -> bool:
    """Whether the principal may call anything at ``path`` at all."""
    return principal.all_powerful or path.startswith(SCOPED_PATHS)


def require_admin(context: Any) -> None:
    if not principal_of(context).all_powerful:
        raise Forbidden("this needs a key with the admin scope")


def require_sender(context: Any, sender_id: str) -> None:
    principal = principal_of(context)
    if not (principal.all_powerful or sender_id in principal.senders):
        raise Forbidden(f"this key may not send as {sender_id!r}")


def require_recipient(context: Any, recipient_id: str) -> None:
    principal = principal_of(context)
    if not (principal.all_powerful or recipient_id in principal.recipients):
        raise Forbidden(f"this key may not act on the mailbox of {recipient_id!r}")


def may_read_package(context: Any, sender_id: str, recipient_ids: Iterable[str]) -> bool:
    principal = principal_of(context)
    return (
        principal.all_powerful
        or sender_id in principal.senders
        or not principal.recipients.isdisjoint(recipient_ids)
    )


def counts_spam_reports(context: Any, recipient_id: str, scoped_keys_configured: bool) -> bool:
    """Whether a spam report made now counts toward the sender's threshold."""
    principal = principal_of(context)
    if not scoped_keys_configured or principal is INTERNAL:
        return True
    return recipient_id in principal.recipients
