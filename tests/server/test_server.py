"""The pack inside a real ComfyUI server: it imports cleanly, every node is listed with its inputs, and
API-format prompts run to completion with their outputs read back from /history."""
import json
from pathlib import Path

import pytest

import hosttools as H

pytestmark = pytest.mark.server
WORKFLOWS = H.ROOT / "workflows"


def _pack_node_ids() -> list[str]:
    pack = H.load_pack()
    return [cls.GET_SCHEMA().node_id if hasattr(cls, "GET_SCHEMA") else cls.define_schema().node_id
            for cls in pack.nodes.all_nodes()]


def test_pack_imported_without_errors(comfy_server):
    log = comfy_server.log()
    assert "custom_nodes/moaw" in log or "custom_nodes" in log, log[-3000:]
    lines = [ln for ln in log.splitlines() if "moaw" in ln.lower()]
    assert not any("IMPORT FAILED" in ln or "Cannot import" in ln for ln in lines), "\n".join(lines)
    # ComfyUI prints the import time of every custom node that loaded.
    assert any("custom_nodes/moaw" in ln and "seconds" in ln and "IMPORT FAILED" not in ln for ln in lines), log[-3000:]


def test_every_pack_node_in_object_info(comfy_server):
    info = comfy_server.get("/object_info")
    ids = _pack_node_ids()
    assert ids, "the pack registers no nodes"
    for node_id in ids:
        assert node_id in info, f"{node_id} missing from /object_info"
        entry = info[node_id]
        assert entry["category"].startswith("Moaw"), entry["category"]
        assert "input" in entry and "required" in entry["input"]
        assert entry["output"] is not None
        for section in ("required", "optional"):
            for name, spec in entry["input"].get(section, {}).items():
                opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                assert opts.get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_prompt_with_pack_node_completes(comfy_server):
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_wan_t2v.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "MoawEmptyConditioning", "inputs": {"width": 4096, "length": 1}},
        "3": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64, "length": 5, "batch_size": 1}},
        "4": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0],
                                                   "latent_image": ["3", 0], "seed": 1, "steps": 2, "cfg": 1.0,
                                                   "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "5": {"class_type": "SaveLatent", "inputs": {"samples": ["4", 0], "filename_prefix": "moaw_test"}},
    }
    entry = comfy_server.run(prompt, timeout=300)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    outputs = entry["outputs"]["5"]["latents"]
    saved = comfy_server.base / "output" / outputs[0].get("subfolder", "") / outputs[0]["filename"]
    assert saved.is_file() and saved.stat().st_size > 0


def test_bad_prompt_is_rejected_with_a_clear_error(comfy_server):
    res = comfy_server.post_prompt({"1": {"class_type": "MoawEmptyConditioning", "inputs": {"width": 0, "length": 1}}})
    assert res.get("http_status") == 400, res


@pytest.mark.parametrize("path", sorted((WORKFLOWS / "api").glob("*.api.json")), ids=lambda p: p.name)
def test_api_workflows_run(comfy_server, path: Path):
    """Tiny workflows run to completion; a real-weights one is refused only for its absent model / input files."""
    prompt = json.loads(path.read_text())
    res = comfy_server.post_prompt(prompt)
    if "prompt_id" not in res:
        errors = [(nid, e) for nid, ne in res.get("node_errors", {}).items() for e in ne["errors"]]
        assert errors, f"{path.name} refused: {json.dumps(res)[:3000]}"
        for nid, e in errors:
            name = e.get("extra_info", {}).get("input_name", "")
            missing_file = e["type"] == "value_not_in_list" or "Invalid" in e.get("details", "")
            assert missing_file and (name.endswith("_name") or name in ("file", "image")), \
                f"{path.name}: node {nid} {prompt[nid]['class_type']}: {e}"
        return
    entry = comfy_server.wait(res["prompt_id"], timeout=600)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]


def _ui_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("workflow_ui", H.ROOT / "scripts" / "workflow_ui.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_ui_workflow_has_an_api_twin_that_matches(comfy_server):
    ui_files = sorted(WORKFLOWS.glob("*.json"))  # what the Templates browser lists
    assert ui_files, "no UI-format workflows in workflows/"
    assert not [p.name for p in ui_files if p.name.endswith(".api.json")], "API twins belong in workflows/api/"
    info = comfy_server.get("/object_info")
    conv = _ui_module()
    for ui_path in ui_files:
        twin = WORKFLOWS / "api" / (ui_path.name[:-len(".json")] + ".api.json")
        assert twin.is_file(), f"{ui_path.name} has no API-format twin {twin.name}"
        ui = json.loads(ui_path.read_text())
        assert {"nodes", "links", "version"} <= set(ui)
        api = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in json.loads(twin.read_text()).items()}
        assert conv.ui_to_api(ui, info) == api, f"{ui_path.name} and {twin.name} describe different graphs"


def test_every_pack_output_has_a_tooltip_and_seeds_declare_their_control(comfy_server):
    info = comfy_server.get("/object_info")
    for node_id in _pack_node_ids():
        entry = info[node_id]
        tips = entry.get("output_tooltips") or []
        assert len(tips) == len(entry["output"]) and all(tips), f"{node_id}: outputs without tooltips {tips}"
        for section in ("required", "optional"):
            for name, spec in entry["input"].get(section, {}).items():
                if spec[0] == "INT" and name in ("seed", "noise_seed"):
                    # The frontend adds a 'control after generate' widget to these unless told otherwise; saying
                    # so keeps UI workflows' widget values in step with what the node declares.
                    assert spec[1].get("control_after_generate") is True, f"{node_id}.{name}"
