"""The same tracker file gives the same features in ComfyUI (native Wan, ExtractMotionFeatures) and in diffusers
(moaw_core.engine.transfer): key conversion, source concatenation, schedule and noise agree across hosts."""
import pytest
import torch

import hosttools as H

pytestmark = pytest.mark.host


def test_tracker_features_match_across_hosts(tmp_path):
    pack = H.load_pack()
    from moaw_core.engine.checkpoint import load_tracker, save_model
    from moaw_core.tracking.codecs import PATCH_PCA_ID, TrackEncoding
    from moaw_core.tracking.tracker import MoawTracker, build_wan
    from moaw_core.engine.transfer import extract_tracker_features

    torch.manual_seed(0)
    tracker = MoawTracker.from_generator(build_wan(num_layers=2, seed=2), 32)
    # from_generator zero-initialises the source channels; give them weight so the source matters here.
    with torch.no_grad():
        tracker.backbone.patch_embedding.weight[:, 32:] += 0.05 * torch.randn_like(tracker.backbone.patch_embedding.weight[:, 32:])
    path = save_model(tmp_path / "t.safetensors", tracker.backbone, "tracker", PATCH_PCA_ID,
                      TrackEncoding(24.0, PATCH_PCA_ID, 16), video_channels=16, schedule={"parameterization": "flow",
                                                                                          "shift": 1.0})
    model_space = torch.randn(1, 16, 3, 8, 8, generator=torch.Generator().manual_seed(5))

    diff_tracker, _, _ = load_tracker(path)
    ref, ref_tracks = extract_tracker_features(diff_tracker.float(), model_space, ["block.0", "block.1"], steps=3,
                                               shift=1.0, seed=11, dtype=torch.float32,
                                               init_noise="gaussian")

    handle = pack.nodes.tracker.load_tracker(str(path))
    vae_space = handle.source_format.process_out(model_space)  # what VAEEncode would hand over
    feats, tracks = pack.nodes.extract.extract({"samples": vae_space}, "all", 3, 11, 1.0, tracker=handle)
    assert feats.layers == ref.layers and feats.steps == ref.steps
    for key in ref.tensors:
        a, b = ref.tensors[key].float(), feats.tensors[key].float()
        assert torch.allclose(a, b, atol=2e-2, rtol=1e-2), f"{key}: max diff {float((a - b).abs().max())}"
    # The node samples the core's own schedule (schedule.flow_sigmas): only kernel rounding differs (was ~0.006
    # mean while ComfyUI picked its sigmas from a 1000-entry table: 0.667 vs 2/3).
    diff = (ref_tracks - tracks["samples"]).abs()
    assert float(diff.mean()) < 1e-5 and float(diff.max()) < 1e-4, (float(diff.mean()), float(diff.max()))
    # A wrong source path (missing, doubled, VAE space instead of model space) moves them by O(1):
    wrong, _ = pack.nodes.extract.extract({"samples": model_space}, "all", 3, 11, 1.0, tracker=handle)
    assert float((wrong.tensors[("block.1", 2)].float() - ref.tensors[("block.1", 2)]).abs().mean()) > 1e-2
