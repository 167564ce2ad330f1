"""Per-frame image quality the families and ``worldflux.compare`` report alike (torchmetrics)."""

from __future__ import annotations

from torch import Tensor


def frame_ssim(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM of each frame ``(N, C, H, W) -> (N,)``, images in ``[0, 1]``, data range 1.

    Gaussian window (sigma 1.5) of side 11, or the largest odd side the frames hold.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    side = min(pred.shape[-2:])
    kernel = min(11, side - (1 - side % 2))  # odd and no larger than the image
    out = structural_similarity_index_measure(
        pred.float(), target.float(), data_range=1.0, kernel_size=kernel, reduction="none"
    )
    assert isinstance(out, Tensor)  # reduction="none" without full images: one tensor
    return out
