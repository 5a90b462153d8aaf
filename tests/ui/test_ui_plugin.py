"""The plugin as Airflow loads it, and the page's assets as it serves them."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

from tests.conftest import REPO

UI = REPO / "plugins" / "batch_cleanup" / "ui"

LOAD_PLUGINS = """
import json, sys
from airflow import plugins_manager
plugins, errors = plugins_manager._get_plugins()
plugin = next(p for p in plugins if p.name == "batch_cleanup_ui")
light = {m: m in sys.modules for m in ("fastapi", "batch_cleanup.ui.app", "history", "queries", "app")}
apps = plugin.fastapi_apps
print(json.dumps({
    "errors": errors,
    "before_apps_were_read": light,
    "apps": [{**a, "app": type(a["app"]).__name__} for a in apps],
    "same_app_twice": plugin.fastapi_apps[0]["app"] is apps[0]["app"],
    "external_views": plugin.external_views,
    "info": plugins_manager.get_plugin_info(["fastapi_apps", "external_views"]),
}))
"""


def load_plugins() -> dict:
    done = subprocess.run([sys.executable, "-c", LOAD_PLUGINS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_airflow_loads_the_plugin_and_the_app_only_when_asked():
    loaded = load_plugins()

    errors = loaded["errors"]
    assert not any("batch_cleanup_ui" in path or "/ui/" in path for path in errors), errors
    # Loading plugins (every Airflow process does) imports neither FastAPI nor the app, and
    # Airflow did not run ui/*.py as top-level modules (plugins/batch_cleanup/ui/.airflowignore).
    modules = ("fastapi", "batch_cleanup.ui.app", "history", "queries", "app")
    assert loaded["before_apps_were_read"] == dict.fromkeys(modules, False)
    app = {"app": "FastAPI", "url_prefix": "/batch-cleanup", "name": "Batch cleanup history"}
    assert loaded["apps"] == [app]
    assert loaded["same_app_twice"] is True
    [view] = loaded["external_views"]
    route = {"href": "batch-cleanup/", "url_route": "batch-cleanup"}
    assert view == {"name": "Batch cleanup", **route, "destination": "nav", "category": "browse"}
    [info] = [p for p in loaded["info"] if p["name"] == "batch_cleanup_ui"]
    assert info["fastapi_apps"][0]["app"] == "fastapi.applications.FastAPI"


def test_the_vendored_chart_js_is_the_pinned_release():
    script = (UI / "vendor_chartjs.sh").read_text()
    pinned = re.search(r"^SHA256=([0-9a-f]{64})$", script, re.M).group(1)
    version = re.search(r"^VERSION=(\S+)$", script, re.M).group(1)
    library = (UI / "static" / "chart.umd.min.js").read_bytes()

    assert hashlib.sha256(library).hexdigest() == pinned
    assert library.startswith(f"/*!\n * Chart.js v{version}\n".encode())
    assert "MIT License" in (UI / "static" / "chart.js-LICENSE.md").read_text()


def test_the_page_loads_nothing_from_the_internet():
    for path in ("templates/history.html", "static/history.js", "static/history.css"):
        text = (UI / path).read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path
        assert "url(http" not in text and "import(" not in text, path
