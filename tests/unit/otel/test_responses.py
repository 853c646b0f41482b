"""The receiver's answers: google.rpc.Status for errors (encoded by hand, checked against the real message),
Export*ServiceResponse with partial success for items without a table."""

from __future__ import annotations

import json

from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from stream.otel import guard
from stream.otel.receiver import status_body, success_body


def test_error_bodies_are_google_rpc_status_in_the_requests_encoding() -> None:
    for message in ("short", "x" * 300, "ünïcode ✓"):
        for code in (3, 14, 16, 200):
            data, ctype = status_body(code, message, guard.PROTOBUF)
            assert ctype == "application/x-protobuf"
            st = status_pb2.Status()
            st.ParseFromString(data)
            assert (st.code, st.message) == (code, message)
            data, ctype = status_body(code, message, guard.JSON)
            assert ctype == "application/json" and json.loads(data) == {"code": code, "message": message}
    assert status_body(3, "m", None)[1] == "application/json"  # unknown content type: JSON


def test_partial_success_counts_what_had_no_table() -> None:
    data, ctype = success_body("metrics", 3, "exponential_histogram metrics are not stored", guard.PROTOBUF)
    resp = ExportMetricsServiceResponse()
    resp.ParseFromString(data)
    assert ctype == "application/x-protobuf"
    assert resp.partial_success.rejected_data_points == 3
    assert "exponential_histogram" in resp.partial_success.error_message
    data, _ = success_body("metrics", 0, "", guard.JSON)
    assert json.loads(data) == {}
    data, _ = success_body("logs", 0, "", guard.PROTOBUF)
    assert data == b""
