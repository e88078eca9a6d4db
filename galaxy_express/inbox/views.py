"""HTTP operations of the inbox domain: parse, call the service, render."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyramid.request import Request
from pyramid.response import Response

from galaxy_express.core import access, errors
from galaxy_express.core.validation import parse_id_or_invalid
from galaxy_express.http.web import (
    EVENT_STREAM,
    Api,
    View,
    body_as,
    context_of,
    encoded_json_response,
    json_response,
    no_content,
    query_as,
)
from galaxy_express.inbox import live, service
from galaxy_express.inbox.commands import (
    BulkByFilter,
    ChangesQuery,
    EventsQuery,
    InboxQuery,
    PackageIds,
    parse_last_event_id,
)
from galaxy_express.inbox.records import InboxAction
from galaxy_express.inbox.schemas import (
    ChangesPageOut,
    InboxBulkUpdateOut,
    InboxPageOut,
    InboxSummaryOut,
    InboxUpdateOut,
    SpamReportCountOut,
    changes_page_json,
    event_stream_frames,
    inbox_bulk_update_json,
    inbox_page_text,
    inbox_summary_json,
    inbox_update_json,
    spam_report_count_json,
)

api = Api(tag="inbox")

# The last change seq a listing or summary reflects (at least): follow it with
# GET /v1/inbox/{id}/changes?since=<it>.
SEQ_HEADER = "Inbox-Seq"
_SEQ_NOTE = (
    " The `Inbox-Seq` header is the mailbox's last change seq this answer reflects (it may "
    "reflect a few later changes too, which replaying sets to what they already are): "
    "follow it with `GET /v1/inbox/{recipient_id}/changes?since=<Inbox-Seq>` and nothing "
    "is missed."
)
_SEQ_HEADERS = {
    SEQ_HEADER: {
        "description": "The last change seq this answer reflects (at least)",
        "schema": {"type": "integer", "minimum": 0},
    }
}

_ACTION_SUMMARIES = {
    InboxAction.READ: "Mark packages read",
    InboxAction.UNREAD: "Mark packages unread",
    InboxAction.TRASH: "Move packages to the trash",
    InboxAction.RESTORE: "Move packages back to the inbox folder",
    InboxAction.SPAM: "Move packages to the spam folder and report their senders",
    InboxAction.DELETE: "Delete packages from the mailbox",
}
_ACTION_NOTES = {
    InboxAction.READ: " Marking a read package read again keeps its first `read_at`.",
    InboxAction.RESTORE: " Restoring from spam does not withdraw the spam report.",
    InboxAction.SPAM: (
        " Each sender's spam count counts distinct reporting recipients: reporting more "
        "packages of the same sender, or reporting again, adds nothing."
    ),
    InboxAction.DELETE: (
        " The package ids stay taken: a retried send answers with the first record and "
        "never delivers again."
    ),
}


def _recipient_of(request: Request) -> str:
    return parse_id_or_invalid(request.matchdict["recipient_id"], "recipient_id")


@api.operation(
    "GET",
    "/v1/inbox/{recipient_id}",
    summary="List a recipient's mailbox folder",
    description=(
        "Keyset-paginated: a page costs the same at any depth, and packages delivered between "
        "pages are never skipped or repeated (those sorting after the cursor appear on later "
        "pages). A cursor is valid only with the recipient and filters it came from. A "
        "recipient never seen has an empty mailbox." + _SEQ_NOTE
    ),
    query=InboxQuery,
    responses={200: InboxPageOut},
    errors=(422,),
    headers=_SEQ_HEADERS,
)
def list_inbox(request: Request) -> Response:
    recipient_id = _recipient_of(request)
    query = query_as(request, InboxQuery)
    seen = service.list_inbox_seen(context_of(request), recipient_id, query)
    headers = {SEQ_HEADER: str(seen.seq)}
    return encoded_json_response(inbox_page_text(seen.value).encode(), headers=headers)


@api.operation(
    "GET",
    "/v1/inbox/{recipient_id}/summary",
    summary="Count a recipient's packages per folder",
    description="`unread` counts unread packages of the inbox folder only." + _SEQ_NOTE,
    responses={200: InboxSummaryOut},
    errors=(422,),
    headers=_SEQ_HEADERS,
)
def get_inbox_summary(request: Request) -> Response:
    seen = service.get_inbox_summary_seen(context_of(request), _recipient_of(request))
    return json_response(inbox_summary_json(seen.value), headers={SEQ_HEADER: str(seen.seq)})


# Where the app factory leaves the worker's live streams (``live.Hub``).
STREAMS_SETTING = "galaxy_express.streams"
LAST_EVENT_ID = "Last-Event-ID"
# Changes read per database round trip while a stream catches up.
STREAM_PAGE = 100
# Sent first: EventSource waits this long (ms) before reconnecting after the stream ends.
STREAM_PRELUDE = b"retry: 1000\n\n"
HEARTBEAT = b": heartbeat\n\n"
_LAST_EVENT_ID_PARAMETER = {
    "name": LAST_EVENT_ID,
    "in": "header",
    "required": False,
    "description": "The last seq the client received (EventSource sends it when it "
    "reconnects); the stream starts after it. Wins over `since`.",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}


@api.operation(
    "GET",
    "/v1/inbox/{recipient_id}/events",
    summary="Follow a mailbox's changes live (Server-Sent Events)",
    description=(
        "The events of `GET /v1/inbox/{recipient_id}/changes` as a stream that does not end: "
        "each one a frame `id: <seq>`, `event: <kind>`, `data: <event JSON>`, oldest first, "
        "starting after `Last-Event-ID` (or `since`; default 0). A change committed by any "
        "worker on any machine reaches every open stream within about a second. A comment "
        "line `: heartbeat` comes at least every `inbox.stream_heartbeat_seconds` (15) while "
        "nothing changes. The stream ends when the server stops (reconnect with "
        "`Last-Event-ID`; nothing is missed or repeated). 406 unless `Accept` allows "
        "`text/event-stream` (`*/*` does); 410 (`resync-required`) when `since` is older "
        "than the oldest kept change; 503 with `Retry-After` when the worker already holds "
        "`inbox.max_streams_per_worker` streams."
    ),
    query=EventsQuery,
    responses={200: None},
    errors=(406, 410, 422),
    media_type=EVENT_STREAM,
    header_parameters=(_LAST_EVENT_ID_PARAMETER,),
)
def stream_inbox_events(request: Request) -> Response:
    recipient_id = _recipient_of(request)
    context = context_of(request)
    access.require_recipient(context, recipient_id)
    if not request.accept.acceptable_offers([EVENT_STREAM]):
        raise errors.NotAcceptable(f"this operation answers {EVENT_STREAM} only")
    since = _stream_start(request)
    streams: live.Hub = request.registry.settings[STREAMS_SETTING]
    watch = streams.admit(recipient_id, since)
    try:
        # On the request's own context, before the answer starts: a 410 or 503 is
        # still a problem+json answer. Later reads run on contexts of their own.
        first = service.read_changes(context, recipient_id, since, STREAM_PAGE)
    except BaseException:
        streams.release(watch)
        raise
    finally:
        # Its unit of work committed; closed now rather than when baseplate finishes
        # the request's span, which for a stream is its end (or never: a client that
        # goes away closes the body without finishing the span).
        context.db.close()
    follower = live.Follower(streams, watch, _stream_reader(streams, recipient_id))
    body = _EventStream(follower, STREAM_PRELUDE + event_stream_frames(follower.sent(first)))
    response = Response(app_iter=body, content_type=EVENT_STREAM, charset="utf-8")
    # Proxies (nginx) and caches must pass each frame on as it comes.
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _stream_start(request: Request) -> int:
    query = query_as(request, EventsQuery)
    header = request.headers.get(LAST_EVENT_ID, "").strip()
    if header:
        try:
            return parse_last_event_id(header)
        except ValueError as exc:
            raise errors.InvalidInput(
                f"{LAST_EVENT_ID} is not a seq", (errors.FieldError(LAST_EVENT_ID, str(exc)),)
            ) from None
    return query.since or 0


def _stream_reader(streams: live.Hub, recipient_id: str) -> live.ReadAfter:
    def read_after(since: int) -> Any:
        with streams.open_context() as context:
            return service.read_changes(context, recipient_id, since, STREAM_PAGE)

    return read_after


class _EventStream:
    """The answer's body (WSGI ``app_iter``): the first frames, then the follower's.

    An iterator, not a generator: whoever wraps it (baseplate's span wrapper
    calls ``iter`` on it) reaches this ``close``, which the server calls when the
    answer ends, also when the client is gone and a write failed, or when the
    body is never read (HEAD), and which gives the stream's place back.
    """

    def __init__(self, follower: live.Follower, first: bytes) -> None:
        self._follower, self._first = follower, first

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            return first
        changes = next(self._follower)
        return event_stream_frames(changes) if changes else HEARTBEAT

    def close(self) -> None:
        self._follower.close()


def _bulk_action_view(action: InboxAction) -> View:
    def view(request: Request) -> Response:
        recipient_id = _recipient_of(request)
        command = body_as(request, PackageIds)
        outcome = service.update_inbox(
            context_of(request), recipient_id, action, command.package_ids
        )
        return json_response(inbox_update_json(outcome))

    view.__name__ = f"{action.value}_inbox_packages"
    return view


for _action in InboxAction:
    api.operation(
        "POST",
        f"/v1/inbox/{{recipient_id}}/{_action.value}",
        summary=_ACTION_SUMMARIES[_action],
        description=(
            "`updated` counts the ids found in this mailbox (in any folder), changed or not; "
            "ids not found (unknown, or another recipient's) are listed in `not_found` and "
            "never touched. An id given more than once counts once."
            + _ACTION_NOTES.get(_action, "")
        ),
        body=PackageIds,
        responses={200: InboxUpdateOut},
        errors=(400, 413, 422),
    )(_bulk_action_view(_action))


@api.operation(
    "GET",
    "/v1/inbox/{recipient_id}/changes",
    summary="What changed in a mailbox since a seq",
    description=(
        "Every change of the mailbox is an event with a per-recipient `seq`, strictly "
        "increasing in commit order: `delivered`, `read`, `unread`, `moved` (with `from` "
        "and `to`), `deleted`. An action that changes nothing (read on a read package) "
        "writes no event. Oldest first after `since`; `next_since` is the next read's "
        "`since`. `item` is the entry as it is now (null once deleted), so replaying any "
        "run of events in order converges on the mailbox as it is. Events are kept "
        "`inbox.changes_retention_days` (default 30): a `since` older than the oldest kept "
        "is 410 (`resync-required`): list the mailbox again and follow its `Inbox-Seq`."
    ),
    query=ChangesQuery,
    responses={200: ChangesPageOut},
    errors=(410, 422),
)
def get_inbox_changes(request: Request) -> Response:
    recipient_id = _recipient_of(request)
    query = query_as(request, ChangesQuery)
    page = service.read_changes(context_of(request), recipient_id, query.since, query.limit)
    return json_response(changes_page_json(page))


@api.operation(
    "POST",
    "/v1/inbox/{recipient_id}/bulk",
    summary="Act on every package matching a filter, up to a seq",
    description=(
        "The action (`read`, `unread`, `trash`, `restore`, `spam`, `delete`) on every "
        "package of the mailbox matching `filter` (fields left out match anything) whose "
        "`delivered` event is at or before `up_to_seq`, the last seq the client saw: "
        "later arrivals are never touched. `updated` counts the packages that matched, "
        "changed or not; each one changed gets its change event. `spam` reports senders "
        "as the id-list action does. Runs in batches of 500 packages, one transaction "
        "each: after a failure (a 503) the batches done stay done, and sending the same "
        "request again finishes the job. Under an `Idempotency-Key` the whole request is "
        "one transaction, and a repeat answers the first `updated` again."
    ),
    body=BulkByFilter,
    responses={200: InboxBulkUpdateOut},
    errors=(400, 413, 422),
)
def bulk_update_inbox(request: Request) -> Response:
    recipient_id = _recipient_of(request)
    command = body_as(request, BulkByFilter)
    outcome = service.update_inbox_by_filter(context_of(request), recipient_id, command)
    return json_response(inbox_bulk_update_json(outcome))


@api.operation(
    "DELETE",
    "/v1/inbox/{recipient_id}/{package_id}",
    summary="Delete one package from the mailbox",
    description="404 when the package is not in this recipient's mailbox. The id stays taken.",
    responses={204: None},
    errors=(404, 422),
)
def delete_inbox_package(request: Request) -> Response:
    recipient_id = _recipient_of(request)
    package_id = parse_id_or_invalid(request.matchdict["package_id"], "package_id")
    service.delete_from_inbox(context_of(request), recipient_id, package_id)
    return no_content()


@api.operation(
    "GET",
    "/v1/senders/{sender_id}/spam-reports",
    summary="How many distinct recipients reported a sender as a spammer",
    description="Served from Redis; counted from the stored reports while Redis is down.",
    responses={200: SpamReportCountOut},
    errors=(422,),
)
def get_spam_report_count(request: Request) -> Response:
    sender_id = parse_id_or_invalid(request.matchdict["sender_id"], "sender_id")
    count = service.get_spam_report_count(context_of(request), sender_id)
    return json_response(spam_report_count_json(count))
