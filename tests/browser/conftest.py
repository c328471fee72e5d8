"""A real ComfyUI server for the browser tests (its own base folder, so placeholder model files planted for
the real-weights workflows stay out of the other server tests), and one headless Chromium for the session."""
from __future__ import annotations

import os
import shutil

import pytest

import hosttools as H

import webui


def require_browser() -> None:
    """Skip (locally) or fail (CI, MOAW_REQUIRE_HOST=1) when Chromium, chromedriver or selenium is missing."""
    reason = webui.missing_reason()
    if reason:
        if H.REQUIRE_HOST:
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory):
    H.require_host()
    require_browser()
    base = tmp_path_factory.mktemp("comfy_ui_base")
    (base / "input").mkdir(parents=True, exist_ok=True)
    for image in (H.ROOT / "workflows" / "inputs").glob("*.png"):  # the workflows' LoadImage files
        shutil.copy(image, base / "input" / image.name)
    with H.running_server(base) as server:
        yield server


@pytest.fixture(scope="session")
def browser(ui_server):
    with webui.chromium() as driver:
        webui.open_app(driver, ui_server.url)
        yield driver


@pytest.fixture(scope="session")
def screenshot_dir():
    out = H.ROOT / "out" / "browser"
    out.mkdir(parents=True, exist_ok=True)
    print(f"\n[browser] screenshots in {out}", flush=True)
    os.environ.setdefault("MOAW_BROWSER_SHOTS", str(out))
    return out
