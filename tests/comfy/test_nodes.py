"""The Moaw nodes in-process on the real host: tracker file -> LoadMoawTracker -> ExtractMotionFeatures ->
SelectLayers -> InjectMotionSampler / ApplyMotionInjection, on tiny random-init Wan models (CPU)."""
import copy

import pytest
import torch

import hosttools as H

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def generator():
    return H.load_native(H.tiny_wan_state_dict(num_layers=2, seed=3))


def _save_tiny(path, kind, num_layers=2, dim=128):
    from moaw_core.engine.checkpoint import save_model
    from moaw_core.tracking.codecs import PATCH_PCA_ID, TrackEncoding
    from moaw_core.tracking.tracker import MoawTracker, build_wan

    gen = build_wan(dim=dim, num_layers=num_layers, ffn_dim=2 * dim, seed=1)
    if kind == "generator":
        return save_model(path, gen, "generator", PATCH_PCA_ID)
    tracker = MoawTracker.from_generator(gen, 32)
    return save_model(path, tracker.backbone, "tracker", PATCH_PCA_ID, TrackEncoding(24.0, PATCH_PCA_ID, 16),
                      video_channels=16)


@pytest.fixture(scope="module")
def tracker(pack, tmp_path_factory):
    path = _save_tiny(tmp_path_factory.mktemp("trk") / "tiny_tracker.safetensors", "tracker")
    return pack.nodes.tracker.load_tracker(str(path), "tiny_tracker")


def _source(frames=3, seed=0):
    return {"samples": torch.randn(1, 16, frames, 8, 8, generator=torch.Generator().manual_seed(seed))}


def _cond(seed=0):
    return [[torch.randn(1, 3, 4096, generator=torch.Generator().manual_seed(seed)) * 0.1, {}]]


def _sample_kwargs(latent):
    return dict(positive=_cond(1), negative=_cond(2), latent_image=latent, seed=5, steps=3, cfg=2.0,
                sampler_name="euler", scheduler="simple", denoise=1.0)


def _inject_kwargs(**kw):
    base = dict(strength=1.0, start=0.0, end=1.0, mode="add", normalize=False, remove_content=False, branch="cond",
                resample=True)
    base.update(kw)
    return base


def test_tracker_loads_as_native_wan(tracker):
    assert type(tracker.model.model).__name__ == "WAN21"
    assert tracker.track_channels == 32 and tracker.video_channels == 16
    assert tracker.model.model.diffusion_model.patch_embedding.weight.shape[1] == 48


def test_extract_select_inject_with_tracker(pack, tracker, generator):
    N = pack.nodes
    out = N.extract.ExtractMotionFeatures.execute(source=_source(), layers="all", steps=2, seed=0, cfg=1.0,
                                                  tracker=tracker)
    feats, tracks = out.args
    assert feats.layers == ("block.0", "block.1") and feats.steps == (0, 1)
    assert feats.get("block.0", 0).shape == (1, 3, 4, 4, 128)  # [B, T, H/2, W/2, dim]
    assert feats.get("block.0", 0).dtype == torch.float16
    assert tracks["samples"].shape == (1, 32, 3, 8, 8)
    selected = N.select.SelectLayers.execute(features=feats, layers="block.1-1, block.0")
    sub, shown = selected.args
    assert sub.layers == ("block.1", "block.0") or sub.layers == ("block.0", "block.1")
    assert shown == ", ".join(sub.layers) and selected.ui["text"] == [shown]  # the choice, as output and on the node
    sub = N.select.SelectLayers.execute(features=feats, layers="block.1").args[0]
    assert sub.layers == ("block.1",)

    latent = {"samples": torch.zeros(1, 16, 3, 8, 8)}
    comfy_nodes = H.comfy_nodes()

    (plain,) = comfy_nodes.common_ksampler(generator, 5, 3, 2.0, "euler", "simple", _cond(1), _cond(2), latent)
    zero = N.inject.InjectMotionSampler.execute(model=generator, features=sub, **_sample_kwargs(latent),
                                                **_inject_kwargs(strength=0.0)).args[0]
    assert torch.equal(zero["samples"], plain["samples"]), "strength 0 must be bit-identical to plain sampling"
    for window, match in (((0.5, 0.5), "window is empty"), ((0.7, 0.9), "contains none of the 3 steps")):
        with pytest.raises(ValueError, match=match):  # an empty window would silently inject nothing
            N.inject.InjectMotionSampler.execute(model=generator, features=sub, **_sample_kwargs(latent),
                                                 **_inject_kwargs(start=window[0], end=window[1]))
    injected = N.inject.InjectMotionSampler.execute(model=generator, features=sub, **_sample_kwargs(latent),
                                                    **_inject_kwargs(strength=1.0)).args[0]
    assert not torch.allclose(injected["samples"], plain["samples"])


