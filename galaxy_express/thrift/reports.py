"""Thrift method of the reports domain."""

from __future__ import annotations

from galaxy_express.core.context import ServiceContext
from galaxy_express.core.cooperation import Pacer
from galaxy_express.core.validation import validate
from galaxy_express.reports import service
from galaxy_express.reports.commands import ReportQuery
from galaxy_express.tasks.records import TaskRecord
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
        with service.ON_DEMAND:
            report = service.get_task_report(context, query)
            pace = Pacer()
            lists = {name: _structs(getattr(report, name), pace) for name in service.CATEGORIES}
        return ttypes.TaskReport(
            user_id=report.user_id,
            window_start=to_millis(report.start),
            window_end=to_millis(report.end),
            # Full lengths: each list holds at most MAX_ITEMS_PER_LIST tasks.
            counts=report.counts(),
            truncated=report.truncated,
            **lists,
        )


def _structs(tasks: list[TaskRecord], pace: Pacer) -> list[ttypes.Task]:
    """The tasks as structs, paced: a big report shares the Thrift worker too."""
    structs = []
    for task in tasks:
        structs.append(task_struct(task))
        pace()
    return structs
