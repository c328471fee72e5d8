"""Convert between ComfyUI's API-format prompts and UI-format (LiteGraph) workflows, using /object_info.

    python scripts/workflow_ui.py workflows/api/x.api.json [...]   # writes workflows/x.json for each

API twins live in workflows/api/ (ComfyUI lists only workflows/*.json as templates, so they are not offered
there); then run scripts/workflow_layout.py on the UI files.

The script starts a ComfyUI server (the pinned host in .cache/ComfyUI, with this pack loaded) to read
/object_info, so the UI JSON lists exactly the widgets the running host shows. `ui_to_api` is the inverse
that the tests use to check that a UI workflow and its API twin describe the same graph.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

_WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _input_specs(info: dict) -> list[tuple[str, list, bool]]:
    """(name, spec, required) in the node's declared order."""
    order = info.get("input_order") or {k: list(v) for k, v in info["input"].items()}
    out = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            out.append((name, info["input"][section][name], section == "required"))
    return out


def _is_widget(spec) -> bool:
    kind = spec[0]
    if isinstance(kind, list):
        return True
    if kind in _WIDGET_TYPES:
        return not (len(spec) > 1 and isinstance(spec[1], dict) and spec[1].get("forceInput"))
    return False


_SEED_NAMES = ("seed", "noise_seed")
# Frontend-only nodes (no backend class, never in a prompt): notes, reroutes.
VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}


def _has_control(name: str, spec) -> bool:
    """Whether the frontend adds a 'control after generate' widget after this input (frontend 1.32: an INT
    gets one when the spec says so, or, when the spec does not say, when it is named seed / noise_seed)."""
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if spec[0] == "INT":
        return bool(opts.get("control_after_generate", name in _SEED_NAMES))
    return bool(opts.get("control_after_generate"))


def _default(spec):
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if "default" in opts:
        return opts["default"]
    options = spec[0] if isinstance(spec[0], list) else opts.get("options") or [None]
    return options[0]


def _layers(prompt: dict) -> dict[str, int]:
    depth: dict[str, int] = {}

    def d(nid: str) -> int:
        if nid not in depth:
            ups = [v[0] for v in prompt[nid]["inputs"].values() if isinstance(v, list) and len(v) == 2]
            depth[nid] = 1 + max((d(str(u)) for u in ups), default=-1)
        return depth[nid]

    for nid in prompt:
        d(nid)
    return depth


def api_to_ui(prompt: dict, object_info: dict) -> dict:
    """An API-format prompt -> a UI-format workflow (nodes laid out left to right by graph depth)."""
    ids = {nid: int(nid) for nid in prompt}
    depth = _layers(prompt)
    rows: dict[int, int] = {}
    links, nodes = [], []
    out_links: dict[tuple[int, int], list[int]] = {}
    for order, nid in enumerate(sorted(prompt, key=lambda n: (depth[n], ids[n]))):
        node = prompt[nid]
        info = object_info[node["class_type"]]
        inputs, widgets = [], []
        for name, spec, _ in _input_specs(info):
            value = node["inputs"].get(name)
            if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int) and str(value[0]) in prompt:
                link_id = len(links) + 1
                src, slot = int(value[0]), int(value[1])
                src_type = object_info[prompt[str(value[0])]["class_type"]]["output"][slot]
                links.append([link_id, src, slot, ids[nid], len(inputs), src_type])
                out_links.setdefault((src, slot), []).append(link_id)
                entry = {"name": name, "type": spec[0] if isinstance(spec[0], str) else "COMBO", "link": link_id}
                if _is_widget(spec):  # a linked widget keeps its slot in widgets_values (the frontend writes one)
                    entry["widget"] = {"name": name}
                    widgets.append(_default(spec))
                    if _has_control(name, spec):
                        widgets.append("fixed")
                inputs.append(entry)
            elif _is_widget(spec):
                widgets.append(value)
                if _has_control(name, spec):
                    widgets.append("fixed")
            elif value is None:
                inputs.append({"name": name, "type": spec[0], "link": None})
        col = depth[nid]
        row = rows.get(col, 0)
        rows[col] = row + 1
        nodes.append({
            "id": ids[nid], "type": node["class_type"], "pos": [40 + 360 * col, 40 + 260 * row], "size": [320, 200],
            "flags": {}, "order": order, "mode": 0, "inputs": inputs,
            "outputs": [{"name": n, "type": t, "slot_index": i, "links": []}
                        for i, (t, n) in enumerate(zip(info["output"], info.get("output_name") or info["output"]))],
            "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets,
        })
        if node.get("_meta", {}).get("title"):
            nodes[-1]["title"] = node["_meta"]["title"]
    for n in nodes:
        for o in n["outputs"]:
            o["links"] = out_links.get((n["id"], o["slot_index"]), [])
    return {"last_node_id": max(ids.values()), "last_link_id": len(links), "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {}, "version": 0.4}


def ui_to_api(ui: dict, object_info: dict) -> dict:
    """A UI-format workflow -> the API-format prompt ComfyUI's frontend would queue (for tests)."""
    link_src = {lk[0]: (str(lk[1]), lk[2]) for lk in ui["links"]}
    prompt = {}
    for n in ui["nodes"]:
        if n["type"] in VIRTUAL_NODES:  # notes and reroutes are never queued
            continue
        info = object_info[n["type"]]
        linked = {i["name"]: i["link"] for i in n.get("inputs", []) if i.get("link") is not None}
        values = list(n.get("widgets_values", []))
        inputs = {}
        for name, spec, _ in _input_specs(info):
            if name in linked:
                inputs[name] = list(link_src[linked[name]])
                if _is_widget(spec):
                    values.pop(0)
                    if _has_control(name, spec):
                        values.pop(0)
            elif _is_widget(spec):
                inputs[name] = values.pop(0)
                if _has_control(name, spec):
                    values.pop(0)
        prompt[str(n["id"])] = {"class_type": n["type"], "inputs": inputs}
    return prompt


def main(paths: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import hosttools

    with hosttools.running_server() as server:
        info = server.get("/object_info")
    for p in paths:
        path = Path(p)
        prompt = json.loads(path.read_text())
        out = (path.parent.parent if path.parent.name == "api" else path.parent) / path.name.replace(".api.json", ".json")
        ui = api_to_ui(prompt, info)
        if out.is_file():  # keep the layout plan and the note of an existing UI file
            ui["extra"] = json.loads(out.read_text()).get("extra", {})
        out.write_text(json.dumps(ui, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
