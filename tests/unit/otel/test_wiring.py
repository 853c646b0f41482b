"""The OTLP receiver is a Service of the edge role only, started before the agents; port 0 turns it off;
the otel sink agent exists in the sink role; building the app binds nothing."""

from __future__ import annotations

import socket
from pathlib import Path

from agents.app import create_app
from agents.fetch_wait import FetchWaitCap
from agents.store import StoreService
from stream.config import Settings, load_settings
from stream.otel.receiver import OtlpReceiver
from stream.stack.servers import free_port


def _settings(tmp_path: Path, **kw: object) -> Settings:
    base: dict[str, object] = dict(data_dir=tmp_path / "data", claude_roots=[tmp_path / "projects"],
                                   kafka_bootstrap="127.0.0.1:1", broker_is_ephemeral=True)
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def test_defaults_follow_the_otlp_http_convention_on_loopback() -> None:
    s = load_settings({})
    assert (s.otlp_port, s.otlp_host, s.otlp_token) == (4318, "127.0.0.1", None)
    assert s.topic_otel == "ccstream.otel"
    s = load_settings({"CCSTREAM_OTLP_PORT": "0", "CCSTREAM_OTLP_MAX_BODY_BYTES": "1000",
                       "CCSTREAM_TOPIC_PREFIX": "team"})
    assert (s.otlp_port, s.otlp_max_body_bytes, s.topic_otel) == (0, 1000, "team.otel")


def test_the_receiver_is_an_edge_service_started_before_the_agents(tmp_path: Path) -> None:
    port = free_port()
    both = create_app(_settings(tmp_path, otlp_port=port))
    assert [type(c) for c in both._children] == [FetchWaitCap, StoreService, OtlpReceiver]
    edge = create_app(_settings(tmp_path, otlp_port=port, roles=["edge"], broker_is_ephemeral=False, app_id="e"))
    assert [type(c) for c in edge._children] == [OtlpReceiver]
    sink = create_app(_settings(tmp_path, otlp_port=port, roles=["sink"], app_id="s"))
    assert OtlpReceiver not in [type(c) for c in sink._children]
    assert "ccstream.otel-sink" in {a.name for a in sink.agents.values()}
    assert "ccstream.otel-sink" not in {a.name for a in edge.agents.values()}
    off = create_app(_settings(tmp_path, otlp_port=0, app_id="off"))
    assert OtlpReceiver not in [type(c) for c in off._children]
    with socket.socket() as probe:  # building the app listened on nothing
        probe.bind(("127.0.0.1", port))
