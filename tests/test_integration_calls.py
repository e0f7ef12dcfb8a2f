"""A failed integration call is logged with its cause and counted by kind, the same for both fronts."""

from __future__ import annotations

import logging

import pytest

from wsgw.aws.proxy_result import InvalidIntegrationResult
from wsgw.integrations.calls import Failure, report_failure
from wsgw.metrics import Metrics


@pytest.mark.parametrize(("exc", "failure"), [(TimeoutError(), Failure.TIMEOUT),
                                              (InvalidIntegrationResult("bad status"), Failure.INVALID_RESULT),
                                              (RuntimeError("secret detail"), Failure.ERROR)])
def test_each_failure_is_named_counted_and_logged_with_the_request_id(
        exc: Exception, failure: Failure, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "wsgw")
    metrics = Metrics()
    assert report_failure(exc, metrics, "HTTP route GET /x", 0.25, "req-9") is failure
    assert metrics.value("wsgw_integration_errors_total", f'kind="{failure.value}"') == 1
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "HTTP route GET /x" in logged and "req-9" in logged


def test_an_errors_cause_goes_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "wsgw")
    try:
        raise RuntimeError("secret detail")
    except RuntimeError as exc:
        report_failure(exc, Metrics(), "route sendmessage", 1.0, "req-1")
    assert any("secret detail" in (r.exc_text or "") for r in caplog.records)
