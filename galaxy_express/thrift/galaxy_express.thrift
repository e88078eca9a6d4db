/* Galaxy Express over Thrift (port 9091).

Mirrors the HTTP API (/openapi.json and the README): the same service
functions answer both edges. Errors are baseplate.Error with `code` set to the HTTP status the same failure gets on
HTTP (404, 409, 422, 503, ...). Timestamps are i64 Unix milliseconds; package
types, statuses, reasons, folders and orders are strings.
*/

include "baseplate.thrift"

namespace py galaxy_express.thrift.gen

// ---- Delivery -------------------------------------------------------------

struct Content {
    1: string subject = "",
    2: string body = "",
}

struct SendPackageRequest {
    1: i64 timestamp,
    2: string sender_id,
    3: string recipient_id,
    4: string package_id,
    5: string package_type,
    6: optional Content content,
    /** Idempotency key (issue 13): 1-255 visible ASCII characters; a repeat with the same
        key and request answers the first answer again (see the README). */
    7: optional string idempotency_key,
}

struct Package {
    1: string package_id,
    2: string sender_id,
    3: string recipient_id,
    4: string package_type,
    5: i64 timestamp,
    6: optional Content content,
    /** "delivered" or "dropped" */
    7: string status,
    /** null, "opted_out", ... */
    8: optional string reason,
    9: i64 processed_at,
}

struct SendPackageResponse {
    /** The package as recorded, delivered or dropped. Named `package` before 0.2.0;
        `package` is reserved in Java, Go and most other Thrift targets. */
    1: Package sent_package,
    /** True when this replays the first answer for the package id (HTTP 200 + Idempotent-Replayed). */
    2: bool replayed,
}

struct UpdatePreferencesRequest {
    1: i64 timestamp,
    2: string recipient_id,
    3: bool personal_preference,
    4: bool marketing_preference,
    /** Other registered package types; a type not named is allowed. */
    5: optional map<string, bool> preferences,
    /** Idempotency key (issue 13): 1-255 visible ASCII characters; a repeat with the same
        key and request answers the first answer again (see the README). */
    6: optional string idempotency_key,
}

struct Preferences {
    1: string recipient_id,
    2: map<string, bool> preferences,
    3: optional i64 updated_at,
    /** Set on update_preferences answers only. */
    4: optional bool applied,
    /** True when this replays the first answer to an idempotency key. */
    5: optional bool replayed,
}

struct Statistics {
    1: i64 packages_delivered,
    2: i64 packages_dropped,
    3: map<string, i64> dropped_by_reason,
    4: map<string, i64> delivered_by_type,
}

// ---- Inbox ----------------------------------------------------------------

enum InboxAction {
    READ = 1,
    UNREAD = 2,
    TRASH = 3,
    RESTORE = 4,
    SPAM = 5,
    DELETE = 6,
}

/** A package record plus its place in the recipient's mailbox. */
struct InboxItem {
    1: string package_id,
    2: string sender_id,
    3: string recipient_id,
    4: string package_type,
    5: i64 timestamp,
    6: optional Content content,
    7: string status,
    8: optional string reason,
    9: i64 processed_at,
    /** "inbox", "trash" or "spam" */
    10: string folder,
    /** HTTP's `read`. Generated Python structs have a read() method that a
        field named `read` would replace, so no Python client could decode an
        InboxItem; field ids, not names, travel on the wire. */
    11: bool is_read,
    12: optional i64 read_at,
}

struct ListInboxRequest {
    1: string recipient_id,
    /** "inbox" (default), "trash" or "spam" */
    2: optional string folder,
    3: optional bool unread,
    4: optional string package_type,
    5: optional string sender_id,
    /** "newest" (default) or "oldest" */
    6: optional string order,
    /** 1..100, default 50 */
    7: optional i32 limit,
    8: optional string cursor,
}

struct InboxPage {
    1: list<InboxItem> items,
    2: optional string next_cursor,
    /** HTTP's Inbox-Seq header: the last change seq this page reflects (at least);
        follow it with get_inbox_changes(since=inbox_seq). */
    3: optional i64 inbox_seq,
}

