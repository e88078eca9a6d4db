"""Thrift method of the reports domain."""

from __future__ import annotations

from galaxy_express.core.context import ServiceContext
from galaxy_express.core.validation import validate
from galaxy_express.reports import service
from galaxy_express.reports.commands import ReportQuery
from galaxy_express.thrift.edge import to_instant, to_millis
from galaxy_express.thrift.gen import ttypes
from galaxy_express.thrift.tasks import task_struct


class ReportsHandler:
    def get_task_report(
        self, context: ServiceContext, request: ttypes.TaskReportRequest
    ) -> ttypes.TaskReport:
        query = validate(
            ReportQuery,
            {
                "user_id": request.user_id,
                "start": to_instant(request.window_start, "window_start"),
                "end": to_instant(request.window_end, "window_end"),
            },
        )
        report = service.get_task_report(context, query)
        lists = {
            name: [task_struct(t) for t in getattr(report, name)] for name in service.CATEGORIES
        }
        return ttypes.TaskReport(
            user_id=report.user_id,
            window_start=to_millis(report.start),
            window_end=to_millis(report.end),
            # Full lengths: each list holds at most MAX_ITEMS_PER_LIST tasks.
            counts=report.counts(),
            **lists,
        )
