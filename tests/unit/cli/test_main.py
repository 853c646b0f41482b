"""stream/cli/main.py: one-line errors, --debug, version, did-you-mean, help on every subcommand."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

from stream.cli import main as cli_main
from stream.cli.main import COMMANDS, UserError, check_data_dir, main, suggest


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CCSTREAM_KAFKA_BOOTSTRAP", "CCSTREAM_CONFIG", "CCSTREAM_CLICKHOUSE_DSN", "CCSTREAM_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CCSTREAM_DATA_DIR", str(tmp_path / "data"))


def test_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    assert suggest("tokns") == "; did you mean `ccstream tokens`?"
    assert suggest("sesions") == "; did you mean `ccstream sessions`?"
    assert suggest("xyzzy") == ""
    assert main(["tokns"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean `ccstream tokens`" in err


def test_version_command_and_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("ccstream ")
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == first


def test_data_dir_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    monkeypatch.setenv("CCSTREAM_DATA_DIR", str(f))
    assert main(["sessions"]) == 1
    err = capsys.readouterr().err
    assert err == (f"ccstream sessions: the data dir {f} is not a directory; set CCSTREAM_DATA_DIR to a "
                   "directory you can write (default ~/.ccstream)\n")
    with pytest.raises(UserError):
        check_data_dir(f)


def test_data_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot be created"):
        check_data_dir(blocker / "sub")
    check_data_dir(tmp_path / "new" / "dir")  # creatable: created
    assert (tmp_path / "new" / "dir").is_dir()


def test_bad_setting_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CCSTREAM_WEB_PORT", "abc")
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CCSTREAM_WEB_PORT='abc' is not a valid int" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["edge", "sink"])
def test_edge_and_sink_without_kafka(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ccstream {command}: `ccstream {command}` needs a Kafka cluster and none is configured")
    assert "CCSTREAM_KAFKA_BOOTSTRAP" in err and err.count("\n") == 1


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def boom(argv: list[str]) -> int:
        raise RuntimeError("kaput\nsecond line")

    monkeypatch.setitem(COMMANDS, "boom", ("stream.cli.main", "_boom", "test"))
    monkeypatch.setattr(cli_main, "_boom", boom, raising=False)
    assert main(["boom"]) == 1
    assert capsys.readouterr().err == "ccstream boom: RuntimeError: kaput (--debug shows the traceback)\n"
    with pytest.raises(RuntimeError, match="kaput"):
        main(["boom", "--debug"])
    monkeypatch.setenv("CCSTREAM_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["boom"])


def test_debug_after_double_dash_is_left_to_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setitem(COMMANDS, "echo", ("stream.cli.main", "_echo", "test"))
    monkeypatch.setattr(cli_main, "_echo", lambda argv: seen.append(argv) or 0, raising=False)
    assert main(["echo", "a", "--", "--debug"]) == 0
    assert seen == [["a", "--", "--debug"]]


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_subcommand_has_help_with_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    for name, (module, func, help_) in COMMANDS.items():
        assert help_, name
        if name in ("hook", "version"):
            continue
        with pytest.raises(SystemExit) as exc:
            getattr(importlib.import_module(module), func)(["--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: ccstream {name}"), name
        assert len(out.split("\n\n")[1]) > 20, name  # a description paragraph after the usage
    for name in ("hooks", "db", "service"):
        for sub in ("install", "uninstall", "status") if name != "db" else ("migrate", "status"):
            module, func, _ = COMMANDS[name]
            with pytest.raises(SystemExit):
                getattr(importlib.import_module(module), func)([sub, "--help"])
            parts = capsys.readouterr().out.split("\n\n")
            assert parts[0].startswith(f"usage: ccstream {name} {sub}") and len(parts[1]) > 20, (name, sub)


def test_log_level_everywhere_with_the_old_spelling_hidden() -> None:
    from stream.stack.worker import parser

    for prog in ("ccstream worker", "ccstream edge", "ccstream sink"):
        p = parser(prog)
        assert p.parse_args(["--log-level", "DEBUG"]).loglevel == "debug"
        assert p.parse_args(["--loglevel", "warning"]).loglevel == "warning"
        assert "--log-level" in p.format_help() and "--loglevel" not in p.format_help()


def test_db_json_after_the_subcommand() -> None:
    # parse only: the same namespace whether --json comes before or after the subcommand
    import stream.cli.db as db

    captured: list[argparse.Namespace] = []

    class Stop(Exception):
        pass

    def fake_settings() -> None:
        raise Stop

    orig_parse = argparse.ArgumentParser.parse_args

    def spy(self: argparse.ArgumentParser, args: list[str] | None = None, namespace: object = None) -> object:
        ns = orig_parse(self, args, namespace)  # type: ignore[arg-type]
        captured.append(ns)
        return ns

    mp = pytest.MonkeyPatch()
    mp.setattr(argparse.ArgumentParser, "parse_args", spy)
    mp.setattr(db, "load_settings", fake_settings)
    try:
        for argv in (["status", "--json"], ["--json", "status"], ["status"]):
            with pytest.raises(Stop):
                db.main(argv)
    finally:
        mp.undo()
    assert [(ns.action, ns.json) for ns in captured] == [("status", True), ("status", True), ("status", False)]