struct InboxSummary {
    1: i64 inbox,
    2: i64 unread,
    3: i64 trash,
    4: i64 spam,
    /** HTTP's Inbox-Seq header, as on InboxPage. */
    5: optional i64 inbox_seq,
}

struct UpdateInboxRequest {
    1: string recipient_id,
    2: InboxAction action,
    /** 1..500 ids */
    3: list<string> package_ids,
    /** Idempotency key (issue 13): 1-255 visible ASCII characters; a repeat with the same
        key and request answers the first answer again (see the README). */
    4: optional string idempotency_key,
}

struct UpdateInboxResponse {
    1: i32 updated,
    2: list<string> not_found,
    /** True when this replays the first answer to an idempotency key. */
    3: optional bool replayed,
}

struct SpamReportCount {
    1: string sender_id,
    2: i64 reporter_count,
}

// ---- Users ----------------------------------------------------------------

struct CreateUserRequest {
    1: string username,
    2: optional string id,
    /** Idempotency key (issue 13): 1-255 visible ASCII characters; a repeat with the same
        key and request answers the first answer again (see the README). */
    3: optional string idempotency_key,
}

struct User {
    1: string id,
    2: string username,
    3: i64 created_at,
    /** True when this replays the first answer to an idempotency key. */
    4: optional bool replayed,
}

struct ListUsersRequest {
    1: optional i32 limit,
    2: optional string cursor,
}

struct UserPage {
    1: list<User> items,
    2: optional string next_cursor,
}

// ---- Tasks and reports ----------------------------------------------------

struct Task {
    1: string id,
    2: string name,
    3: optional string description,
    /** PENDING, IN_PROGRESS or COMPLETED */
    4: string status,
    5: optional i64 expires_at,
    6: i64 created_at,
    7: i64 updated_at,
    8: optional i64 completed_at,
    9: optional i64 deleted_at,
    10: list<string> assignee_ids,
    11: optional string external_id,
    12: optional string owner_id,
    /** True when this replays the first answer to an idempotency key. */
    13: optional bool replayed,
}

struct CreateTaskRequest {
    1: string name,
    2: optional string description,
    3: optional string status,
    4: optional i64 expires_at,
    /** Idempotency key (issue 13): 1-255 visible ASCII characters; a repeat with the same
        key and request answers the first answer again (see the README). */
    5: optional string idempotency_key,
}

/** replace=false is PATCH (only the fields set change); replace=true is PUT
(fields not set go back to their defaults: no description, PENDING, no expiry). */
struct UpdateTaskRequest {
    1: string task_id,
    2: optional string name,
    3: optional string description,
    4: optional string status,
    5: optional i64 expires_at,
    6: bool replace = false,
    /** Idempotency key (issue 13): 1-255 visible ASCII characters; a repeat with the same
        key and request answers the first answer again (see the README). */
    7: optional string idempotency_key,
}

struct ListTasksRequest {
    1: optional string status,
    2: optional string assignee_id,
    3: optional string owner_id,
    /** -created_at (default), created_at, expires_at, -expires_at */
    4: optional string order,
    5: optional i32 limit,
    6: optional string cursor,
}

struct TaskPage {
    1: list<Task> items,
    2: optional string next_cursor,
}

/** HTTP's `start` and `end`, the report window [window_start, window_end). Named
`start` and `end` before 0.2.0; `end` is reserved in Ruby, Lua and thriftpy2. */
struct TaskReportRequest {
    1: string user_id,
    2: i64 window_start,
    3: i64 window_end,
}

struct TaskReport {
    1: string user_id,
    2: i64 window_start,
    3: i64 window_end,
    4: list<Task> created,
    5: list<Task> completed,
    6: list<Task> deleted,
    7: list<Task> open,
    /** created, completed, deleted, open */
    8: map<string, i64> counts,
    /** Each list holds at most 1,000 tasks (the first in its order): true when any was
    cut (`counts` has the full lengths), as HTTP's `truncated`. */
    9: optional bool truncated,
}

// ---- Reconciliation: lookup and batch sends (issue 13) -------------------
// With the two methods marked the same way in the service below.

struct LookupPackagesRequest {
    /** 1 to 500 package ids. */
    1: list<string> package_ids,
    /** Safe-to-repeat key, as HTTP's Idempotency-Key (README: Every write safe to repeat). */
    2: optional string idempotency_key,
}

