"""The Wan ATI bridge against ComfyUI's own WanTrackToVideo: its JSON parser and resampling read back exactly the
source positions, and a tiny Wan 2.1 image-to-video model samples with the bridged tracks (CPU)."""
import json

import numpy as np
import pytest
import torch

import hosttools as H

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def wan_nodes():
    H.load_pack()
    import comfy_extras.nodes_wan as nw

    return nw


def _source_tracks(T: int, n: int = 4):
    t = np.arange(T)
    return np.stack([np.stack([20 + 0.5 * t + 4 * k, 40 - 0.2 * t + 2 * k], -1) for k in range(n)]), np.ones((n, T), bool)


@pytest.mark.parametrize("length,src,out", [(81, (160, 96), (832, 480)), (17, (64, 64), (128, 64)),
                                            (9, (96, 64), (64, 64)), (49, (96, 80), (96, 80))])
def test_core_parser_reads_back_the_source_positions(wan_nodes, length, src, out):
    from moaw_core.tracking.ati import centre_crop_map, to_ati_tracks

    pts, vis = _source_tracks(length)
    text = json.dumps(to_ati_tracks(pts, vis, src, out, length))
    parsed = wan_nodes.parse_json_tracks(text)
    arr = np.stack([wan_nodes.pad_pts(tr) for tr in parsed], 0)                  # as WanTrackToVideo does
    res = wan_nodes.process_tracks(arr, out, length - 1)                           # [length, N, 4]
    assert res.shape[:2] == (length, len(pts))
    w, h = out
    short = min(w, h)
    xy = res[..., 1:3].numpy() * short / 2 + np.array([w, h]) / 2               # undo its normalisation
    x0, y0, sx, sy = centre_crop_map(src, out)
    expect = np.stack([(pts[..., 0] + 0.5 - x0) * sx, (pts[..., 1] + 0.5 - y0) * sy], -1).transpose(1, 0, 2)
    np.testing.assert_allclose(xy, expect, atol=2e-3)
    assert (res[..., 3] == 1).all()                                                # every sample visible


def _tiny_wan_vae():
    import comfy.ldm.wan.vae as wv
    import comfy.sd

    model = wv.WanVAE(dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                      temperal_downsample=[False, True, True])
    return comfy.sd.VAE(sd=H.random_state_dict(model, seed=3, std=0.02))


def test_tiny_wan_i2v_samples_with_bridged_tracks(wan_nodes):
    comfy_nodes = H.comfy_nodes()

    from moaw_core.data.sources import synthetic_source

    pack = H.load_pack()
    clip = synthetic_source(2, frames=9, height=64, width=64, camera="pan_right", objects="none", speed=2.0)
    bridge = pack.nodes.ati.MoawVideoToWanTracks.execute(video=clip.video, width=64, height=64, length=9, grid=3,
                                                          method="lucas_kanade")
    tracks, count = bridge.args
    assert count == len(json.loads(tracks)) > 0 and bridge.ui["text"] == [f"{count} tracks"]
    model = H.load_native(H.tiny_wan_state_dict(num_layers=1, in_dim=36, i2v=True))
    vae = _tiny_wan_vae()
    cond = [[torch.randn(1, 4, 4096, generator=torch.Generator().manual_seed(0)), {}]]
    pos, neg, latent = wan_nodes.WanTrackToVideo.execute(cond, cond, vae, tracks, 64, 64, 9, 1, 220.0, 2,
                                                         start_image=clip.video[:1]).args
    concat = pos[0][1]["concat_latent_image"]
    mask = pos[0][1]["concat_mask"]
    assert concat.shape == (1, 16, 3, 8, 8) and latent["samples"].shape == (1, 16, 3, 8, 8)
    plain_pos = wan_nodes.WanTrackToVideo.execute(cond, cond, vae, "[]", 64, 64, 9, 1, 220.0, 2,
                                                  start_image=clip.video[:1]).args[0]
    assert not torch.equal(mask, plain_pos[0][1]["concat_mask"]), "the tracks must change the motion mask"
    (out,) = comfy_nodes.common_ksampler(model, 1, 2, 1.0, "euler", "simple", pos, neg, latent)
    assert out["samples"].shape == (1, 16, 3, 8, 8) and torch.isfinite(out["samples"]).all()
