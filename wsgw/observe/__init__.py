"""Seeing a node work: access logs (AWS's `accessLogSettings`), application log format, tracing.

Metrics live in `wsgw/metrics.py`; this package holds the rest of what operators read.
"""
