"""CPU benchmark of the promptable (SAM-style) model against transformers' SamModel.

Three parts, each measured against its peer in the same run, with the same random weights on
both sides (transformers' model is randomised and converted with our loader's key filter):

1. prompt-to-mask latency with a cached ViT-B-sized embedding (256 x 64 x 64, decoder 256 wide):
   our ``predict_masks`` against ``SamModel(image_embeddings=...)``, one point, a box with a mask
   prompt, and 16 prompt rows at once; plus our whole predictor path (arrays in, masks at
   1024 x 768 out);
2. automatic masks per image with the tiny model;
3. image-encoder time, ours against transformers' (ViT-B by default: one forward each, tens of
   seconds; ``--encoder sam_tiny`` for a quick check, ``--encoder none`` to skip).

    python benchmarks/bench_promptable.py [--encoder sam_vit_b|sam_tiny|none] [--repeats N]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import sys
from pathlib import Path

import numpy as np
import torch
from harness import Timing, format_table, machine_header, machine_info, measure, write_json
from references import random_hf_sam

from painter.checkpoint import CheckpointFormat, RawCheckpoint, load_state_strict
from painter.promptable import (
    AutomaticMaskGenerator,
    PromptablePredictor,
    build_sam,
    get_sam_config,
)
from painter.promptable.checkpoint import config_from_hf, hf_to_native
from painter.promptable.mask_decoder import MaskDecoder
from painter.promptable.model import build_sam_from_config
from painter.promptable.prompt_encoder import PromptEncoder

ROOT = Path(__file__).resolve().parents[1]
DECODER_GOAL_MS = 50.0


def in_ms(timing: Timing) -> dict:
    """Median wall and CPU time in ms (CPU: this process's, the idle-core estimate), and the
    single wall times."""
    return dict(
        wall_ms=1e3 * timing.median_s,
        cpu_ms=1e3 * timing.median_cpu_s,
        wall_runs_ms=[1e3 * t for t in timing.wall_s],
    )


def keep_freed_memory() -> None:
    """glibc: serve blocks below 32 MB from the heap and never trim it (process-wide)."""
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    if not (libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 1 << 30)):
        raise RuntimeError("mallopt refused the settings")


def rel_diff(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours - ref).abs().max() / ref.abs().max())


# -- 1. decoder ---------------------------------------------------------------------------------
def bench_decoder(repeats: int) -> list[dict]:
    hf = random_hf_sam(0)  # transformers' defaults: the ViT-B layout
    config = config_from_hf(hf.config.to_dict())
    with torch.device("meta"):  # the image encoder is never run here: keep it unallocated
        ours = build_sam_from_config(config)
    ours.prompt_encoder, ours.mask_decoder = PromptEncoder(config), MaskDecoder(config)
    ours.image_encoder.to_empty(device="cpu")  # memory for the predictor's .to(); never run
    ours.pixel_mean, ours.pixel_std = (
        torch.tensor(config.pixel_mean),
        torch.tensor(config.pixel_std),
    )
    state = hf_to_native(hf.state_dict(), config)
    for part in ("prompt_encoder", "mask_decoder"):
        prefix = part + "."
        own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        getattr(ours, part).load_state_dict(own, strict=True)
    ours.eval()

    gen = torch.Generator().manual_seed(3)
    side = config.image_size
    embedding = torch.randn(1, config.prompt_embed_dim, config.grid, config.grid, generator=gen)
    point = torch.tensor([[[400.0, 300.0]]])
    box = torch.tensor([[200.0, 150.0, 700.0, 600.0]])
    mask = torch.randn(1, 1, config.low_res_size, config.low_res_size, generator=gen)
    rows = torch.rand(16, 1, 2, generator=gen) * side
    cases = {
        "1 point, 3 masks": (
            dict(points=point, labels=torch.ones(1, 1, dtype=torch.int64), multimask=True),
            dict(
                input_points=point[None],
                input_labels=torch.ones(1, 1, 1, dtype=torch.int64),
                multimask_output=True,
            ),
            1,
        ),
        "box + mask prompt, 1 mask": (
            dict(boxes=box, mask_inputs=mask, multimask=False),
            dict(input_boxes=box[None], input_masks=mask, multimask_output=False),
            1,
        ),
        "16 points at once, 3 masks": (
            dict(points=rows, labels=torch.ones(16, 1, dtype=torch.int64), multimask=True),
            dict(
                input_points=rows[None],
                input_labels=torch.ones(1, 16, 1, dtype=torch.int64),
                multimask_output=True,
            ),
            16,
        ),
    }
    cases["1 point, 3 masks, both bf16 autocast"] = cases["1 point, 3 masks"]
    results = []
    with torch.inference_mode():
        for name, (ours_kw, hf_kw, prompts) in cases.items():
            dtype = torch.bfloat16 if "bf16" in name else torch.float32

            def run_ours(kw=ours_kw, dtype=dtype):
                with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                    return ours.predict_masks(embedding, **kw)

            def run_hf(kw=hf_kw, dtype=dtype):
                with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
                    return hf(image_embeddings=embedding, **kw)

            diff = rel_diff(run_ours()[0].float(), run_hf().pred_masks[0].float())
            timings = measure([run_ours, run_hf], repeats=max(2, repeats // prompts * 2), warmup=2)
            ours_t, hf_t = (in_ms(t) for t in timings)
            results.append(dict(case=name, prompts=prompts, ours=ours_t, hf=hf_t, rel_diff=diff))
    # the user-level path: arrays in, masks at the image's size out, embedding cached
    predictor = PromptablePredictor(ours, device="cpu", dtype="float32")
    predictor.set_image_embedding(embedding, (768, 1024))
    [timing] = measure(
        [lambda: predictor.predict(points=[[400, 300]], labels=[1])], repeats=repeats, warmup=2
    )
    ours_t = in_ms(timing)
    results.append(
        dict(
            case="predictor.predict, 1 point -> 3 masks at 1024x768",
            prompts=1,
            ours=ours_t,
            hf=None,
            rel_diff=None,
        )
    )
    return results


# -- 2. automatic masks -------------------------------------------------------------------------
def bench_automatic(repeats: int) -> list[dict]:
    torch.manual_seed(0)
    predictor = PromptablePredictor(build_sam("sam_tiny"), device="cpu", dtype="float32")
    rng = np.random.default_rng(0)
    image = rng.integers(60, 200, (192, 256, 3)).astype(np.uint8)
    image[20:90, 30:120] = (230, 40, 40)
    results = []
    for side, crops in ((16, 0), (32, 0), (16, 1)):
        generator = AutomaticMaskGenerator(
            predictor,
            points_per_side=side,
            pred_iou_thresh=-1e9,
            stability_score_thresh=0.0,
            crop_n_layers=crops,
        )
        masks = generator.generate(image)
        [timing] = measure([lambda g=generator: g.generate(image)], repeats=repeats, warmup=0)
        results.append(
            dict(
                points_per_side=side,
                crop_layers=crops,
                image=[192, 256],
                seconds=timing.median_s,
                cpu_seconds=timing.median_cpu_s,
                masks=len(masks),
            )
        )
    return results


# -- 3. encoder ---------------------------------------------------------------------------------
def bench_encoder(variant: str) -> dict:
    config = get_sam_config(variant)
    enc = config.encoder
    hf_kwargs = dict(
        vision_config=dict(
            hidden_size=enc.embed_dim,
            num_hidden_layers=enc.depth,
            num_attention_heads=enc.num_heads,
            image_size=config.image_size,
            window_size=enc.window_size,
            global_attn_indexes=list(enc.global_attn_blocks),
            output_channels=config.prompt_embed_dim,
            num_pos_feats=config.prompt_embed_dim // 2,
        ),
        prompt_encoder_config=dict(
            hidden_size=config.prompt_embed_dim, image_size=config.image_size
        ),
        mask_decoder_config=dict(
            hidden_size=config.prompt_embed_dim,
            mlp_dim=config.decoder_mlp_dim,
            num_attention_heads=config.decoder_heads,
            iou_head_hidden_dim=config.iou_head_hidden_dim,
        ),
    )
    pixels = torch.randn(
        1, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(5)
    )
    hf = random_hf_sam(0, **hf_kwargs)
    state = {k: v.clone() for k, v in hf.state_dict().items()}
    with torch.inference_mode():
        [hf_t] = measure([lambda m=hf: m.get_image_embeddings(pixels)], repeats=1, warmup=0)
    hf_config = hf.config.to_dict()
    del hf
    gc.collect()
    ours_config = config_from_hf(hf_config)
    ours = build_sam_from_config(ours_config).eval()
    raw = RawCheckpoint(ours_config, hf_to_native(state, ours_config), CheckpointFormat.HF, "hf")
    load_state_strict(ours, raw)
    del state
    with torch.inference_mode():
        [ours_t] = measure([lambda: ours.encode_images(pixels)], repeats=1, warmup=0)
    return dict(
        variant=variant,
        image_size=config.image_size,
        ours_s=ours_t.median_s,
        hf_s=hf_t.median_s,
        ours_cpu_s=ours_t.median_cpu_s,
        hf_cpu_s=hf_t.median_cpu_s,
        rel_diff=rel_diff(ours_t.result, hf_t.result),
        note="one forward each, no warm-up",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="sam_vit_b", help="sam_vit_b, sam_tiny or none")
    parser.add_argument("--repeats", type=int, default=20, help="timed decoder runs per case")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="tell glibc malloc to keep freed memory (no mmap/trim for blocks under 32 MB), so "
        "large temporaries do not page-fault on every call; applies to both sides",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/bench_promptable.json"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.keep_freed_memory:
        keep_freed_memory()
    start = machine_info()
    print(machine_header(start) + " (at the start)")

    decoder = bench_decoder(args.repeats)
    gc.collect()  # the decoder part's transformers model holds a ViT-B
    allocator = "malloc keeps freed memory" if args.keep_freed_memory else "default malloc"
    print(
        f"\nPrompt -> mask with a cached 256x64x64 embedding, {args.threads} thread(s), "
        f"{allocator}, ms"
    )
    print("wall = elapsed; CPU = this process's CPU time (the idle-core estimate)")
    head = ["case", "ours wall", "HF wall", "ours CPU", "HF CPU", "ours/HF", "CPU/prompt"]
    rows = []
    for row in decoder:
        ours_t, hf_t = row["ours"], row["hf"]
        cells = [row["case"], f"{ours_t['wall_ms']:.1f}", "-", f"{ours_t['cpu_ms']:.1f}", "-", "-"]
        if hf_t is not None:
            cells[2], cells[4] = f"{hf_t['wall_ms']:.1f}", f"{hf_t['cpu_ms']:.1f}"
            cells[5] = f"{ours_t['cpu_ms'] / hf_t['cpu_ms']:.2f}"
        cells.append(f"{ours_t['cpu_ms'] / row['prompts']:.1f}")
        cells.append(f"{row['rel_diff']:.1e}" if row["rel_diff"] is not None else "-")
        rows.append(cells)
    print(format_table([*head, "rel diff"], rows, markdown=True))

    automatic = bench_automatic(max(1, args.repeats // 10))
    print("\nAutomatic masks, sam_tiny (random weights, filters off), 256x192 image")
    head = ["points/side", "crop layers", "s/image wall", "s/image CPU", "masks"]
    rows = [
        [r["points_per_side"], r["crop_layers"], f"{r['seconds']:.2f}"]
        + [f"{r['cpu_seconds']:.2f}", r["masks"]]
        for r in automatic
    ]
    print(format_table(head, rows, markdown=True))

    encoder = None
    if args.encoder != "none":
        gc.collect()
        encoder = bench_encoder(args.encoder)
        print(f"\nImage encoder {encoder['variant']} at {encoder['image_size']} px, one forward")
        head = ["ours wall s", "HF wall s", "ours CPU s", "HF CPU s", "ours/HF (CPU)", "rel diff"]
        cells = [f"{encoder[k]:.2f}" for k in ("ours_s", "hf_s", "ours_cpu_s", "hf_cpu_s")]
        cells += [f"{encoder['ours_cpu_s'] / encoder['hf_cpu_s']:.2f}"]
        cells += [f"{encoder['rel_diff']:.1e}"]
        print(format_table(head, [cells], markdown=True))

    compared = [r for r in decoder if r["hf"] is not None]
    targets = {
        "decoder CPU ms for one point <= 50": decoder[0]["ours"]["cpu_ms"] <= DECODER_GOAL_MS,
        "decoder no slower than HF in CPU time, every case": all(
            r["ours"]["cpu_ms"] <= r["hf"]["cpu_ms"] for r in compared
        ),
        "decoder outputs equal HF, fp32 (rel diff <= 1e-4)": all(
            r["rel_diff"] <= 1e-4 for r in compared if "bf16" not in r["case"]
        ),
    }
    print()
    for name, ok in targets.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    end = machine_info()
    print(
        machine_header(end) + " (at the end); above the core count other processes shared the "
        "CPU, so wall times are inflated"
    )
    report = dict(
        decoder=decoder,
        automatic=automatic,
        encoder=encoder,
        targets=targets,
        threads=args.threads,
        keep_freed_memory=args.keep_freed_memory,
        machine=end,
        load_average=[start["load_average"], end["load_average"]],
    )
    write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
