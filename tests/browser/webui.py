"""Drive ComfyUI's own web UI (comfyui-frontend-package) in headless Chromium with selenium.

The system browser is used (Debian's `chromium` + `chromium-driver`, installed by scripts/setup.sh); selenium
never downloads a driver (an explicit Service path). Every browser starts with a fresh profile.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

CHROMIUM = Path(os.environ.get("MOAW_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("MOAW_CHROMEDRIVER", "/usr/bin/chromedriver"))
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1600,1000")

# Wraps the frontend's queuePrompt so a test can read what the server answered to "Run" (validation errors
# come back as an exception carrying node_errors).
_HOOK_QUEUE = """
const api = window.comfyAPI.api.api;
if (!api.__moawHooked) {
  const orig = api.queuePrompt.bind(api);
  window.__moawQueue = [];
  api.queuePrompt = async (...args) => {
    try { const r = await orig(...args); window.__moawQueue.push({ok: true, res: r}); return r; }
    catch (e) { window.__moawQueue.push({ok: false, error: String(e && e.message || e),
                                         response: e && e.response || null}); throw e; }
  };
  api.__moawHooked = true;
}
"""

# Every node's on-screen box as the frontend sizes it (title bar included), plus groups.
_GRAPH_STATE = """
const g = window.app.graph;
return {
  nodes: g._nodes.map(n => ({id: n.id, type: n.type, title: n.title, box: Array.from(n.getBounding()),
                             registered: !!LiteGraph.registered_node_types[n.type],
                             has_errors: !!n.has_errors,
                             widgets: (n.widgets || []).map(w => [w.name, w.value]),
                             images: (n.imgs || []).length})),
  groups: (g._groups || []).map(gr => ({title: gr.title, box: Array.from(gr._bounding || gr.bounding)})),
};
"""


def missing_reason() -> str | None:
    if not CHROMIUM.is_file() or not CHROMEDRIVER.is_file():
        return f"{CHROMIUM} / {CHROMEDRIVER} not installed (apt-get install chromium chromium-driver; scripts/setup.sh)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (requirements-dev.txt)"
    return None


@contextlib.contextmanager
def chromium():
    """A headless Chromium session with a throw-away profile; always quit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="moaw_chromium_")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(fn, timeout: float, what: str, poll: float = 0.25):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            value = fn()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - the element is not there yet
            last = e
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last})" if last else ""))


def open_app(driver, url: str) -> None:
    """Load the web UI and wait until the LiteGraph app and the node definitions are ready."""
    driver.get(url)
    wait_for(lambda: driver.execute_script(
        "return !!(window.app && window.app.graph && window.LiteGraph && window.comfyAPI && window.comfyAPI.api"
        " && Object.keys(LiteGraph.registered_node_types).length > 50)"), 120, "the ComfyUI web app")
    driver.execute_script(_HOOK_QUEUE)


def close_dialogs(driver) -> None:
    from selenium.webdriver.common.keys import Keys

    for _ in range(3):
        if not driver.find_elements("css selector", "[role=dialog]"):
            return
        driver.find_element("tag name", "body").send_keys(Keys.ESCAPE)
        time.sleep(0.3)


def open_template(driver, module: str, name: str) -> None:
    """Templates (side bar) -> the pack's category -> the template's card, as a user clicks them. (On a first
    visit the frontend opens the Templates browser by itself; then that one is used.)"""
    from selenium.webdriver.common.by import By

    driver.execute_script("window.app.graph.clear()")
    cat_xpath = f"//div[@role='dialog']//div[@role='button']/span[normalize-space(.)='{module}']"

    def category():
        found = driver.find_elements(By.XPATH, cat_xpath)
        if found:
            return found[0]
        try:
            if driver.find_elements(By.CSS_SELECTOR, "[role=dialog]"):
                close_dialogs(driver)  # e.g. the error report of a previous run
            driver.find_element(By.XPATH, "//span[normalize-space(.)='Templates']").click()
        except Exception:  # noqa: BLE001 - an overlay is still animating; try again
            pass
        return None

    cat = wait_for(category, 60, f"the Templates browser with category {module}", poll=1.0)
    driver.execute_script("arguments[0].scrollIntoView()", cat)
    wait_for(lambda: cat.click() or True, 10, f"a click on {module}")
    card = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, f"[data-testid='template-workflow-{name}']"),
                    30, f"template card {name}")
    wait_for(lambda: card.click() or True, 10, f"a click on {name}")
    wait_for(lambda: driver.execute_script("return window.app.graph._nodes.length") > 0, 30, f"{name} to load")
    time.sleep(1.0)  # let the frontend finish sizing nodes


def graph_prompt(driver) -> dict:
    """The API-format prompt the frontend would queue for the loaded graph (app.graphToPrompt)."""
    out = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.app.graphToPrompt().then(p => done(p.output)).catch(e => done({__error: String(e)}));")
    if "__error" in out:
        raise RuntimeError(out["__error"])
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in out.items()}


def dialog_texts(driver) -> list[str]:
    return [d.text for d in driver.find_elements("css selector", "[role=dialog]") if d.text.strip()]


def graph_state(driver) -> dict:
    return driver.execute_script(_GRAPH_STATE)


def fit_view(driver) -> None:
    """Zoom to fit the whole graph (the frontend's own "Zoom to fit"), minimap hidden, for screenshots."""
    close_dialogs(driver)
    driver.execute_script(
        "const s = window.app.extensionManager.setting; if (s && s.get('Comfy.Minimap.Visible')) "
        "  s.set('Comfy.Minimap.Visible', false);"
        "if (s && s.get('LiteGraph.Canvas.MinFontSizeForLOD') !== 0) s.set('LiteGraph.Canvas.MinFontSizeForLOD', 0);"
        "window.app.canvas.deselectAll && window.app.canvas.deselectAll();"
        "return window.app.extensionManager.command.execute('Comfy.Canvas.FitView');")
    time.sleep(0.8)


def click_run(driver) -> None:
    from selenium.webdriver.common.by import By

    close_dialogs(driver)
    n = driver.execute_script("return window.__moawQueue.length")
    button = driver.find_element(By.XPATH, "//button[normalize-space(.)='Run'] | //button[.//span[normalize-space(.)='Run']]")
    button.click()
    wait_for(lambda: driver.execute_script("return window.__moawQueue.length") > n, 60, "the Run request")


def last_queue_result(driver) -> dict:
    return driver.execute_script("return window.__moawQueue[window.__moawQueue.length - 1]")


def overlaps(boxes: list[tuple[str, list[float]]], margin: float = 0.0) -> list[tuple[str, str]]:
    """Pairs of (name, [x, y, w, h]) boxes that intersect (touching edges do not count)."""
    out = []
    for i, (a, ra) in enumerate(boxes):
        for b, rb in boxes[i + 1:]:
            if (ra[0] < rb[0] + rb[2] + margin and rb[0] < ra[0] + ra[2] + margin
                    and ra[1] < rb[1] + rb[3] + margin and rb[1] < ra[1] + ra[3] + margin):
                out.append((a, b))
    return out


def inside(inner: list[float], outer: list[float]) -> bool:
    return (inner[0] >= outer[0] and inner[1] >= outer[1] and inner[0] + inner[2] <= outer[0] + outer[2]
            and inner[1] + inner[3] <= outer[1] + outer[3])
