"""Thrift method of the reports domain."""

from __future__ import annotations

from galaxy_express.context import ServiceContext
from galaxy_express.reports import service
from galaxy_express.reports.schemas import ReportQuery
from galaxy_express.thrift.edge import to_instant, to_millis
from galaxy_express.thrift.gen import ttypes
from galaxy_express.thrift.tasks import task_struct
from galaxy_express.validation import validate


class ReportsHandler:
    def get_task_report(
        self, context: ServiceContext, request: ttypes.TaskReportRequest
    ) -> ttypes.TaskReport:
        query = validate(
            ReportQuery,
            {
                "user_id": request.user_id,
                "start": to_instant(request.start, "start"),
                "end": to_instant(request.end, "end"),
            },
        )
        report = service.get_task_report(context, query)
        lists = {
            name: [task_struct(t) for t in getattr(report, name)] for name in service.CATEGORIES
        }
        return ttypes.TaskReport(
            user_id=report.user_id,
            start=to_millis(report.start),
            end=to_millis(report.end),
            # Full lengths: each list holds at most MAX_ITEMS_PER_LIST tasks.
            counts=report.counts(),
            **lists,
        )
