"""`ccstream hooks install --otel`: the env block Claude Code reads, written reversibly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.capture import hooks_settings as hs


def test_the_env_block_names_claude_codes_variables() -> None:
    assert hs.otel_env("http://127.0.0.1:4318/") == {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert hs.otel_env("http://h:1", token="t", protocol="http/json")["OTEL_EXPORTER_OTLP_HEADERS"] == \
        "Authorization=Bearer t"


def test_merge_then_unmerge_restores_the_document_exactly() -> None:
    doc = {"model": "opus", "env": {"FOO": "1", "OTEL_LOGS_EXPORTER": "console"}, "hooks": {}}
    wanted = hs.otel_env("http://127.0.0.1:4318")
    merged, before = hs.merge_env(doc, wanted)
    assert merged["env"]["FOO"] == "1" and merged["env"]["OTEL_LOGS_EXPORTER"] == "otlp"
    assert merged["model"] == "opus" and doc["env"]["OTEL_LOGS_EXPORTER"] == "console"  # input untouched
    assert before["OTEL_LOGS_EXPORTER"] == "console" and before["CLAUDE_CODE_ENABLE_TELEMETRY"] is None
    assert hs.unmerge_env(merged, wanted, before) == doc
    # installed twice: the first install's memory of the original wins
    again, before2 = hs.merge_env(merged, wanted, before)
    assert again == merged and hs.unmerge_env(again, wanted, before2) == doc
    # a document without env: the block goes away again
    bare = {"hooks": {}}
    m, b = hs.merge_env(bare, wanted)
    assert hs.unmerge_env(m, wanted, b) == bare


def test_a_variable_changed_by_hand_since_is_left_alone() -> None:
    wanted = hs.otel_env("http://127.0.0.1:4318")
    merged, before = hs.merge_env({}, wanted)
    merged["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://collector:4318"
    out = hs.unmerge_env(merged, wanted, before)
    assert out == {"env": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}}


def test_an_env_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(hs.SettingsFileError):
        hs.merge_env({"env": ["x"]}, {"A": "1"})


def test_the_command_installs_and_uninstalls_hooks_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CCSTREAM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CCSTREAM_OTLP_PORT", "4999")
    monkeypatch.delenv("CCSTREAM_OTLP_TOKEN", raising=False)
    path = tmp_path / "settings.json"
    original = {"env": {"KEEP": "me"}, "permissions": {"allow": ["Bash(ls)"]}}
    path.write_text(json.dumps(original))
    assert hs.main(["install", "--settings-file", str(path), "--command", "/x/ccstream hook", "--otel"]) == 0
    doc = json.loads(path.read_text())
    assert doc["env"] == {"KEEP": "me", **hs.otel_env("http://127.0.0.1:4999")}
    assert set(hs.installed_events(doc)) == set(hs.EVENTS)
    assert "http://127.0.0.1:4999" in capsys.readouterr().out
    assert hs.main(["install", "--settings-file", str(path), "--command", "/x/ccstream hook", "--otel"]) == 0
    assert json.loads(path.read_text()) == doc  # idempotent
    assert hs.main(["uninstall", "--settings-file", str(path)]) == 0
    assert json.loads(path.read_text()) == original
    assert not hs.otel_sidecar(path).exists()
    monkeypatch.setenv("CCSTREAM_OTLP_PORT", "0")
    assert hs.main(["install", "--settings-file", str(path), "--command", "/x/ccstream hook", "--otel"]) == 1
    assert "CCSTREAM_OTLP_PORT=0" in capsys.readouterr().err
