"""The Thrift edge's app factory (``[app:thrift]`` ``factory``).

The processor serves the one ``Handler`` over the Baseplate
``galaxy_express.bootstrap`` builds, observed by baseplate's wrapper when
tracing is on, and without its OpenTelemetry span when it is off
(``galaxy_express.thrift.observed``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from baseplate.frameworks.thrift import baseplateify_processor

from galaxy_express.bootstrap import make_baseplate

logger = logging.getLogger(__name__)


def make_processor(app_config: Mapping[str, str]) -> Any:
    from galaxy_express.thrift.gen import GalaxyExpress
    from galaxy_express.thrift.handler import Handler
    from galaxy_express.thrift.observed import observe_processor

    baseplate, settings = make_baseplate(app_config)
    processor = GalaxyExpress.Processor(Handler())
    if not settings.tracing_enabled:
        return observe_processor(processor, baseplate)
    return baseplateify_processor(processor, logger, baseplate, convert_to_baseplate_error=True)
