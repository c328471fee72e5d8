"""Lay out UI-format workflows at the web UI's real node sizes: groups in columns, a Note saying what the graph
does, no overlapping nodes, room for output previews.

    python scripts/workflow_layout.py workflows/x.json [...]

Each workflow carries its plan in `extra.moaw_layout`:

    {"note": "what the graph does (markdown)", "note_width": 420,
     "columns": [[{"title": "1. Load", "nodes": [1, 3], "color": "#3f5159"}, ...], ...]}

Columns run left to right; the groups of a column stack top to bottom; a group's nodes stack top to bottom
(a nested list `[[1, 2], [3]]` places sub-columns side by side inside the group). The script starts the
pinned ComfyUI (with this pack) and headless Chromium, loads every workflow into the frontend, reads each
node's minimum size (`node.computeSize()`), and writes positions, sizes, groups and the Note back into the
file. The browser test (tests/browser/test_web_ui.py) checks the result at the same sizes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TITLE = 30           # LiteGraph title bar height (above pos)
GAP = 30             # between nodes
GROUP_PAD = 16       # inside a group
GROUP_TITLE = 40     # group title bar
COL_GAP = 60         # between columns
PREVIEW_H = 300      # room for image / video previews of output nodes
TEXT_H = 90          # room for a node's shown text (moaw_text.js)
NOTE_ID = 900
_IMAGE_INPUT_NODES = {"LoadImage"}  # show the loaded picture under their widgets
_TEXT_NODES = {"SelectLayers", "ExtractMotionFeatures", "SaveMotionFeatures", "MoawVideoToWanTracks"}


def _measure(driver, workflow: dict) -> dict[int, list[float]]:
    """Minimum body size [w, h] of every node as the frontend computes it."""
    script = """
    const done = arguments[arguments.length - 1];
    window.app.loadGraphData(arguments[0], true, false).then(() => {
      const out = {};
      for (const n of window.app.graph._nodes) out[n.id] = Array.from(n.computeSize());
      done(out);
    }).catch(e => done({error: String(e)}));
    """
    out = driver.execute_async_script(script, workflow)
    if "error" in out:
        raise RuntimeError(out["error"])
    return {int(k): v for k, v in out.items()}


def _node_height(node: dict, body: list[float], info: dict) -> float:
    h = body[1]
    spec = info.get(node["type"], {})
    if (spec.get("output_node") and not spec.get("output")) or node["type"] in _IMAGE_INPUT_NODES:
        h += PREVIEW_H
    if node["type"] in _TEXT_NODES:
        h += TEXT_H
    return h


def _stack(nodes: list[dict], x: float, y: float, width: float, sizes, info) -> float:
    """Place nodes top to bottom from (x, y) (y = top of the first title bar). Returns the bottom."""
    for node in nodes:
        h = _node_height(node, sizes[node["id"]], info)
        node["pos"] = [x, y + TITLE]
        node["size"] = [width, h]
        y += TITLE + h + GAP
    return y - GAP


def layout(workflow: dict, sizes: dict[int, list[float]], info: dict) -> dict:
    plan = workflow["extra"]["moaw_layout"]
    by_id = {n["id"]: n for n in workflow["nodes"] if n["type"] != "Note" or n["id"] != NOTE_ID}
    workflow["nodes"] = [n for n in workflow["nodes"] if n["id"] != NOTE_ID]
    placed = {i for col in plan["columns"] for g in col for i in _flat(g["nodes"])}
    missing = set(by_id) - placed
    if missing:
        raise ValueError(f"extra.moaw_layout does not place nodes {sorted(missing)}")
    note_w = plan.get("note_width", 420)
    note_h = max(160, 22 * (len(plan["note"]) // 48 + plan["note"].count("\n") + 2))
    x, groups = 0.0, []
    note = {"id": NOTE_ID, "type": "Note", "pos": [x, TITLE], "size": [note_w, note_h], "flags": {}, "order": 0,
            "mode": 0, "inputs": [], "outputs": [], "properties": {"text": ""}, "widgets_values": [plan["note"]],
            "title": "What this workflow does", "color": "#432", "bgcolor": "#653"}
    x += note_w + COL_GAP
    for column in plan["columns"]:
        y, col_w = 0.0, 0.0
        for g in column:
            subcols = g["nodes"] if g["nodes"] and isinstance(g["nodes"][0], list) else [g["nodes"]]
            gx, bottom = x + GROUP_PAD, y + GROUP_TITLE
            for ids in subcols:
                w = max(320.0, *(sizes[i][0] for i in ids))
                bottom = max(bottom, _stack([by_id[i] for i in ids], gx, y + GROUP_TITLE, w, sizes, info))
                gx += w + GAP
            gw = gx - GAP + GROUP_PAD - x
            gh = bottom + GROUP_PAD - y
            groups.append({"title": g["title"], "bounding": [x, y, gw, gh], "color": g.get("color", "#3f5159"),
                           "font_size": 22, "flags": {}})
            y += gh + GAP
            col_w = max(col_w, gw)
        x += col_w + COL_GAP
    workflow["nodes"].insert(0, note)
    workflow["groups"] = groups
    workflow["last_node_id"] = max(n["id"] for n in workflow["nodes"])
    return workflow


def _flat(nodes):
    for n in nodes:
        if isinstance(n, list):
            yield from n
        else:
            yield n


def main(paths: list[str]) -> int:
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "browser")]
    import hosttools
    import webui

    with hosttools.running_server() as server, webui.chromium() as driver:
        info = server.get("/object_info")
        webui.open_app(driver, server.url)
        for p in paths:
            path = Path(p)
            workflow = json.loads(path.read_text())
            sizes = _measure(driver, {**workflow, "nodes": [n for n in workflow["nodes"] if n["id"] != NOTE_ID]})
            path.write_text(json.dumps(layout(workflow, sizes, info), indent=2) + "\n")
            print(f"laid out {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
