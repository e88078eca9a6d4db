"""What every domain stands on.

Errors, clock, pagination, validation types, settings and the service context.
"""
