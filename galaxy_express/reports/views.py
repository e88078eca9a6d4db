"""HTTP edge of the reports: the on-demand task report."""

from __future__ import annotations

from pyramid.request import Request
from pyramid.response import Response

from galaxy_express.http.web import Api, context_of, encoded_json_response, query_as
from galaxy_express.reports import service
from galaxy_express.reports.commands import ReportQuery
from galaxy_express.reports.schemas import TaskReportOut, encoded_report

api = Api(tag="reports")


@api.operation(
    "GET",
    "/v1/reports/tasks",
    summary="A user's task report for a window [start, end)",
    description=(
        "The same report the periodic files hold. Any valid user id gets one (possibly "
        "empty). Timestamps as in request bodies (RFC 3339 or Unix seconds); the window is "
        "at most 366 days. Each list holds at most 1,000 tasks (the first in its order); "
        "`counts` gives the full lengths and `truncated` is true when any list was cut."
    ),
    query=ReportQuery,
    responses={200: TaskReportOut},
    errors=(422,),
)
def get_task_report(request: Request) -> Response:
    query = query_as(request, ReportQuery)
    with service.ON_DEMAND:
        report = service.get_task_report(context_of(request), query)
        body = encoded_report(report)
    return encoded_json_response(body)
