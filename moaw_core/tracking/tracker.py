"""The Moaw tracker: a copy of a video generator whose task is video latents -> dense-track latents.

Owns `MoawTracker`. The per-family backbone facts, `build_wan`, `null_condition` and `backbone_forward` live in
`moaw_core.engine.backbones` (re-exported here).

Conditioning (Marigold-style): the backbone input is cat([noisy track latents, source video latents])
on channels. `from_generator` copies the generator, widens the input projection (generator weights
for the first `in_channels` inputs, zeros for the rest) and replaces the output projection by one for
the track-latent channel count (initialised by tiling the generator's, so each track image's latents
start as the generator's velocity head). Every block stays structurally identical to the generator.
The condition (text / image embeddings) is a null condition: zeros (see `null_condition`).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from moaw_core.engine.backbones import (FAMILIES, Family, backbone_forward, build_wan, family_of, single_token_cross_attention,  # noqa: F401
                                        null_condition, tile_out, widen_in)
from moaw_core.engine.schedule import flow_sample, flow_sigmas, initial_noise
from moaw_core.tracking.tracks import DenseTracks, flip_tracks


def _get(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def _set(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def _average(a: DenseTracks, b: DenseTracks) -> DenseTracks:
    """Mean of two estimates of the same tracks (visible where either is)."""
    depth = None if a.depth is None or b.depth is None else (a.depth + b.depth) / 2
    return DenseTracks((a.xy + b.xy) / 2, a.visible | b.visible, depth)


def _check_video(video) -> None:
    if not isinstance(video, torch.Tensor) or video.ndim != 4 or video.shape[-1] != 3:
        got = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"video: expected [T,H,W,3] in [0,1], got {got}")


class MoawTracker(nn.Module):
    """Backbone + the channel split of its input: [0, track_channels) noisy track latents,
    [track_channels, track_channels + video_channels) source video latents."""

    def __init__(self, backbone: nn.Module, track_channels: int, video_channels: int) -> None:
        super().__init__()
        fam = family_of(backbone)
        cfg = backbone.config
        if cfg[fam.in_key] != track_channels + video_channels or cfg[fam.out_key] != track_channels:
            raise ValueError(f"backbone: expected {fam.in_key}={track_channels + video_channels} and "
                             f"{fam.out_key}={track_channels}, got {cfg[fam.in_key]} and {cfg[fam.out_key]}")
        self.backbone, self.family = single_token_cross_attention(backbone), fam  # exact, faster on the null text
        self.track_channels, self.video_channels = track_channels, video_channels

    @classmethod
    def from_generator(cls, generator: nn.Module, track_channels: int, proj_init: str = "video") -> "MoawTracker":
        """Copy `generator` (not modified) and adapt its input/output projections (module docstring)."""
        fam = family_of(generator)
        gen_in, gen_out = generator.config[fam.in_key], generator.config[fam.out_key]
        model = copy.deepcopy(generator)
        # The generator's input projection goes to the VIDEO channels, the track channels start at zero: the
        # blocks first see the source video exactly as the generator sees a video latent, so the tracker starts
        # from the generator's own features on the source (what Moaw injects) and learns to read tracks out.
        # proj_init="track" puts them on the first track channels instead (how the first shipped tracker was made).
        if proj_init not in ("video", "track"):
            raise ValueError(f"proj_init: expected 'video' or 'track', got {proj_init!r}")
        offset = track_channels if proj_init == "video" else 0
        layout = None
        if fam.name == "wan":
            from moaw_core.engine.i2v import layout_of, tracker_embedding
            layout = layout_of(generator)
        if layout is not None:  # an image-to-video generator: the source video replaces its condition latents
            gen_in = layout.latent_channels
            _set(model, fam.in_proj, tracker_embedding(_get(model, fam.in_proj), layout, track_channels, proj_init))
        else:
            _set(model, fam.in_proj, widen_in(_get(model, fam.in_proj), track_channels + gen_in, offset=offset))
        _set(model, fam.out_proj, tile_out(_get(model, fam.out_proj), gen_out, track_channels, fam.out_layout))
        model.register_to_config(**{fam.in_key: track_channels + gen_in, fam.out_key: track_channels})
        return cls(model, track_channels, gen_in)

    def forward(self, noisy_tracks: torch.Tensor, video_latents: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """noisy_tracks [B,Ct,T,H,W], video_latents [B,Cv,T,H,W], timestep [B] in [0,1000] -> v [B,Ct,T,H,W]."""
        return backbone_forward(self.backbone, torch.cat([noisy_tracks, video_latents], 1), timestep)

    def check_video_latents(self, video_latents) -> None:
        if not isinstance(video_latents, torch.Tensor) or video_latents.ndim != 5 \
                or video_latents.shape[1] != self.video_channels:
            got = tuple(video_latents.shape) if isinstance(video_latents, torch.Tensor) else type(video_latents).__name__
            raise ValueError(f"video_latents: expected [B,{self.video_channels},T,H,W], got {got}")

    @torch.no_grad()
    def predict(self, video_latents: torch.Tensor, steps: int = 1, shift: float = 1.0, seed: int = 0,
                init_noise: str = "gaussian") -> torch.Tensor:
        """Sample track latents with the flow-Euler sampler (`schedule.flow_sample` on `flow_sigmas(steps, shift)`).

        Args:
            video_latents: [B, video_channels, T, H, W] (codec latents of the source video).
            steps: Euler steps (1 for a one-step regression model). shift: time shift of the schedule.
            seed: noise seed (the result is deterministic for a seed).
            init_noise: "gaussian", or "zeros" for one-step regression models (checkpoint moaw.schedule).
        Returns:
            track latents [B, track_channels, T, H, W].
        """
        self.check_video_latents(video_latents)
        g = torch.Generator().manual_seed(seed)
        shape = (video_latents.shape[0], self.track_channels, *video_latents.shape[2:])
        p = next(self.parameters())
        noise = initial_noise(shape, g, init_noise).to(p.device, p.dtype)
        cond = video_latents.to(p.device, p.dtype)
        x = flow_sample(lambda x, t, i, sigma: self(x, cond, t.expand(x.shape[0])), noise, flow_sigmas(steps, shift))
        return x.float()

    @torch.no_grad()
    def predict_tracks(self, video: torch.Tensor, codec, track_codec, steps: int = 1, shift: float = 1.0,
                       seed: int = 0, init_noise: str = "gaussian", flip_average: bool = False):
        """video [T,H,W,3] in [0,1] -> DenseTracks (through `codec` and the `track_codec` decoder)."""
        _check_video(video)
        return self.predict_tracks_batch(video[None], codec, track_codec, steps, shift, seed, init_noise,
                                         flip_average)[0]

    @torch.no_grad()
    def predict_tracks_batch(self, videos: torch.Tensor, codec, track_codec, steps: int = 1, shift: float = 1.0,
                             seed: int = 0, init_noise: str = "gaussian", flip_average: bool = False) -> list:
        """videos [N,T,H,W,3] in [0,1] (clips of one size) -> N DenseTracks, one tracker call for all.

        flip_average: also track the horizontally mirrored clips (in the same call) and average each clip's
        tracks with its mirror's, mirrored back (positions and depth averaged; visible if either says so).
        Twice the work; on validation 3-D scenes it raised delta_avg by ~0.03 (docs/TRAINING.md)."""
        if not isinstance(videos, torch.Tensor) or videos.ndim != 5 or videos.shape[-1] != 3:
            got = tuple(videos.shape) if isinstance(videos, torch.Tensor) else type(videos).__name__
            raise ValueError(f"videos: expected [N,T,H,W,3] in [0,1], got {got}")
        n = len(videos)
        if flip_average:
            videos = torch.cat([videos, videos.flip(3)])
        latents = self.predict(codec.encode(videos), steps, shift, seed, init_noise)
        out = track_codec.decode(latents.cpu())
        if not flip_average:
            return out
        return [_average(a, flip_tracks(b)) for a, b in zip(out[:n], out[n:])]

    def predict_tracks_long(self, video: torch.Tensor, codec, track_codec, window: int = 8, stride: int | None = None,
                            work_height: int | None = 64, batch: int = 8, split_saturated: bool = False,
                            refine: bool = True, refine_max_height: int | None = None, refine_spacing: float = 2.0,
                            refine_overlap: int = 0, base_smooth: int = 11, refine_smooth: int = 8, progress: bool = False,
                            **kwargs):
        """Tracks of a clip of any length and size: the tracker runs at `work_height` (its training size; width
        by aspect; None = the video's size) on `window`-frame windows every `stride` frames (default
        window - 1; the last one only as long as the frames still missing), re-anchored, chained and upsampled to
        the video (`moaw_core.tracking.long_tracks`). Up to `batch` windows per tracker call, whatever the resolution. split_saturated: windows whose motion
        nears the encoding's max_disp are re-run over fewer frames (`track_long`'s max_disp).

        refine: then refine the tracks coarse to fine with the tracker itself at each `refine_levels` height (the
        octaves above work_height up to the video's height, or `refine_max_height`): every frame warped to frame
        0 by the tracks so far, the residual tracked on `window`-frame clips of 64 x 64 tiles, about every
        `refine_spacing` frames (`long_tracks.refine_tracks`); sub-pixel accuracy at the video's resolution.
        base_smooth: each base window's displacements box-filtered over this many px of the working size before
        chaining (`long_tracks.smooth_tracks`; 0 = off); only when a refinement level follows (it restores the detail).
        refine_smooth: the same on each refinement level's measured residual, after its tiles are stitched (px of
        that level). 8 = the tracker's token (2 x 2 patches of the codec's 4 px), so the token lattice of the
        measurement is averaged out; across tile borders it blends the seams. Validation: 3-D scenes, dense error in
        8-px bands on the seams 2.29 -> 2.20 px (5-px box stitched vs per tile; 2.33 unsmoothed); real clips
        (`eval --real-clips`) pair / 3-frame EPE 0.916 / 0.875 (5 px) -> 0.896 / 0.852 (8 px), 3-D scenes equal.
        progress: tqdm bars for the refinement passes.
        kwargs go to predict_tracks_batch (steps, shift, seed, init_noise, flip_average). Returns DenseTracks."""
        from moaw_core.tracking.long_tracks import refine_levels, refine_tracks, smooth_tracks, track_long

        _check_video(video)
        limit = float(track_codec.encoding.max_disp) if split_saturated else None
        for name, val in (("base_smooth", base_smooth), ("refine_smooth", refine_smooth)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 0:
                raise ValueError(f"{name}: expected an integer >= 0 (box width in px), got {val!r}")
        predict = lambda v: self.predict_tracks_batch(v, codec, track_codec, **kwargs)  # noqa: E731
        levels = refine_levels(video.shape[1], work_height, refine_max_height) if refine and video.shape[0] > 1 else []
        smooth = base_smooth if levels else 0  # nothing would restore the detail at the working size
        base = lambda v: [smooth_tracks(t, smooth) for t in predict(v)]  # noqa: E731
        tracks = track_long(base, video, window, stride, work_height, batch=batch, max_disp=limit,
                            short_last=True)  # no window re-tracks frames already covered
        for h in levels:
            tracks = refine_tracks(predict, video, tracks, h, window, spacing=refine_spacing, overlap=refine_overlap,
                                   batch=batch, smooth=refine_smooth, progress=progress)
        return tracks

    def predict_tracks_tiled(self, video: torch.Tensor, codec, track_codec, tile: int = 64, overlap: int = 16,
                             **kwargs):
        """predict_tracks on overlapping `tile` x `tile` windows, blended: a tracker trained on small clips
        keeps its training resolution (token grid, motion scale) on a larger video.

        Each window's displacements (frame t minus frame 0) are blended with a tent weight that falls
        towards the window border; visibility is the weighted vote, depth the weighted mean. Tracks that
        leave their window keep their displacement. kwargs go to predict_tracks (steps, shift, ...).
        Returns DenseTracks over the whole frame.
        """
        from moaw_core.tracking.tracks import DenseTracks, pixel_grid

        _check_video(video)
        T, H, W, _ = video.shape
        if not 0 <= overlap < tile or min(H, W) < tile:
            raise ValueError(f"tile/overlap: need 0 <= overlap < tile <= min(H, W), got tile {tile}, overlap {overlap}, "
                             f"video {H}x{W}")

        def starts(n: int) -> list[int]:
            step = tile - overlap
            out = list(range(0, n - tile + 1, step))
            return out if out[-1] == n - tile else out + [n - tile]

        ramp = torch.minimum(torch.arange(tile) + 1.0, tile - torch.arange(tile, dtype=torch.float32))
        weight = (ramp[:, None] * ramp[None, :]).clamp_min(1.0)
        disp = torch.zeros(T, H, W, 2)
        vis = torch.zeros(T, H, W)
        depth = torch.zeros(T, H, W)
        total = torch.zeros(H, W)
        has_depth = True
        for y in starts(H):
            for x in starts(W):
                d = self.predict_tracks(video[:, y:y + tile, x:x + tile].contiguous(), codec, track_codec, **kwargs)
                disp[:, y:y + tile, x:x + tile] += d.displacement() * weight[None, :, :, None]
                vis[:, y:y + tile, x:x + tile] += d.visible.float() * weight
                if d.depth is None:
                    has_depth = False
                else:
                    depth[:, y:y + tile, x:x + tile] += d.depth * weight
                total[y:y + tile, x:x + tile] += weight
        xy = pixel_grid(H, W)[None] + disp / total[None, :, :, None]
        return DenseTracks(xy, vis / total > 0.5, depth / total if has_depth else None)
