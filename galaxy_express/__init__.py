"""Galaxy Express: one service, two edges (HTTP and Thrift), over one service layer.

The folders are the architecture: ``core`` and ``db`` are what every domain
stands on; ``delivery``, ``inbox``, ``users``, ``tasks``, ``webhooks`` and
``reports`` are the domains; ``http`` and ``thrift`` are the two edges;
``runtime`` holds the entry points; ``bootstrap`` builds the Baseplate once.
Dependencies point one way (runtime → edges → domains → core/db), as the
import-linter contracts in pyproject.toml check.
"""
