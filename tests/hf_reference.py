"""Helpers to build transformers' SegGPT with random weights for parity tests."""

from __future__ import annotations

import torch
from transformers import SegGptConfig, SegGptForImageSegmentation


def random_hf_seggpt(seed: int = 0, **config) -> SegGptForImageSegmentation:
    """A small HF SegGPT with every parameter random (incl. rel-pos tables and tokens)."""
    torch.manual_seed(seed)
    model = SegGptForImageSegmentation(SegGptConfig(**config)).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 1.0 if "norm" in name and name.endswith("weight") else 0.05
            base = 1.0 if scale == 1.0 else 0.0
            param.copy_(base + scale * torch.randn(param.shape, generator=gen))
    return model
