"""One tracker-feature path: the CLI `score` verb's source and the ExtractMotionFeatures node give the same
features for the bundled tracker file, because both take its schedule (steps, shift, start noise) from
`checkpoint.sampling_defaults`. The bundled tracker is a one-step regression model recorded with
`init_noise: zeros`; starting it from Gaussian noise (the old TrackerSource default) changes every feature."""
import argparse

import pytest
import torch

import hosttools as H

pytestmark = pytest.mark.host
TRACKER = H.ROOT / "models" / "trackers" / "moaw_tiny_wan_tracker.safetensors"


def test_cli_score_and_node_give_the_same_tracker_features():
    pack = H.load_pack()
    from moaw_core.cli.score import source_from_args
    from moaw_core.selection.layer_selection import TrackerSource

    args = argparse.Namespace(tracker=str(TRACKER), generator=None, steps=None, shift=None)
    cli = source_from_args(args)
    assert cli.init_noise == "zeros" and cli.steps == 1
    cli.tracker.float()
    cli.dtype = torch.float32
    handle = pack.nodes.tracker.load_tracker(str(TRACKER))
    model_space = torch.randn(1, handle.video_channels, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    layers = ["block.0", "block.1"]
    ref = cli(model_space, layers, 9)

    vae_space = handle.source_format.process_out(model_space)  # what VAEEncode would hand over
    feats, _ = pack.nodes.extract.extract({"samples": vae_space}, ",".join(layers), cli.steps, 9, 1.0,
                                          tracker=handle)
    assert feats.layers == ref.layers and feats.steps == ref.steps
    for key in ref.tensors:
        a, b = ref.tensors[key].float(), feats.tensors[key].float()
        assert torch.allclose(a, b, atol=2e-3, rtol=1e-3), f"{key}: max diff {float((a - b).abs().max())}"

    # Control: the same tracker started from Gaussian noise gives clearly different features.
    gauss = TrackerSource(cli.tracker, cli.steps, cli.shift, torch.float32, init_noise="gaussian")
    other = gauss(model_space, layers, 9)
    for key in ref.tensors:
        gap = float((other.tensors[key].float() - ref.tensors[key].float()).abs().mean())
        assert gap > 50 * 2e-3, (key, gap)


def test_tracker_source_needs_the_start_noise():
    from moaw_core.selection.layer_selection import TrackerSource
    from moaw_core.tracking.tracker import MoawTracker, build_wan

    tracker = MoawTracker.from_generator(build_wan(num_layers=1, seed=0), 4)
    with pytest.raises(TypeError, match="init_noise"):
        TrackerSource(tracker, 1)
    with pytest.raises(ValueError, match="init_noise"):
        TrackerSource(tracker, 1, init_noise="uniform")
