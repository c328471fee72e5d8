"""ScoreMotionLayers in-process in the real host: tiny random Wan (training-free) and a tiny tracker file
(tracker mode) on a tiny dataset; the scores are the model's layers, the heat map an IMAGE, bad wiring fails."""
import importlib

import pytest
import torch

import hosttools as H

pytestmark = [pytest.mark.host, pytest.mark.usefixtures("one_torch_thread")]
SIZE = dict(classes="object", clips_per_class=2, frames=8, width=32, height=32, speed=2.0, layers_per_pass=0,
            rank_by="probe", seed=0)


@pytest.fixture(scope="module")
def mods():
    H.load_pack()
    score = importlib.import_module(f"{H.PACK_MODULE}.nodes.score")
    demo_vae = importlib.import_module(f"{H.PACK_MODULE}.nodes.demo_vae")
    tracker = importlib.import_module(f"{H.PACK_MODULE}.nodes.tracker")
    from moaw_core.tracking.codecs import PatchPCACodec

    codec = PatchPCACodec.fit(torch.rand(1, 2, 16, 16, 3, generator=torch.Generator().manual_seed(0)), 16, 4)
    return score, tracker, demo_vae.CodecVAE(codec)


def _check(out, layers):
    from moaw_core.selection.layer_selection import LayerScores

    scores, image = out.result if hasattr(out, "result") else out
    assert isinstance(scores, LayerScores)
    assert scores.layers == tuple(layers)
    assert {r["layer"] for r in scores.rows} == set(layers)
    assert scores.class_names == ("object_left", "object_right", "object_up", "object_down")
    assert set(scores.top_k(1)) <= set(layers)
    assert image.ndim == 4 and image.shape[0] == 1 and image.shape[-1] == 3 and image.dtype == torch.float32
    return scores


def test_training_free_on_tiny_wan(mods):
    score, _, vae = mods
    patcher = H.load_native(H.tiny_wan_state_dict(num_layers=2))
    out = score.ScoreMotionLayers.execute(vae=vae, model=patcher, steps=2, **SIZE)
    scores = _check(out, ["block.0", "block.1"])
    assert scores.steps == (0, 1) and scores.sigmas[0] > scores.sigmas[1] > 0
    assert scores.meta["clips"] == 8 and scores.meta["latent_shape"] == [1, 16, 8, 8, 8]
    again = score.ScoreMotionLayers.execute(vae=vae, model=patcher, steps=2, **SIZE)
    assert (again.result if hasattr(again, "result") else again)[0].rows == scores.rows


def test_tracker_mode(mods, tmp_path):
    from moaw_core.engine.checkpoint import save_model
    from moaw_core.tracking.codecs import TrackEncoding
    from moaw_core.tracking.tracker import MoawTracker, build_wan

    score, tracker_nodes, vae = mods
    gen = build_wan(dim=128, num_layers=2, ffn_dim=256, seed=0)
    tr = MoawTracker.from_generator(gen, 32)
    path = save_model(tmp_path / "t.safetensors", tr.backbone, "tracker", "moaw.patch_pca.v1",
                      TrackEncoding(24.0, "moaw.patch_pca.v1", 16), video_channels=16)
    handle = tracker_nodes.load_tracker(str(path), "t")
    out = score.ScoreMotionLayers.execute(vae=vae, tracker=handle, steps=1, **SIZE)
    scores = _check(out, ["block.0", "block.1"])
    assert scores.steps == (0,) and scores.sigmas == (1.0,)


def test_bad_wiring(mods):
    score, _, vae = mods
    with pytest.raises(ValueError, match="exactly one of tracker or model"):
        score.ScoreMotionLayers.execute(vae=vae, steps=1, **SIZE)


def test_schema_has_tooltips(mods):
    score, _, _ = mods
    schema = score.ScoreMotionLayers.define_schema()
    assert schema.category == "Moaw"
    assert all(inp.tooltip for inp in schema.inputs)
    assert [o.io_type for o in schema.outputs] == ["MOAW_LAYER_SCORES", "IMAGE"]
