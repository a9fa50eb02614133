"""Reference models of other code bases with random weights: transformers' SegGPT and SAM, and
Meta's segment_anything SAM, for the parity tests (``from benchmarks.references import ...``)
and the benchmarks (``from references import ...``, the script's own folder).

Every floating tensor of the state dict gets random values, relative-position tables, tokens,
norms and SAM's Fourier matrix included (zeros or ones would hide a mismatch), at magnitudes
that keep activations sane through the depth.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Overwrite every floating parameter and persistent buffer of ``module`` in place."""
    gen = torch.Generator().manual_seed(seed)
    norm_weights = {  # by module type too: a LayerNorm in a Sequential is just "neck.1"
        f"{prefix}.weight"
        for prefix, part in module.named_modules()
        if "Norm" in type(part).__name__
    }
    with torch.no_grad():
        for name, tensor in module.state_dict().items():  # shares storage with the module
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=gen)
            if "gaussian" in name or "positional_embedding" in name:
                value = noise  # Fourier frequencies, std 1 as in the released SAM models
            elif "rel_pos" in name:
                value = 0.2 * noise
            elif name in norm_weights or ("norm" in name and name.endswith("weight")):
                value = 1.0 + 0.1 * noise
            elif tensor.dim() >= 2 and name.endswith("weight"):
                value = noise / math.sqrt(tensor[0].numel())  # linear, conv, embedding rows
            else:
                value = 0.1 * noise  # biases, tokens, absolute position embeddings
            tensor.copy_(value.to(tensor.dtype))
    return module


def _built(make, seed: int) -> nn.Module:
    """``make()`` under a private RNG state, randomised with ``seed``, in eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = make()
    return randomize_(model, seed).eval()


def random_hf_seggpt(seed: int = 0, **config):
    """transformers' ``SegGptForImageSegmentation`` of ``SegGptConfig(**config)``, random."""
    from transformers import SegGptConfig, SegGptForImageSegmentation

    return _built(lambda: SegGptForImageSegmentation(SegGptConfig(**config)), seed)


def random_hf_sam(seed: int = 0, **config):
    """transformers' ``SamModel`` of ``SamConfig(**config)`` (nested dicts as there), random."""
    from transformers import SamConfig, SamModel

    return _built(lambda: SamModel(SamConfig(**config)), seed)


def random_meta_sam(
    seed: int = 0,
    *,
    image_size: int,
    embed_dim: int,
    depth: int,
    num_heads: int,
    window_size: int,
    global_blocks: tuple[int, ...],
    prompt_embed_dim: int,
    decoder_mlp_dim: int,
    decoder_heads: int = 8,
    patch_size: int = 16,
):
    """Meta's ``segment_anything`` ``Sam`` at a custom size (its registry has only B/L/H),
    random. Needs the segment-anything package."""
    from functools import partial

    from segment_anything import modeling

    def make():
        return modeling.Sam(
            image_encoder=modeling.ImageEncoderViT(
                img_size=image_size,
                patch_size=patch_size,
                embed_dim=embed_dim,
                depth=depth,
                num_heads=num_heads,
                out_chans=prompt_embed_dim,
                qkv_bias=True,
                norm_layer=partial(nn.LayerNorm, eps=1e-6),
                use_rel_pos=True,
                window_size=window_size,
                global_attn_indexes=global_blocks,
            ),
            prompt_encoder=modeling.PromptEncoder(
                embed_dim=prompt_embed_dim,
                image_embedding_size=(image_size // patch_size,) * 2,
                input_image_size=(image_size, image_size),
                mask_in_chans=16,
            ),
            mask_decoder=modeling.MaskDecoder(
                num_multimask_outputs=3,
                transformer=modeling.TwoWayTransformer(
                    depth=2,
                    embedding_dim=prompt_embed_dim,
                    mlp_dim=decoder_mlp_dim,
                    num_heads=decoder_heads,
                ),
                transformer_dim=prompt_embed_dim,
                iou_head_depth=3,
                iou_head_hidden_dim=prompt_embed_dim,
            ),
        )

    return _built(make, seed)
