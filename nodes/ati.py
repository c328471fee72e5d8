"""MoawVideoToWanTracks: a source video's point tracks (the pack's OpenCV trackers) as the `tracks` input of
core WanTrackToVideo, so Wan ATI weights follow the source's motion (conversion: moaw_core.tracking.ati)."""
from __future__ import annotations

from comfy_api.latest import io

from moaw_core.tracking.ati import MAX_LENGTH, METHODS, video_to_ati_json

from .types import CATEGORY


class MoawVideoToWanTracks(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MoawVideoToWanTracks",
            display_name="Video To Wan Tracks (Moaw)",
            category=CATEGORY,
            description="Tracks a grid of points through the source video (OpenCV Lucas-Kanade or DIS) and writes "
                        "them in WanTrackToVideo's tracks format: output-frame pixels, the same centre crop as its "
                        "start image, resampled to its 121-sample clock. Points lost anywhere are dropped. Use the "
                        "same width / height / length here and on WanTrackToVideo.",
            inputs=[
                io.Image.Input("video", tooltip="Source video frames whose motion the generation should follow."),
                io.Int.Input("width", default=832, min=16, max=8192, step=16,
                             tooltip="WanTrackToVideo's width (the tracks are in its pixels)."),
                io.Int.Input("height", default=480, min=16, max=8192, step=16, tooltip="WanTrackToVideo's height."),
                io.Int.Input("length", default=81, min=2, max=MAX_LENGTH,
                             tooltip="WanTrackToVideo's length (4k + 1); the source clip is stretched over it in time."),
                io.Int.Input("grid", default=6, min=1, max=32,
                             tooltip="Points per side of the frame-0 grid that is tracked (grid x grid tracks)."),
                io.Combo.Input("method", options=list(METHODS), default="lucas_kanade",
                               tooltip="Point tracker: pyramidal Lucas-Kanade, or chained DIS optical flow."),
            ],
            outputs=[io.String.Output(display_name="tracks", tooltip="JSON for WanTrackToVideo's tracks input."),
                     io.Int.Output(display_name="count", tooltip="How many tracks were kept.")],
        )

    @classmethod
    def execute(cls, video, width, height, length, grid, method) -> io.NodeOutput:
        text, count = video_to_ati_json(video, (width, height), length, grid=grid, method=method)
        return io.NodeOutput(text, count, ui={"text": [f"{count} tracks"]})


NODES = [MoawVideoToWanTracks]
