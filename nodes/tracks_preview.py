"""MoawTracksToImage: show a tracker's predicted track latents as pictures (colour-wheel motion, visibility)."""
from __future__ import annotations

from comfy_api.latest import io

from moaw_core.tracking.codecs import TrackEncoding

from .types import CATEGORY, MoawTrackerType


def track_latents_to_images(tracker, vae, tracks: dict):
    """Decode the two halves of the track latents (flow wheel; depth, visibility, visibility) with the VAE of the
    tracker's base model. Returns (flow IMAGE [T, H, W, 3], depth/visibility IMAGE [T, H, W, 3])."""
    enc = TrackEncoding.from_json(tracker.meta["moaw.track_encoding"])
    z = tracks["samples"]
    if z.ndim != 5 or z.shape[1] != enc.track_channels:
        raise ValueError(f"MoawTracksToImage: expected track latents with {enc.track_channels} channels from "
                         f"ExtractMotionFeatures (tracker mode), got {tuple(z.shape)}")
    c = enc.latent_channels
    images = []
    for half in (z[:, :c], z[:, c:]):
        pixels = vae.decode(tracker.source_format.process_out(half))  # model space -> VAE space -> pixels
        images.append(pixels.reshape(-1, *pixels.shape[-3:]).clamp(0, 1))
    return images[0], images[1]


class MoawTracksToImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MoawTracksToImage",
            display_name="Moaw Tracks To Image",
            category=CATEGORY,
            description="Decodes the tracker's predicted tracks: motion of every first-frame pixel as a colour "
                        "wheel (hue = direction, saturation = distance; white = still), and depth/visibility.",
            inputs=[
                MoawTrackerType.Input("tracker", tooltip="The tracker that produced the tracks."),
                io.Vae.Input("vae", tooltip="The VAE of the tracker's base model (the one that encoded the source)."),
                io.Latent.Input("tracks", tooltip="The 'tracks' output of ExtractMotionFeatures."),
            ],
            outputs=[io.Image.Output(display_name="motion", tooltip="Motion of every first-frame pixel as a colour wheel."),
                     io.Image.Output(display_name="depth_visibility", tooltip="Depth and visibility of the tracks.")],
        )

    @classmethod
    def execute(cls, tracker, vae, tracks) -> io.NodeOutput:
        return io.NodeOutput(*track_latents_to_images(tracker, vae, tracks))


NODES = [MoawTracksToImage]
