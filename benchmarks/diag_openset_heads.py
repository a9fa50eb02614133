"""Which head lets a SegGPT backbone learn open-set in-context matching from scratch on a CPU?

    python benchmarks/diag_openset_heads.py --head logit --lr 3e-4 --steps 300
    python benchmarks/diag_openset_heads.py --head decoder --lr 1e-3 --steps 200 --guide 0

Episodes: two images of one same-look open-set group of the training families (one category,
one instance, one or two distractors that share its outline or texture but not its colours),
prompt on top, query below, the query's target half hidden. The backbone is ``seggpt_openset``'s
encoder. Two heads, one loss (BCE with pos_weight 3 on the query's foreground, a 0/1 mask):

* ``logit``: a linear map of the tapped features to the patch's 16x16 foreground logits;
* ``decoder``: the model's own painting decoder (pixel shuffle, convs), each of its three
  output channels used as the logits of the same mask.

Prints the training IoU of the query masks over each block of 25 steps and writes JSON. One
thread; about 1 s per step of 16 episodes. Measured (README, Training): the logit head climbs
to IoU 0.24-0.42 within 200-275 steps, the decoder stays at 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
import torch.nn.functional as F
from harness import finish

from data_mixtures.openset import OpenSetSource
from data_mixtures.openset_config import LookMode, OpenSetConfig
from painter.losses import foreground_weights, masked_palette_cross_entropy
from painter.ops import denormalize, normalize
from painter.registry import get_config
from seggpt.loading import build_model

IMAGE = 128  # side of each half


def episodes(source: OpenSetSource, start: int, count: int):
    """(images, targets) normalised (B, 3, 2*IMAGE, IMAGE) and the query masks (B, IMAGE, IMAGE)."""
    images, masks = [], []
    for group in range(start, start + count):
        prompt, query = source[2 * group], source[2 * group + 1]
        [class_id] = prompt.classes()
        images.append(np.concatenate([prompt.image, query.image], axis=0))  # (2H, W, 3)
        masks.append(np.concatenate([prompt.semantic, query.semantic], axis=0) == class_id)
    image = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255  # (B, 3, 2H, W)
    mask = torch.from_numpy(np.stack(masks))  # (B, 2H, W) bool
    target = mask.float()[:, None].expand(-1, 3, -1, -1)  # (B, 3, 2H, W)
    return normalize(image), normalize(target), mask[:, IMAGE:]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", choices=("logit", "decoder"), default="logit")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--guide", type=int, default=8, help="decoder_guide of the model")
    parser.add_argument(
        "--linear", action="store_true", help="decoder head: add the linear painting path"
    )
    parser.add_argument(
        "--loss",
        choices=("bce", "paint"),
        default="bce",
        help="decoder head: BCE on its channels as logits, or the trainer's painting loss "
        "(masked smooth-L1 + palette cross-entropy, foreground weight 3), white-on-black target",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/diag_openset_heads.json")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    config = OpenSetConfig(
        image_size=(IMAGE, IMAGE),
        categories_per_group=(1, 1),
        instances_per_category=(1, 1),
        distractors_per_image=(1, 2),
        object_size=(0.2, 0.3),
        strokes=(0, 0),
    )
    source = OpenSetSource(config, seed=args.seed, look=LookMode.SAME_LOOK)
    model_config = dataclasses.replace(
        get_config("seggpt_openset"), decoder_guide=args.guide, decoder_linear=args.linear
    )
    model = build_model(model_config)
    p = model_config.vit.patch_size
    grid_h, grid_w = model_config.grid
    head = torch.nn.Linear(len(model_config.tap_blocks) * model_config.vit.embed_dim, p * p)
    params = list(model.parameters()) + (list(head.parameters()) if args.head == "logit" else [])
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    hidden = torch.zeros(args.batch, grid_h * grid_w, dtype=torch.bool)
    hidden[:, grid_h * grid_w // 2 :] = True  # the query's target half
    seg_type = torch.zeros(args.batch, dtype=torch.long)
    rows, inter, union, start = [], 0, 0, time.time()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / 30)  # 30-step warm-up
        images, targets, truth = episodes(source, step * args.batch, args.batch)
        if args.head == "logit":
            x, y = model.embed(images, targets, hidden, seg_type=seg_type)
            features = torch.cat(model.encode(x, y), dim=-1)  # (B, h, w, T * C)
            logits = head(features).reshape(args.batch, grid_h, grid_w, p, p)  # (B, h, w, p, q)
            logits = logits.permute(0, 1, 3, 2, 4).reshape(args.batch, grid_h * p, grid_w * p)
            query = logits[:, IMAGE:]  # (B, H, W)
        elif args.loss == "paint":
            painted = model(images, targets, hidden, seg_type=seg_type)  # (B, 3, 2H, W)
            weights = foreground_weights(targets, 3.0, torch.ones_like(targets[:, 0]))
            loss = model.loss(painted, targets, hidden, weights) + masked_palette_cross_entropy(
                painted, targets, hidden, patch_size=p, valid=weights
            )
            query = denormalize(painted[:, :, IMAGE:]).mean(1) * 2 - 1  # > 0: brighter than 128
        else:
            query = model(images, targets, hidden, seg_type=seg_type)[:, :, IMAGE:]  # (B, 3, H, W)
        if args.loss == "bce" or args.head == "logit":
            wanted = truth.float() if query.dim() == 3 else truth.float()[:, None].expand_as(query)
            loss = F.binary_cross_entropy_with_logits(query, wanted, pos_weight=torch.tensor(3.0))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 3.0)
        optimizer.step()
        with torch.no_grad():
            found = (query if query.dim() == 3 else query.mean(1)) > 0
            inter += int((found & truth).sum())
            union += int((found | truth).sum())
        if (step + 1) % 25 == 0:
            rows.append({"step": step + 1, "loss": loss.item(), "iou": inter / max(union, 1)})
            print(f"step {step + 1:4d}  loss {loss.item():.3f}  IoU(last 25) {rows[-1]['iou']:.3f}")
            inter = union = 0
    result = {**vars(args), "seconds": time.time() - start, "rows": rows}
    return finish(result, args.out)


if __name__ == "__main__":
    main()
