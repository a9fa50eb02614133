"""The Blocks app: the bundled example files, the tabs in order, and ``/model_info``.

A new tab is one module with a function ``tab(ctx: AppContext)`` appended to :data:`TABS`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from painter.io import default_palette, save_image, save_index_mask
from seggpt.loading import DEMO_TUNED_PROMPT
from seggpt.predictor import SegGPTPredictor
from seggpt.samples import bundled_samples, fixed_class_split
from seggpt.serving import model_summary, usable_tuned_prompts
from tools.app.common import AppContext, gr
from tools.app.in_context_tab import in_context_tab
from tools.app.label_tab import label_tab
from tools.app.promptable_tab import promptable_tab
from tools.app.tuned_tab import tuned_tab
from tools.app.video_tab import video_tab

if TYPE_CHECKING:
    from painter.promptable.predictor import PromptablePredictor

TABS: list[Callable[[AppContext], None]] = [
    in_context_tab,
    video_tab,
    tuned_tab,
    promptable_tab,
    label_tab,
]


def write_examples(folder: Path) -> dict[str, dict[str, list[str]]]:
    """Write the bundled sample episodes (seggpt.samples) as PNG files; name -> file lists."""
    examples = {}
    for sample in bundled_samples():
        sub = folder / sample.name
        files: dict[str, list[str]] = {"prompt_images": [], "prompt_masks": []}
        for i, (image, mask) in enumerate(zip(sample.prompt_images, sample.prompt_masks)):
            save_image(sub / f"example{i + 1}.png", image)
            save_index_mask(sub / f"example{i + 1}_mask.png", mask)
            files["prompt_images"].append(str(sub / f"example{i + 1}.png"))
            files["prompt_masks"].append(str(sub / f"example{i + 1}_mask.png"))
        save_image(sub / "query.png", sample.query_image)
        files["query_images"] = [str(sub / "query.png")]
        examples[sample.name] = files
    return examples


def write_video_example(folder: Path, size: tuple[int, int]) -> dict[str, object]:
    """Write the bundled synthetic video (frames and first-frame mask) as PNG files; its objects
    and background come from the open-set held-out families (no demo model trained on them)."""
    from data_mixtures.synthetic_video import SyntheticVideoConfig, synthetic_video, video_looks

    config = SyntheticVideoConfig(num_frames=12, image_size=size, looks=video_looks("held-out"))
    video = synthetic_video(config, seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for index, frame in enumerate(video.frames):
        frames.append(str(folder / f"{index:05d}.png"))
        save_image(frames[-1], frame)
    first_mask = folder / "first_mask.png"
    save_index_mask(first_mask, video.masks[0], palette=default_palette(len(video.object_ids) + 1))
    return {"frames": frames, "first_mask": str(first_mask)}


def build_app(
    predictor: SegGPTPredictor,
    *,
    workdir: Path | None = None,
    tuned_prompts: Sequence[str | os.PathLike] = (),
    promptable: PromptablePredictor | None = None,
) -> gr.Blocks:
    """The Blocks app around ``predictor``; bundled examples are written under ``workdir``.

    ``tuned_prompts``: tuned prompt files offered in the Tuned-prompt tab (besides the bundled
    one, when it fits the model). ``promptable``: a ``PromptablePredictor`` for the Promptable
    tab and the refinement option (None: the tab says how to load one).
    """
    if workdir is None:
        base = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")
        workdir = base / f"seggpt_app_{os.getpid()}"
    examples = write_examples(workdir / "examples")
    tuned_queries = []
    if DEMO_TUNED_PROMPT.is_file():
        tuned_prompts = [DEMO_TUNED_PROMPT, *tuned_prompts]
        images, _ = fixed_class_split(predictor.config.half_size, "held_out", 2)
        for i, image in enumerate(images):
            tuned_queries.append(str(workdir / "examples" / "tuned" / f"query{i + 1}.png"))
            save_image(tuned_queries[-1], image)
    runner = None
    if promptable is not None:  # imported here: the promptable package costs start-up time
        from painter.promptable.serving import PromptableRunner

        runner = PromptableRunner(promptable)
    ctx = AppContext(
        predictor,
        examples,
        workdir,
        video_example=write_video_example(workdir / "examples" / "video", (96, 128)),
        tuned_prompts=usable_tuned_prompts(predictor, tuned_prompts),
        tuned_queries=tuned_queries,
        promptable=runner,
    )
    summary = model_summary(predictor)
    with gr.Blocks(title="SegGPT in-context segmentation") as demo:
        gr.Markdown(
            "# SegGPT: in-context segmentation\n"
            f"Model `{summary['model']}` ({summary['embed_dim']}-wide, {summary['depth']} blocks, "
            f"canvas {summary['canvas_size'][0]}x{summary['canvas_size'][1]}) on "
            f"{summary['device']}, {summary['dtype']}."
        )
        with gr.Tabs():
            for tab in TABS:
                tab(ctx)
        with gr.Column(visible=False):
            info_out = gr.JSON(label="model_info")
            info_button = gr.Button()
        info_button.click(lambda: summary, outputs=info_out, api_name="model_info")
    return demo
