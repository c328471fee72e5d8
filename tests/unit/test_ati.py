"""moaw_core.tracking.ati: source tracks -> WanTrackToVideo's tracks JSON (exactness on synthetic tracks,
crop, dropped tracks, bad input). The same check through ComfyUI's own parser: tests/comfy/test_ati_comfy.py."""
import json

import numpy as np
import pytest

from moaw_core.data.sources import synthetic_source
from moaw_core.tracking.ati import (ATI_SAMPLES, ati_sample_index, centre_crop_map, to_ati_tracks,
                                    track_video, video_to_ati_json)


def _linear(n=3, T=9):
    t = np.arange(T)
    pts = np.stack([np.stack([10 + 0.5 * t + k, 60 - 0.25 * t + 3 * k], -1) for k in range(n)])  # [N, T, 2]
    return pts, np.ones((n, T), bool)


@pytest.mark.parametrize("length", [2, 5, 9, 17, 49, 81, 117, 120])
def test_each_output_frame_reads_the_source_position(length):
    pts, vis = _linear(T=length)
    tracks = to_ati_tracks(pts, vis, (96, 80), (96, 80), length)
    assert len(tracks) == 3 and all(len(tr) == ATI_SAMPLES for tr in tracks)
    j = ati_sample_index(length)
    for n, tr in enumerate(tracks):
        got = np.array([[tr[i]["x"], tr[i]["y"]] for i in j])
        np.testing.assert_allclose(got, pts[n] + 0.5, atol=1e-4)  # frame for frame, pixel centres +0.5


def test_source_is_stretched_over_the_output_in_time():
    pts, vis = _linear(T=5)
    tracks = to_ati_tracks(pts, vis, (96, 80), (96, 80), 9)  # 5 source frames over 9 output frames
    j = ati_sample_index(9)
    xs = np.array([tracks[0][i]["x"] for i in j])
    np.testing.assert_allclose(xs, 10.5 + 0.5 * np.arange(9) * 4 / 8, atol=1e-4)


def test_centre_crop_and_scale_match_the_start_image():
    assert centre_crop_map((128, 64), (64, 64)) == (32.0, 0.0, 1.0, 1.0)
    assert centre_crop_map((64, 64), (128, 64)) == (0.0, 16.0, 2.0, 2.0)
    pts = np.array([[[40.0, 10.0], [41.0, 10.0]]])
    tr = to_ati_tracks(pts, np.ones((1, 2), bool), (128, 64), (64, 64), 2)
    assert (tr[0][0]["x"], tr[0][0]["y"]) == (8.5, 10.5)


def test_lost_and_cropped_tracks_are_dropped():
    pts, vis = _linear(n=3, T=5)
    vis[1, 3] = False
    pts[2, :, 0] = -5.0  # left of the frame
    tracks = to_ati_tracks(pts, vis, (96, 80), (96, 80), 5)
    assert len(tracks) == 1 and tracks[0][0]["x"] == pytest.approx(10.5)


def test_bad_input_is_named():
    pts, vis = _linear()
    with pytest.raises(ValueError, match="length"):
        to_ati_tracks(pts, vis, (96, 80), (96, 80), 121)
    with pytest.raises(ValueError, match="length"):
        ati_sample_index(1)
    with pytest.raises(ValueError, match="points"):
        to_ati_tracks(pts[..., :1], vis, (96, 80), (96, 80), 9)
    with pytest.raises(ValueError, match="visible"):
        to_ati_tracks(pts, vis[:, :2], (96, 80), (96, 80), 9)
    bad = pts.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        to_ati_tracks(bad, vis, (96, 80), (96, 80), 9)
    with pytest.raises(ValueError, match="sizes"):
        to_ati_tracks(pts, vis, (0, 48), (64, 48), 9)
    with pytest.raises(ValueError, match="method"):
        track_video(np.zeros((4, 16, 16, 3), np.float32), 2, "farneback")
    with pytest.raises(ValueError, match="grid"):
        track_video(np.zeros((4, 16, 16, 3), np.float32), 0)
    with pytest.raises(ValueError, match="video"):
        track_video(np.zeros((1, 16, 16, 3), np.float32), 2)


@pytest.mark.parametrize("method", ["lucas_kanade", "dis"])
def test_tracked_synthetic_pan_moves_the_tracks(method):
    clip = synthetic_source(3, frames=8, height=64, width=64, camera="pan_right", objects="none", speed=2.0)
    text, count = video_to_ati_json(clip.video, (128, 128), 8, grid=4, method=method)
    tracks = json.loads(text)
    assert count == len(tracks) >= 4
    j = ati_sample_index(8)
    dx = np.median([(tr[j[-1]]["x"] - tr[0]["x"]) / 2.0 for tr in tracks])  # output px -> source px (x2 scale)
    truth = float(np.median(clip.tracks.xy[-1, ..., 0] - clip.tracks.xy[0, ..., 0]))
    assert abs(dx - truth) < 1.5, (dx, truth)
