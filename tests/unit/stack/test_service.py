"""stream/stack/service.py: the unit texts, install/uninstall/status into a temporary config dir (never the
user's), and `systemd-analyze verify` on the unit when the machine has it."""

from __future__ import annotations

import plistlib
import shutil
from pathlib import Path

import pytest

from stream.stack import service as svc


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("CCSTREAM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CCSTREAM_SERVICE_DIR", raising=False)
    return {"CCSTREAM_DATA_DIR": str(tmp_path / "data"), "CCSTREAM_REDIS_URL": "redis://127.0.0.1:6390/0",
            "CCSTREAM_KAFKA_SASL_PASSWORD": "hunter2", "CCSTREAM_CLICKHOUSE_DSN": "http://u:pw@ch:8123/db",
            "CCSTREAM_KAFKA_BOOTSTRAP": "k:9092", "CLAUDE_CONFIG_DIR": "/home/me/.claude", "HOME": "/home/me",
            "CCSTREAM_SERVICE_DIR": "/elsewhere"}


def test_secrets_and_foreign_variables_stay_out(env: dict[str, str]) -> None:
    assert svc.service_env(env) == {"CCSTREAM_DATA_DIR": env["CCSTREAM_DATA_DIR"],
                                    "CCSTREAM_KAFKA_BOOTSTRAP": "k:9092",
                                    "CCSTREAM_REDIS_URL": "redis://127.0.0.1:6390/0",
                                    "CLAUDE_CONFIG_DIR": "/home/me/.claude"}
    assert svc.service_env({"CCSTREAM_REDIS_URL": "redis://:pw@host:6379"}) == {}


def test_targets_default_to_the_users_folders_and_honour_a_config_dir(tmp_path: Path) -> None:
    assert svc.target("systemd", env={"XDG_CONFIG_HOME": "/x"}).path == Path("/x/systemd/user/ccstream.service")
    assert svc.target("launchd", env={}).path.name == "dev.ccstream.up.plist"
    assert svc.target("systemd", tmp_path).path == tmp_path / "ccstream.service"
    assert svc.target("launchd", env={"CCSTREAM_SERVICE_DIR": str(tmp_path)}).path.parent == tmp_path
    assert svc.platform_kind("linux") == "systemd" and svc.platform_kind("darwin") == "launchd"
    with pytest.raises(svc.ServiceError, match="supports Linux"):
        svc.platform_kind("win32")


def test_systemd_unit_runs_up_and_restarts_it(tmp_path: Path) -> None:
    text = svc.systemd_unit(["/opt/cc stream/bin/ccstream", "up"], {"CCSTREAM_X": 'a "b" c'}, tmp_path / "s.log")
    lines = text.splitlines()
    assert "ExecStart='/opt/cc stream/bin/ccstream' up" in lines
    assert {"Restart=always", "RestartSec=5", "WantedBy=default.target", "KillSignal=SIGINT"} <= set(lines)
    assert 'Environment="CCSTREAM_X=a \\"b\\" c"' in lines
    assert f"StandardOutput=append:{tmp_path / 's.log'}" in lines


def test_launchd_plist_is_a_keepalive_agent(tmp_path: Path) -> None:
    doc = plistlib.loads(svc.launchd_plist(["/usr/local/bin/ccstream", "up"], {"CCSTREAM_X": "1"},
                                           tmp_path / "s.log"))
    assert doc["Label"] == "dev.ccstream.up" and doc["ProgramArguments"] == ["/usr/local/bin/ccstream", "up"]
    assert doc["KeepAlive"] is True and doc["RunAtLoad"] is True
    assert doc["EnvironmentVariables"] == {"CCSTREAM_X": "1"} and doc["StandardErrorPath"] == str(tmp_path / "s.log")


def test_install_status_uninstall_in_a_temporary_dir(tmp_path: Path, env: dict[str, str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    unit_dir = tmp_path / "units"
    assert svc.main(["status", "--config-dir", str(unit_dir)]) == 4
    assert "not installed" in capsys.readouterr().out
    assert svc.main(["install", "--no-start", "--config-dir", str(unit_dir)]) == 0
    unit = unit_dir / ("ccstream.service" if svc.platform_kind() == "systemd" else "dev.ccstream.up.plist")
    assert unit.is_file()
    assert "installed" in capsys.readouterr().out
    assert (tmp_path / "data" / "logs").is_dir()
    code = svc.main(["status", "--config-dir", str(unit_dir)])
    assert code in (0, 3) and f"installed {unit}" in capsys.readouterr().out
    assert svc.main(["uninstall", "--no-stop", "--config-dir", str(unit_dir)]) == 0
    assert not unit.exists()
    assert svc.main(["uninstall", "--no-stop", "--config-dir", str(unit_dir)]) == 0
    assert "not installed" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_written_unit_passes_systemd_analyze_verify(tmp_path: Path, env: dict[str, str]) -> None:
    t = svc.target("systemd", tmp_path / "units")
    svc.install(t, start=False, env=env)
    ok, text = svc.verify_unit(t.path)
    assert ok, text
    # and the check is real: a broken unit fails it
    bad = tmp_path / "units" / "broken.service"
    bad.write_text(t.path.read_text().replace("Restart=always", "Restart=sometimes")
                   .replace("ExecStart=", "ExecStart=relative-"))
    assert not svc.verify_unit(bad)[0]