def test_apply_injection_clones_and_leaves_caller_untouched(pack, tracker, generator):
    N = pack.nodes
    feats = N.extract.ExtractMotionFeatures.execute(source=_source(), layers="block.0", steps=1, seed=0, cfg=1.0,
                                                    tracker=tracker).args[0]
    before = copy.deepcopy(generator.model_options)
    patched = N.inject.ApplyMotionInjection.execute(model=generator, features=feats, **_inject_kwargs()).args[0]
    assert patched is not generator
    assert generator.model_options == before
    assert "patches_replace" not in generator.model_options.get("transformer_options", {})
    assert "dit" in patched.model_options["transformer_options"]["patches_replace"]


def test_training_free_extract_from_model(pack, generator):
    feats, x0 = pack.nodes.extract.ExtractMotionFeatures.execute(
        source=_source(), layers="block.0-1", steps=3, seed=1, cfg=1.0, model=generator, positive=_cond(1)).args
    assert feats.layers == ("block.0", "block.1") and len(feats.steps) == 3
    assert feats.extra["mode"] == "training_free"
    assert x0["samples"].shape == (1, 16, 3, 8, 8)


def test_save_load_features_nodes(pack, tracker, tmp_path, monkeypatch):
    import folder_paths

    monkeypatch.setattr(folder_paths, "get_output_directory", lambda: str(tmp_path))
    N = pack.nodes
    feats = N.extract.ExtractMotionFeatures.execute(source=_source(), layers="block.1", steps=1, seed=0, cfg=1.0,
                                                    tracker=tracker, cache_name="cached").args[0]
    assert (tmp_path / "moaw_features" / "cached_00001_.safetensors").is_file()
    N.features_io.SaveMotionFeatures.execute(features=feats, name="again")
    back = N.features_io.LoadMotionFeatures.execute(name="again_00001_.safetensors").args[0]
    assert back.layers == feats.layers and torch.equal(back.get("block.1", 0), feats.get("block.1", 0))


# ---- bad inputs: clear messages -------------------------------------------------------------------------------

def test_extract_needs_exactly_one_source(pack, tracker, generator):
    E = pack.nodes.extract.ExtractMotionFeatures
    with pytest.raises(ValueError, match="exactly one feature source"):
        E.execute(source=_source(), layers="all", steps=1, seed=0, cfg=1.0)
    with pytest.raises(ValueError, match="exactly one feature source"):
        E.execute(source=_source(), layers="all", steps=1, seed=0, cfg=1.0, tracker=tracker, model=generator)
    with pytest.raises(ValueError, match="needs positive conditioning"):
        E.execute(source=_source(), layers="all", steps=1, seed=0, cfg=1.0, model=generator)


def test_extract_rejects_wrong_source_and_layers(pack, tracker):
    E = pack.nodes.extract.ExtractMotionFeatures
    with pytest.raises(ValueError, match="16 channels"):
        E.execute(source={"samples": torch.zeros(1, 4, 3, 8, 8)}, layers="all", steps=1, seed=0, cfg=1.0,
                  tracker=tracker)
    with pytest.raises(ValueError, match="must be a LATENT"):
        E.execute(source=torch.zeros(1, 16, 3, 8, 8), layers="all", steps=1, seed=0, cfg=1.0, tracker=tracker)
    with pytest.raises(ValueError, match="unknown layer 'block.7'"):
        E.execute(source=_source(), layers="block.7", steps=1, seed=0, cfg=1.0, tracker=tracker)


def test_inject_rejects_features_of_another_width(pack, tracker):
    N = pack.nodes
    feats = N.extract.ExtractMotionFeatures.execute(source=_source(), layers="block.0", steps=1, seed=0, cfg=1.0,
                                                    tracker=tracker).args[0]
    wide = H.load_native(H.tiny_wan_state_dict(num_layers=2, dim=256, seed=4))
    with pytest.raises(ValueError, match="width"):
        N.inject.ApplyMotionInjection.execute(model=wide, features=feats, **_inject_kwargs())


def test_select_layers_errors(pack, tracker):
    feats = pack.nodes.extract.ExtractMotionFeatures.execute(source=_source(), layers="block.0", steps=1, seed=0,
                                                             cfg=1.0, tracker=tracker).args[0]
    S = pack.nodes.select.SelectLayers
    with pytest.raises(ValueError, match="unknown layer 'block.1'"):
        S.execute(features=feats, layers="block.1")
    with pytest.raises(ValueError, match="empty"):
        S.execute(features=feats, layers=" ")
    with pytest.raises(ValueError, match="score table"):
        S.execute(features=feats, layers="top-2")


def test_load_tracker_rejects_generators_and_foreign_files(pack, tmp_path):
    from safetensors.torch import save_file

    gen_path = _save_tiny(tmp_path / "gen.safetensors", "generator", num_layers=1)
    with pytest.raises(ValueError, match="not a tracker"):
        pack.nodes.tracker.load_tracker(str(gen_path))
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="Moaw"):
        pack.nodes.tracker.load_tracker(str(foreign))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(gen_path.read_bytes()[:1000])
    with pytest.raises(ValueError):
        pack.nodes.tracker.load_tracker(str(truncated))