struct LookupPackagesResponse {
    /** The records of the ids received, in the order asked. */
    1: list<Package> found,
    /** The ids never received, in the order asked: resend only these. */
    2: list<string> missing,
    /** True when this is the stored first answer to an idempotency_key. */
    3: optional bool replayed,
}

struct SendPackagesRequest {
    /** 1 to 100 sends, each with every rule of send_package. */
    1: list<SendPackageRequest> packages,
    /** Safe-to-repeat key for the whole batch (each item keeps its package_id rules). */
    2: optional string idempotency_key,
}

/** An item's problem: what send_package would have raised as baseplate.Error. */
struct ItemProblem {
    1: i32 code,
    2: string message,
    /** Field name -> problem (a 409 names each field that differs from the first send). */
    3: map<string, string> details,
}

struct SendPackagesResult {
    1: i32 index,
    /** Unset for an item too invalid to name one. */
    2: optional string package_id,
    /** What send_package would have answered on HTTP: 201, 200, 409 or 422. */
    3: i32 status,
    4: bool replayed,
    /** The record (201/200); HTTP's `package`, a reserved word in most targets. */
    5: optional Package sent_package,
    /** The problem (409/422). */
    6: optional ItemProblem error,
}

struct SendPackagesResponse {
    /** One result per item, in request order. */
    1: list<SendPackagesResult> results,
    /** True when this is the stored first answer to an idempotency_key. */
    2: optional bool replayed,
}

// ---- end of reconciliation structs -----------------------------------------

// ---- Webhook delivery log and replay (issue 14) ----------------------------
// GET /v1/webhooks/deliveries, GET /v1/webhooks/deliveries/{id} and
// POST /v1/webhooks/deliveries/{id}/replay: structs here, methods at the end of
// the service, in a block of the same name.

struct ListWebhookDeliveriesRequest {
    1: optional string outcome,
    /** created, updated or deleted */
    2: optional string event,
    3: optional string external_id,
    4: optional i32 limit,
    5: optional string cursor,
}

/** A logged delivery. The listing leaves body, headers, body_sha256 and
body_size unset; headers hold the webhook-* headers, webhook-signature as
"redacted". applied and task are set on a replay's answer only. */
struct WebhookDelivery {
    1: i64 id,
    2: i64 received_at,
    3: optional string webhook_id,
    4: optional string event,
    5: optional string external_id,
    /** the HTTP status the delivery was answered */
    6: i32 status,
    7: string outcome,
    8: optional string detail,
    9: optional i64 replay_of,
    10: optional string body,
    11: optional map<string, string> headers,
    12: optional string body_sha256,
    13: optional i64 body_size,
    14: optional bool applied,
    15: optional Task task,
    /** True when this is the stored first answer to an idempotency_key (replay). */
    16: optional bool replayed,
}

struct WebhookDeliveryPage {
    1: list<WebhookDelivery> items,
    2: optional string next_cursor,
}

// ---- Inbox sync (issue 14) --------------------------------------------------
// GET /v1/inbox/{id}/changes and POST /v1/inbox/{id}/bulk: structs here, methods
// at the end of the service, in a block of the same name.

/** One change of a mailbox. HTTP's `from` and `to` are from_folder and to_folder:
`from` is reserved in Python, Ruby, Scala and the Thrift compiler itself. */
struct InboxChange {
    /** Per recipient, strictly increasing in commit order. */
    1: i64 seq,
    /** "delivered", "read", "unread", "moved" or "deleted" */
    2: string kind,
    3: string package_id,
    4: i64 at,
    /** The entry as it is when the changes are read; unset once deleted. */
    5: optional InboxItem item,
    /** Set for "moved" only. */
    6: optional string from_folder,
    7: optional string to_folder,
}

struct GetInboxChangesRequest {
    1: string recipient_id,
    /** The last seq the client has; default 0. */
    2: optional i64 since,
    /** 1..500, default 100 */
    3: optional i32 limit,
}

/** Errors: 410 (resync required: changes after `since` were pruned; list again). */
struct InboxChangesPage {
    1: list<InboxChange> changes,
    2: i64 next_since,
    3: bool has_more,
}

