"""Every shipped workflow in ComfyUI's real web UI (headless Chromium): listed in the Templates browser with a
thumbnail, opened from the Templates menu with no missing node and no validation error, laid out without
overlapping nodes (measured at the frontend's own node sizes), grouped and explained by a Note, and (tiny
ones) run with the Run button to completion with their outputs shown. Screenshots: out/browser/.

Workflows that reference model files the test host cannot have (real weights) get empty placeholder files of
those names, so the server's validation runs on them exactly as on a user's machine; their run must be
accepted (no validation error) and then fails at the loader, which is expected.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import hosttools as H
import webui

pytestmark = pytest.mark.server
WORKFLOWS = H.ROOT / "workflows"
MODULE = "moaw"  # the pack's folder name under custom_nodes (hosttools.running_server links it so)
# (node class, input) -> models sub-folder (or "input") where a file named in a workflow is looked up.
_FILE_INPUTS = {
    ("UNETLoader", "unet_name"): "diffusion_models", ("CLIPLoader", "clip_name"): "text_encoders",
    ("VAELoader", "vae_name"): "vae", ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("LoraLoaderModelOnly", "lora_name"): "loras", ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("LoadMoawTracker", "tracker_name"): "moaw_trackers", ("LoadVideo", "file"): "input",
    ("LoadImage", "image"): "input",
}


def _ui_workflows() -> list[Path]:
    """The files the Templates browser lists (ComfyUI 0.3.75 globs `<pack>/workflows/*.json`)."""
    return sorted(WORKFLOWS.glob("*.json"))


def _plant_placeholders(server, workflow: dict, info: dict) -> list[str]:
    """Empty files for every model / input file a workflow names that the host does not list. Returns them."""
    planted = []
    for node in workflow["nodes"]:
        if node["type"] not in info:
            continue
        values = iter(node.get("widgets_values") or [])
        order = info[node["type"]].get("input_order", {})
        for section in ("required", "optional"):
            for name in order.get(section, []):
                spec = info[node["type"]]["input"][section][name]
                if not isinstance(spec[0], list) and spec[0] not in ("COMBO", "INT", "FLOAT", "STRING", "BOOLEAN"):
                    continue
                linked = any(i.get("name") == name and i.get("link") is not None for i in node.get("inputs", []))
                if linked:
                    continue
                value = next(values, None)
                if spec[0] == "INT" and (spec[1] if len(spec) > 1 else {}).get(
                        "control_after_generate", name in ("seed", "noise_seed")):
                    next(values, None)
                options = spec[0] if isinstance(spec[0], list) else (spec[1] or {}).get("options", [])
                folder = _FILE_INPUTS.get((node["type"], name))
                if folder is None or not isinstance(value, str):
                    continue
                path = server.base / (folder if folder == "input" else f"models/{folder}") / value
                placeholder = path.is_file() and path.stat().st_size == 0  # planted for an earlier workflow
                if value in options and not placeholder:
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"")
                planted.append(str(path.relative_to(server.base)))
    return planted


def test_templates_listed_with_thumbnails_and_no_api_files(ui_server):
    listed = ui_server.get("/workflow_templates").get(MODULE, [])
    ui = [p.stem for p in _ui_workflows()]
    assert ui, "no workflows in workflows/"
    assert sorted(listed) == sorted(ui), f"Templates lists {sorted(listed)}, workflows/ has {sorted(ui)}"
    assert not [n for n in listed if n.endswith(".api")], "API-format prompts must not be offered as templates"
    for p in _ui_workflows():
        assert {"nodes", "links"} <= set(json.loads(p.read_text())), f"{p.name} is not a UI-format workflow"
        assert p.with_suffix(".jpg").is_file(), f"{p.name} has no thumbnail {p.stem}.jpg (the frontend asks for .jpg)"
    strays = [str(p.relative_to(WORKFLOWS)) for p in WORKFLOWS.rglob("*.json")
              if p.parent != WORKFLOWS and p.parent != WORKFLOWS / "api"]
    assert not strays, f"workflows the Templates browser never lists (sub-folders are not scanned): {strays}"


def _check_layout(name: str, state: dict) -> None:
    nodes = [n for n in state["nodes"]]
    boxes = [(f"{n['type']}#{n['id']}", n["box"]) for n in nodes]
    clash = webui.overlaps(boxes)
    assert not clash, f"{name}: nodes overlap at the frontend's sizes: {clash}"
    assert any(n["type"] in ("Note", "MarkdownNote") for n in nodes), f"{name}: no Note node saying what it does"
    assert state["groups"], f"{name}: no groups"
    group_boxes = [(g["title"], g["box"]) for g in state["groups"]]
    assert not webui.overlaps(group_boxes), f"{name}: groups overlap: {webui.overlaps(group_boxes)}"
    loose = [b for b, box in boxes if not any(webui.inside(box, g) for _, g in group_boxes)
             and not b.startswith(("Note#", "MarkdownNote#"))]
    assert not loose, f"{name}: nodes outside every group: {loose}"


@pytest.mark.parametrize("path", _ui_workflows(), ids=lambda p: p.stem)
def test_workflow_opens_validates_and_runs_in_the_browser(ui_server, browser, screenshot_dir, path: Path):
    info = ui_server.get("/object_info")
    workflow = json.loads(path.read_text())
    planted = _plant_placeholders(ui_server, workflow, info)
    webui.open_template(browser, MODULE, path.stem)
    state = webui.graph_state(browser)
    missing = sorted({n["type"] for n in state["nodes"] if not n["registered"]})
    assert not missing, f"{path.name}: missing node types {missing}; dialogs: {webui.dialog_texts(browser)}"
    assert len(state["nodes"]) == len(workflow["nodes"]), f"{path.name}: {len(state['nodes'])} nodes loaded"
    webui.fit_view(browser)
    browser.save_screenshot(str(screenshot_dir / f"{path.stem}.png"))
    twin = WORKFLOWS / "api" / f"{path.stem}.api.json"
    if twin.is_file():  # what the frontend queues must be the API twin, widget for widget (no shifted values)
        queued = webui.graph_prompt(browser)
        expected = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in json.loads(twin.read_text()).items()}
        diff = {k: (queued.get(k), v) for k, v in expected.items() if queued.get(k) != v}
        assert not diff and set(queued) == set(expected), f"{path.name}: the web UI queues other values: {diff}"

    before = set(ui_server.get("/history"))
    webui.click_run(browser)
    result = webui.last_queue_result(browser)
    assert result["ok"], f"{path.name}: Run was refused: {json.dumps(result)[:3000]}"
    assert not result["res"].get("node_errors"), f"{path.name}: validation errors {result['res']['node_errors']}"
    prompt_id = result["res"]["prompt_id"]
    entry = ui_server.wait(prompt_id, timeout=240)
    assert prompt_id not in before
    if planted:  # real-weights workflow on empty placeholders: accepted, then the loader fails
        assert entry["status"]["status_str"] == "error", f"{path.name}: ran on placeholders {planted}?"
        _check_layout(path.name, state)
        return
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    out_nodes = [n for n in workflow["nodes"] if info.get(n["type"], {}).get("output_node") and n.get("mode", 0) == 0]
    assert out_nodes, f"{path.name}: no output node"
    for node in out_nodes:
        produced = entry["outputs"].get(str(node["id"]), {})
        files = [f for v in produced.values() if isinstance(v, list) for f in v if isinstance(f, dict) and "filename" in f]
        assert files or produced, f"{path.name}: {node['type']}#{node['id']} produced nothing"
        for f in files:
            if f.get("type") == "output":
                assert (ui_server.base / "output" / f.get("subfolder", "") / f["filename"]).stat().st_size > 0
    image_nodes = [n for n in out_nodes if any(isinstance(v, list) and v and "filename" in v[0]
                                               for v in entry["outputs"].get(str(n["id"]), {}).values())]
    webui.wait_for(lambda: all(s["images"] > 0 for s in webui.graph_state(browser)["nodes"]
                               if s["id"] in {n["id"] for n in image_nodes}), 30, "the outputs to appear on the nodes")
    time.sleep(0.5)
    webui.fit_view(browser)
    browser.save_screenshot(str(screenshot_dir / f"{path.stem}.run.png"))
    _check_layout(path.name, state)
