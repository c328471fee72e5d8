"""The motion-labelled dataset: labels, layout, determinism, the matched design, and that each class's motion
is the one its name says (pans/tilts shift the frame exactly, zooms magnify, objects move their way)."""
import cv2
import numpy as np
import pytest
import torch

from moaw_core.selection.motion_dataset import (MOTION_CLASSES, MotionDataset, MotionDatasetConfig, build_motion_dataset,
                                      group_of)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

SMALL = dict(clips_per_class=2, frames=4, height=32, width=32, speed=2.0, speed_jitter=0.0)


@pytest.fixture(scope="module")
def ds():
    return build_motion_dataset(MotionDatasetConfig(**SMALL))


def test_layout_labels_groups(ds):
    assert ds.videos.shape == (20, 4, 32, 32, 3) and ds.videos.dtype == torch.float32
    assert 0 <= float(ds.videos.min()) and float(ds.videos.max()) <= 1
    assert ds.class_names == MOTION_CLASSES and len(ds.class_names) == 10
    assert ds.groups == ("camera",) * 6 + ("object",) * 4
    assert ds.labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert set(ds.class_counts().values()) == {2}
    cam = ds.select("camera")
    assert cam.class_names == MOTION_CLASSES[:6] and len(cam) == 12 and cam.labels.max() == 5
    obj = ds.select("object")
    assert obj.class_names[0] == "object_left" and obj.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(obj.videos, ds.videos[12:])


def test_deterministic_and_seeded(ds):
    again = build_motion_dataset(MotionDatasetConfig(**SMALL))
    assert torch.equal(again.videos, ds.videos)
    other = build_motion_dataset(MotionDatasetConfig(**{**SMALL, "seed": 1, "classes": ("pan_left", "pan_right")}))
    assert not torch.equal(other.videos, ds.videos[:4])


def test_matched_scenes_differ_only_in_motion(ds):
    # frame 0 is the same scene for every camera class of clip index k; later frames differ
    for k in range(2):
        first = [ds.videos[c * 2 + k, 0] for c in range(6)]
        assert all(torch.equal(f, first[0]) for f in first)
        assert not torch.equal(ds.videos[k, -1], ds.videos[2 + k, -1])
    assert not torch.equal(ds.videos[0, 0], ds.videos[1, 0])  # clip indices differ in scene


@pytest.mark.parametrize("name,shift", [("pan_left", (1, 0)), ("pan_right", (-1, 0)), ("tilt_up", (0, 1)),
                                        ("tilt_down", (0, -1))])
def test_pans_and_tilts_shift_content_exactly(ds, name, shift):
    v = ds.videos[ds.class_names.index(name) * 2].numpy()
    sx, sy = (2 * 3 * s for s in shift)  # content offset after 3 frames at 2 px/frame
    a = v[-1][max(sy, 0):32 + min(sy, 0), max(sx, 0):32 + min(sx, 0)]
    b = v[0][max(-sy, 0):32 + min(-sy, 0), max(-sx, 0):32 + min(-sx, 0)]
    assert np.abs(a - b).max() < 1e-4


def _zoom_error(frame0, frame, scale):
    m = cv2.getRotationMatrix2D((15.5, 15.5), 0.0, scale)
    warped = cv2.warpAffine(frame0, m, (32, 32), flags=cv2.INTER_LINEAR)
    return float(np.abs(warped - frame)[8:24, 8:24].mean())


def test_zooms_magnify_and_shrink(ds):
    z = (1 + 2 * 2.0 / 32) ** 3
    zin, zout = (ds.videos[ds.class_names.index(n) * 2].numpy() for n in ("zoom_in", "zoom_out"))
    assert _zoom_error(zin[0], zin[-1], z) < 0.5 * _zoom_error(zin[0], zin[-1], 1 / z)
    assert _zoom_error(zout[0], zout[-1], 1 / z) < 0.5 * _zoom_error(zout[0], zout[-1], z)


@pytest.mark.parametrize("name,axis,sign", [("object_left", 1, -1), ("object_right", 1, 1), ("object_up", 0, -1),
                                            ("object_down", 0, 1)])
def test_objects_move_their_way(name, axis, sign):
    d = build_motion_dataset(MotionDatasetConfig(**{**SMALL, "classes": (name, "pan_left"), "frames": 6}))
    for v in d.videos[:2].numpy():
        cents = []
        for t in range(len(v) - 1):
            mask = np.abs(v[t + 1] - v[t]).sum(-1) > 1e-3
            cents.append(np.argwhere(mask).mean(0)[axis])
        assert sign * (cents[-1] - cents[0]) > 2.0, cents


def test_real_textures_from_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"t{i}.png"), (rng.random((40, 40, 3)) * 255).astype(np.uint8))
    cfg = MotionDatasetConfig(**{**SMALL, "classes": "object", "texture_dir": str(tmp_path),
                                 "real_texture_prob": 1.0})

    d = build_motion_dataset(cfg)
    plain = build_motion_dataset(MotionDatasetConfig(**{**SMALL, "classes": "object"}))
    assert d.videos.shape == plain.videos.shape and not torch.equal(d.videos, plain.videos)
    with pytest.raises(FileNotFoundError, match="texture_dir"):
        build_motion_dataset(MotionDatasetConfig(**{**SMALL, "texture_dir": str(tmp_path / "none")}))


def test_bad_inputs():
    with pytest.raises(ValueError, match="clips_per_class"):
        MotionDatasetConfig(clips_per_class=1)
    with pytest.raises(ValueError, match="at least 2 distinct"):
        MotionDatasetConfig(classes=("pan_left",))
    with pytest.raises(ValueError, match="class name"):
        MotionDatasetConfig(classes=("pan_left", "spin"))
    with pytest.raises(ValueError, match="group"):
        MotionDatasetConfig(classes="diagonal")
    with pytest.raises(ValueError, match="speed"):
        MotionDatasetConfig(speed=0)
    with pytest.raises(ValueError, match="empty dataset"):
        MotionDataset(torch.zeros(0, 4, 8, 8, 3), torch.zeros(0, dtype=torch.long), ("a", "b"))
    with pytest.raises(ValueError, match="labels"):
        MotionDataset(torch.zeros(2, 4, 8, 8, 3), torch.tensor([0, 2]), ("a", "b"))
    with pytest.raises(ValueError, match="videos"):
        MotionDataset(torch.zeros(2, 8, 8, 3), torch.tensor([0, 1]), ("a", "b"))
    with pytest.raises(TypeError, match="MotionDatasetConfig"):
        build_motion_dataset({"clips_per_class": 2})
    assert group_of("zoom_in") == "camera" and group_of("object_up") == "object"