/** Every field set must match; none set: every package of the mailbox. */
struct InboxFilter {
    /** "inbox", "trash" or "spam" */
    1: optional string folder,
    2: optional bool unread,
    3: optional string package_type,
    4: optional string sender_id,
}

struct UpdateInboxByFilterRequest {
    1: string recipient_id,
    2: InboxAction action,
    3: optional InboxFilter filter,
    /** The last seq the client saw: packages delivered after it are never acted on. */
    4: i64 up_to_seq,
    /** Idempotency key (issue 13): 1-255 visible ASCII characters; a repeat with the same
        key and request answers the first answer again (see the README). */
    5: optional string idempotency_key,
}

struct UpdateInboxByFilterResponse {
    /** Packages that matched (delivered at or before up_to_seq), changed or not. */
    1: i64 updated,
    /** True when this replays the first answer to an idempotency key. */
    2: optional bool replayed,
}

// ---- end of inbox sync structs ----------------------------------------------

service GalaxyExpress extends baseplate.BaseplateServiceV2 {
    SendPackageResponse send_package(1: SendPackageRequest request) throws (1: baseplate.Error error),
    Package get_package(1: string package_id) throws (1: baseplate.Error error),
    Preferences update_preferences(1: UpdatePreferencesRequest request) throws (1: baseplate.Error error),
    Preferences get_preferences(1: string recipient_id) throws (1: baseplate.Error error),
    Statistics get_statistics() throws (1: baseplate.Error error),

    InboxPage list_inbox(1: ListInboxRequest request) throws (1: baseplate.Error error),
    InboxSummary get_inbox_summary(1: string recipient_id) throws (1: baseplate.Error error),
    UpdateInboxResponse update_inbox(1: UpdateInboxRequest request) throws (1: baseplate.Error error),
    SpamReportCount get_spam_report_count(1: string sender_id) throws (1: baseplate.Error error),

    User create_user(1: CreateUserRequest request) throws (1: baseplate.Error error),
    User get_user(1: string user_id) throws (1: baseplate.Error error),
    UserPage list_users(1: ListUsersRequest request) throws (1: baseplate.Error error),
    void delete_user(1: string user_id, 2: optional string idempotency_key) throws (1: baseplate.Error error),

    Task create_task(1: CreateTaskRequest request) throws (1: baseplate.Error error),
    Task get_task(1: string task_id) throws (1: baseplate.Error error),
    TaskPage list_tasks(1: ListTasksRequest request) throws (1: baseplate.Error error),
    Task update_task(1: UpdateTaskRequest request) throws (1: baseplate.Error error),
    void delete_task(1: string task_id, 2: optional string idempotency_key) throws (1: baseplate.Error error),
    void assign_task(1: string task_id, 2: string user_id, 3: optional string idempotency_key) throws (1: baseplate.Error error),
    void unassign_task(1: string task_id, 2: string user_id, 3: optional string idempotency_key) throws (1: baseplate.Error error),
    TaskReport get_task_report(1: TaskReportRequest request) throws (1: baseplate.Error error),

    // ---- Reconciliation: lookup and batch sends (issue 13) ----
    LookupPackagesResponse lookup_packages(1: LookupPackagesRequest request) throws (1: baseplate.Error error),
    SendPackagesResponse send_packages(1: SendPackagesRequest request) throws (1: baseplate.Error error),
    // ---- end of reconciliation methods ----
    // ---- Webhook delivery log and replay (issue 14) ----
    WebhookDeliveryPage list_webhook_deliveries(1: ListWebhookDeliveriesRequest request) throws (1: baseplate.Error error),
    WebhookDelivery get_webhook_delivery(1: i64 delivery_id) throws (1: baseplate.Error error),
    WebhookDelivery replay_webhook_delivery(1: i64 delivery_id, 2: optional string idempotency_key) throws (1: baseplate.Error error),
    // ---- Inbox sync (issue 14) ----
    InboxChangesPage get_inbox_changes(1: GetInboxChangesRequest request) throws (1: baseplate.Error error),
    UpdateInboxByFilterResponse update_inbox_by_filter(1: UpdateInboxByFilterRequest request) throws (1: baseplate.Error error),
    // ---- end of inbox sync methods ----
}
