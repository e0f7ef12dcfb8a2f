"""TLS for the listener: settings, the local development CA, and in-process trust of that CA."""

from __future__ import annotations

from wsgw.tls.context import TLS_MODES, TlsSettings, server_context

__all__ = ["TLS_MODES", "TlsSettings", "server_context"]
