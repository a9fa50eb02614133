"""The Video tab: frames (or a video file) + a first-frame mask -> the masks of every frame.

Endpoints ``/track`` and ``/video_example`` (the bundled synthetic clip's files).
"""

from __future__ import annotations

import numpy as np

from painter.errors import InvalidMaskError
from seggpt.serving import MAX_MEMORY, mask_from_layers, track_video, video_frames
from seggpt.video import DEFAULT_MEMORY
from seggpt.video_io import VideoFrames
from tools.app.common import AppContext, brush_editor, gr, readable_errors


def video_tab(ctx: AppContext) -> None:
    """Frames (or a video) + a first-frame mask -> masks of every frame; endpoints /track and
    /video_example."""
    predictor = ctx.predictor
    with gr.Tab("Video"):
        gr.Markdown(
            "Upload a **video** file or its **frames** as images, press *Show first frame*, "
            "paint each object to track on it (one brush colour per object) or upload the "
            "first frame's mask, then press *Track*. Every frame is prompted with the first frame "
            "and the latest *memory* frames with their predicted masks."
        )
        with gr.Row():
            with gr.Column():
                example = gr.Button("Bundled synthetic video", size="sm")
                files = gr.File(label="video file or frames", file_count="multiple")
                show = gr.Button("Show first frame", size="sm")
                editor = brush_editor("first frame (paint the objects)")
                mask_file = gr.Image(
                    label="or upload the first frame's mask (ids, palette PNG or colours)",
                    type="filepath",
                    image_mode=None,
                    format="png",
                    sources=("upload",),
                    height=180,
                )
                memory = gr.Slider(0, MAX_MEMORY, value=DEFAULT_MEMORY, step=1, label="memory")
                run = gr.Button("Track", variant="primary")
            with gr.Column():
                info = gr.Textbox(label="info", interactive=False, elem_id="video_info")
                animation = gr.Image(label="overlay", type="filepath", format="gif")
                download = gr.File(label="per-frame masks (zip of palette PNGs)")

        def file_paths(items) -> list[str]:
            return [getattr(item, "name", item) for item in items or []]

        @readable_errors
        def first_frame(items):
            frames = video_frames(file_paths(items), ctx.request_folder() / "frames")
            frame = next(iter(frames))
            return frame, f"{len(frames)} frames of {frame.shape[1]}x{frame.shape[0]}"

        show.click(first_frame, inputs=files, outputs=[editor, info], api_visibility="private")

        def first_mask_of(frames: VideoFrames, editor_value, mask_path) -> np.ndarray | str:
            if mask_path:
                return mask_path
            layers = (editor_value or {}).get("layers") or []
            size = next(iter(frames)).shape[:2]
            mask = mask_from_layers(layers, size)
            if not mask.any():
                raise InvalidMaskError(
                    "no first-frame mask: press Show first frame and paint the objects, or "
                    "upload the mask of the first frame"
                )
            return mask

        @readable_errors
        def track_ui(items, editor_value, mask_path, frames_memory, progress=gr.Progress()):  # noqa: B008
            folder = ctx.request_folder()
            frames = video_frames(file_paths(items), folder / "frames")
            result = track_video(
                predictor,
                frames,
                first_mask_of(frames, editor_value, mask_path),
                folder,
                memory=int(frames_memory),
                progress=lambda done, total: progress((done, total), desc="propagating"),
            )
            return str(result.overlay), str(result.masks_zip), result.info

        run.click(
            track_ui,
            inputs=[files, editor, mask_file, memory],
            outputs=[animation, download, info],
            api_visibility="private",
        )

        @readable_errors
        def video_example():
            """The bundled synthetic video: its frame files and the first frame's mask file."""
            video = ctx.video_example
            return video["frames"], video["first_mask"]

        example.click(lambda: video_example(), outputs=[files, mask_file], api_visibility="private")

        with gr.Column(visible=False):
            api_frames = gr.File(file_count="multiple", label="frames")
            api_mask = gr.File(label="first_mask")
            api_memory = gr.Number(value=DEFAULT_MEMORY, precision=0, label="memory")
            api_out = [gr.File(label="overlay"), gr.File(label="masks_zip")]
            api_info = gr.Textbox(label="info")
            api_button = gr.Button()

        @readable_errors
        def track(frames, first_mask, memory=DEFAULT_MEMORY):
            """Track the objects of ``first_mask`` through ``frames`` (image files, or one video
            file); returns the overlay GIF, a zip of per-frame palette PNG masks, an info line."""
            if not first_mask:
                raise InvalidMaskError("give the first frame's mask (object ids or colours)")
            folder = ctx.request_folder()
            result = track_video(
                predictor,
                video_frames(file_paths(frames), folder / "frames"),
                getattr(first_mask, "name", first_mask),
                folder,
                memory=int(memory),
            )
            return str(result.overlay), str(result.masks_zip), result.info

        api_button.click(
            track,
            inputs=[api_frames, api_mask, api_memory],
            outputs=[*api_out, api_info],
            api_name="track",
        )
        api_button.click(video_example, outputs=[api_frames, api_mask], api_name="video_example")
