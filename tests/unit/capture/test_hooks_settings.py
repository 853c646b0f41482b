"""The installer on settings files that already hold other hooks: install, install again and uninstall
leave exactly the expected JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stream.capture import hooks_settings as hs

CMD = "/opt/venv/bin/ccstream hook"
OURS = {"hooks": [{"type": "command", "command": CMD, "timeout": 5}]}

EXISTING = {
    "model": "opus",
    "permissions": {"allow": ["Bash(ls:*)"]},
    "hooks": {
        "SessionStart": [{"matcher": "startup", "hooks": [{"type": "command", "command": "~/bin/greet.sh"}]}],
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.py", "timeout": 3}]}],
    },
}

INSTALLED = {
    "model": "opus",
    "permissions": {"allow": ["Bash(ls:*)"]},
    "hooks": {
        "SessionStart": [{"matcher": "startup", "hooks": [{"type": "command", "command": "~/bin/greet.sh"}]},
                         OURS],
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.py", "timeout": 3}]}],
        "SessionEnd": [OURS],
        "SubagentStop": [OURS],
    },
}


def write(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=4))


def test_install_install_again_uninstall(tmp_path: Path) -> None:
    path = tmp_path / ".claude" / "settings.json"
    write(path, EXISTING)
    original_text = path.read_text()

    assert hs.install(path, CMD) == (True, path.with_name("settings.json.ccstream-backup"))
    assert json.loads(path.read_text()) == INSTALLED
    assert path.with_name("settings.json.ccstream-backup").read_text() == original_text

    text = path.read_text()
    assert hs.install(path, CMD) == (False, None)  # idempotent: file untouched
    assert path.read_text() == text

    assert hs.uninstall(path)[0] is True
    assert json.loads(path.read_text()) == EXISTING
    assert hs.uninstall(path) == (False, None)


def test_install_into_missing_file_and_uninstall_leaves_empty_object(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    assert hs.install(path, CMD) == (True, None)
    assert json.loads(path.read_text()) == {"hooks": {"SessionStart": [OURS], "SessionEnd": [OURS],
                                                      "SubagentStop": [OURS]}}
    hs.uninstall(path)
    assert json.loads(path.read_text()) == {}


def test_reinstall_from_another_path_replaces_ours_in_place(tmp_path: Path) -> None:
    old: dict[str, Any] = {"hooks": {"SessionEnd": [
        {"hooks": [{"type": "command", "command": "'/old venv/bin/ccstream' hook", "timeout": 60}]},
        {"hooks": [{"type": "command", "command": "notify.sh"}]},
    ], "SessionStart": [{"matcher": "*", "hooks": [{"type": "command", "command": "log.sh"},
                                                  {"type": "command", "command": "ccstream hook"}]}]}}
    new = hs.merge(old, CMD)
    assert new == {"hooks": {
        "SessionEnd": [OURS, {"hooks": [{"type": "command", "command": "notify.sh"}]}],
        "SessionStart": [{"matcher": "*", "hooks": [{"type": "command", "command": "log.sh"}]}, OURS],
        "SubagentStop": [OURS],
    }}
    assert hs.merge(new, CMD) == new
    assert old["hooks"]["SessionEnd"][0]["hooks"][0]["timeout"] == 60  # input not mutated


def test_recognises_only_ccstream_hook_commands() -> None:
    ours = ["/a/b/ccstream hook", "ccstream hook", "'/x y/ccstream' hook", "python -m stream.capture.hook", "python -m stream.hook"]
    theirs = ["ccstream-helper hook", "/bin/myccstream hook", "ccstream hooks status", "echo ccstream", "hook"]
    assert all(hs.is_ours({"type": "command", "command": c}) for c in ours)
    assert not any(hs.is_ours({"type": "command", "command": c}) for c in theirs)
    assert not hs.is_ours({"type": "http", "command": "ccstream hook"})


def test_invalid_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{ not json")
    with pytest.raises(hs.SettingsFileError):
        hs.install(path, CMD)
    assert path.read_text() == "{ not json"
    assert not path.with_name("settings.json.ccstream-backup").exists()
    assert hs.main(["install", "--settings-file", str(path), "--command", CMD]) == 1


def test_scope_paths(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home")}
    assert hs.settings_path("user", env=env) == tmp_path / "home" / ".claude" / "settings.json"
    assert hs.settings_path("user", env={**env, "CLAUDE_CONFIG_DIR": "/cfg/a,/cfg/b"}) == Path("/cfg/a/settings.json")
    assert hs.settings_path("project", tmp_path) == tmp_path / ".claude" / "settings.json"
    assert hs.settings_path("local", tmp_path) == tmp_path / ".claude" / "settings.local.json"


def test_cli_install_uses_the_absolute_ccstream_path_and_status_reports(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("CCSTREAM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CCSTREAM_REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens: DOWN
    proj = tmp_path / "proj"
    assert hs.main(["install", "--scope", "local", "--project-dir", str(proj)]) == 0
    doc = json.loads((proj / ".claude" / "settings.local.json").read_text())
    [cmd] = {c for cs in hs.installed_events(doc).values() for c in cs}
    exe = cmd.removesuffix(" hook").strip("'")
    assert Path(exe).is_absolute() and Path(exe).name == "ccstream"
    assert set(hs.installed_events(doc)) == set(hs.EVENTS)
    capsys.readouterr()
    assert hs.main(["status", "--project-dir", str(proj)]) == 1  # installed, but Redis is down
    out = capsys.readouterr().out
    assert "local" in out and "installed; command" in out
    assert "redis    DOWN" in out and "spool    0 event(s) waiting" in out
