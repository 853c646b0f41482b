"""agents.dashboard without a server: its routes are registered, the OpenAPI document names them, every
static file the page loads ships, and nothing on the page comes from another origin."""

from __future__ import annotations

import re
from pathlib import Path

from agents import dashboard
from agents.app import create_app
from stream.config import Settings


def _app(tmp_path: Path):  # type: ignore[no-untyped-def]
    return create_app(Settings(data_dir=tmp_path / "data", claude_roots=[tmp_path / "projects"],
                               kafka_bootstrap="127.0.0.1:1", broker_is_ephemeral=True))


def test_every_documented_endpoint_is_registered(tmp_path: Path) -> None:
    routes = set(_app(tmp_path).web.views)
    assert set(dashboard.OPENAPI["paths"]) <= routes
    assert {"/dashboard", "/dashboard/", "/dashboard/static/{name}", "/dashboard/openapi.json"} <= routes


def test_the_page_loads_only_shipped_files_from_its_own_origin() -> None:
    html = (dashboard.STATIC / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert refs, "the page loads its script and style"
    for ref in refs:
        assert not re.match(r"^(https?:)?//", ref), f"{ref} would load from another origin"
        if ref.startswith("static/"):
            name = ref.removeprefix("static/")
            assert dashboard._STATIC_NAME.match(name) and (dashboard.STATIC / name).is_file(), ref
    js = (dashboard.STATIC / "app.js").read_text()
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", js), "the script fetches only its own API"


def test_static_names_cannot_leave_the_folder() -> None:
    for bad in ("../app.py", "..", "a/b.js", ".hidden", "app.js/", "%2e%2e"):
        assert not dashboard._STATIC_NAME.match(bad), bad


def test_the_url_up_prints_is_the_one_time_login_link() -> None:
    assert dashboard.dashboard_url("http://127.0.0.1:6066") == "http://127.0.0.1:6066/dashboard/"
    assert dashboard.dashboard_url("http://h:1/", "t0k") == "http://h:1/ccstream/?login=t0k"
