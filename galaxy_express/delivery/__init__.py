"""Delivery: sending packages at most once, recipient preferences, statistics."""
