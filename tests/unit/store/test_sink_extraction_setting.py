"""sink_extraction: a closed set, refused at load with the choices; python is the default."""

from __future__ import annotations

import pytest

from stream.config import ConfigError, load_settings


def test_python_is_the_default() -> None:
    assert load_settings(env={}).sink_extraction == "python"


def test_clickhouse_is_accepted_from_the_environment() -> None:
    assert load_settings(env={"CCSTREAM_SINK_EXTRACTION": "clickhouse"}).sink_extraction == "clickhouse"


def test_an_unknown_engine_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="use one of python, clickhouse"):
        load_settings(env={"CCSTREAM_SINK_EXTRACTION": "rust"})
