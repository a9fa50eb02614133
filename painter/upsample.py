"""Image-guided upsampling of a painting: edges at the image's own resolution, not the canvas's.

The painter paints the query at the canvas's resolution (128 px a side for the demo model, 448 for
SegGPT); bilinear upsampling then blurs every edge over one canvas pixel of the image and more
(the match head's colours are 4x4 cells). :func:`guided_upsample` is the fast guided filter (He,
Sun and Tang, "Guided Image Filtering", 2010/2013, and He and Sun, "Fast Guided Filter", 2015):
in every window of the low-resolution canvas it fits the painting as a linear function of the
query image's colours, averages those coefficients over the windows that cover each pixel,
upsamples the coefficients (smooth by construction) bilinearly and applies them to the image at
full resolution, so the painting's edges land where the image's colours change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from painter.errors import ConfigError


def check_guide(radius: int, eps: float) -> None:
    """ConfigError unless ``radius`` is a positive whole number and ``eps`` is positive."""
    if int(radius) != radius or radius < 1:
        raise ConfigError(f"guided upsampling radius {radius!r} must be a whole number >= 1")
    if not eps > 0:
        raise ConfigError(f"guided upsampling eps {eps!r} must be > 0 (it regularises flat areas)")


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2 r + 1)^2 window around each pixel, windows cut at the border."""
    side = 2 * radius + 1
    return F.avg_pool2d(x, side, stride=1, padding=radius, count_include_pad=False)


def guided_upsample(
    guide: torch.Tensor,
    values: torch.Tensor,
    full_guide: torch.Tensor,
    *,
    radius: int,
    eps: float,
) -> torch.Tensor:
    """``values`` upsampled to ``full_guide``'s size, following its edges.

    Args:
        guide: (N, 3, h, w) the image at the values' resolution, intensities in [0, 1].
        values: (N, C, h, w) what to upsample (e.g. painted intensities in [0, 1]).
        full_guide: (N, 3, H, W) the same image at the output resolution, in [0, 1].
        radius: window radius in low-resolution pixels (windows of (2 r + 1)^2).
        eps: ridge on the colour covariance: larger keeps flat areas flat (and the output
            closer to a plain blur), smaller follows fainter edges.
    Returns:
        (N, C, H, W) float32. Where ``values`` is a linear function of the guide's colours the
        output is (up to ``eps``) that function of ``full_guide``.
    """
    check_guide(radius, eps)
    if guide.shape[1] != 3 or full_guide.shape[1] != 3 or guide.shape[-2:] != values.shape[-2:]:
        raise ConfigError(
            f"guided upsampling needs RGB guides and values at the guide's size; got guide "
            f"{tuple(guide.shape)}, values {tuple(values.shape)}, full guide "
            f"{tuple(full_guide.shape)}"
        )
    guide, values, full_guide = guide.float(), values.float(), full_guide.float()
    radius = int(radius)
    mean_i = _box(guide, radius)  # (N, 3, h, w)
    outer = torch.einsum("nahw,nbhw->nabhw", guide, guide).flatten(1, 2)
    cov_ii = _box(outer, radius).unflatten(1, (3, 3)) - torch.einsum(
        "nahw,nbhw->nabhw", mean_i, mean_i
    )  # (N, 3, 3, h, w)
    ridge = eps * torch.eye(3, device=guide.device)
    system = cov_ii.permute(0, 3, 4, 1, 2) + ridge  # (N, h, w, 3, 3)
    # Every channel's coefficients from one solve: the channels are its right-hand sides.
    mean_p = _box(values, radius)  # (N, C, h, w)
    products = (guide[:, :, None] * values[:, None]).flatten(1, 2)  # (N, 3 * C, h, w)
    cov_ip = _box(products, radius).unflatten(1, (3, -1)) - mean_i[:, :, None] * mean_p[:, None]
    a = torch.linalg.solve(system, cov_ip.permute(0, 3, 4, 1, 2))  # (N, h, w, 3, C)
    a = a.permute(0, 4, 3, 1, 2)  # (N, C, 3, h, w)
    b = mean_p - (a * mean_i[:, None]).sum(dim=2)  # (N, C, h, w)
    a, b = _box(a.flatten(1, 2), radius).unflatten(1, (-1, 3)), _box(b, radius)
    size = full_guide.shape[-2:]
    out = []
    for c in range(values.shape[1]):  # one channel at a time bounds full-size memory
        a_c = F.interpolate(a[:, c], size=size, mode="bilinear", align_corners=False)
        b_c = F.interpolate(b[:, c : c + 1], size=size, mode="bilinear", align_corners=False)
        out.append((a_c * full_guide).sum(dim=1, keepdim=True) + b_c)
    return torch.cat(out, dim=1)
