"""A multi-scale-stage deblurring network in front of a LIIF encoder (the `liif-deblur` model).

The design follows the paper "MSSNet: Multi-Scale-Stage Network for Single Image Deblurring" (Kim, Lee and
Cho, ECCV 2022 workshops); the code is this project's own. The image is seen at `len(stages)` scales, the
coarsest first. A scale's input is the image rearranged space-to-depth (`pixel_unshuffle`), so nothing is
lost by looking coarsely. At each scale a chain of small U-Nets (`stages[s]` of them, more at finer
scales) refines the features; each U-Net takes the previous one's encoder and decoder features through
1x1 convolutions (cross-stage feature fusion), and the first U-Net of a scale also takes the coarser
scale's, upsampled. A zero-initialised convolution turns the finest features into a residual that is
added to the input, so an untrained network is the identity.

Differences from the paper, for this viewer: bilinear downsampling is replaced by 2x2 average pooling and
every resampling is of a factor 2, so the network is exactly shift-equivariant for shifts that are
multiples of `multiple` (tiles cut on that grid equal the whole), ReLU instead of PReLU, and the
network is trained on its final output only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from viewer.liif.models import ResBlock, registry

Features = list[torch.Tensor]


class _Down(nn.Module):
    """Halve the resolution (2x2 mean) and change the width (1x1 convolution)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.avg_pool2d(x, 2))


class _Up(nn.Module):
    """Change the width (1x1 convolution) and double the resolution (bilinear, half-pixel centres)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _up2(self.proj(x))


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def _blocks(width: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(width, 1.0) for _ in range(n)])


class UNetStage(nn.Module):
    """One stage: an encoder-decoder over `len(widths)` levels with residual blocks and skip blocks.

    With `fuse`, each encoder level adds 1x1-convolved encoder and decoder features of the previous stage
    (cross-stage feature fusion). Returns the encoder and decoder features of every level, finest first.
    """

    def __init__(self, widths: Sequence[int], blocks: int, fuse: bool) -> None:
        super().__init__()
        n = len(widths)
        self.enc = nn.ModuleList([_blocks(c, blocks) for c in widths])
        self.dec = nn.ModuleList([_blocks(c, blocks) for c in widths])
        self.down = nn.ModuleList([_Down(widths[i], widths[i + 1]) for i in range(n - 1)])
        self.up = nn.ModuleList([_Up(widths[i + 1], widths[i]) for i in range(n - 1)])
        self.skip = nn.ModuleList([ResBlock(widths[i], 1.0) for i in range(n - 1)])
        self.fuse_enc = nn.ModuleList([nn.Conv2d(c, c, 1, bias=False) for c in widths]) if fuse else None
        self.fuse_dec = nn.ModuleList([nn.Conv2d(c, c, 1, bias=False) for c in widths]) if fuse else None

    def forward(
        self, x: torch.Tensor, prev: tuple[Features, Features] | None = None
    ) -> tuple[Features, Features]:
        encs: Features = []
        for i, block in enumerate(self.enc):
            if i:
                x = self.down[i - 1](x)
            x = block(x)
            if prev is not None and self.fuse_enc is not None and self.fuse_dec is not None:
                x = x + self.fuse_enc[i](prev[0][i]) + self.fuse_dec[i](prev[1][i])
            encs.append(x)
        n = len(encs)
        decs: Features = [encs[-1]] * n
        y = self.dec[n - 1](encs[-1])
        decs[n - 1] = y
        for i in range(n - 2, -1, -1):
            y = self.dec[i](self.up[i](y) + self.skip[i](encs[i]))
            decs[i] = y
        return encs, decs


def unet_widths(wf: int, scale: int, vscale: int, levels: int) -> list[int]:
    """Channel widths of the U-Net levels: wf, wf + scale, then + vscale for each further level."""
    return [wf + (scale if i >= 1 else 0) + vscale * max(0, i - 1) for i in range(levels)]


def bound_radius(stages: Sequence[int], levels: int, blocks: int) -> int:
    """An upper bound (full-resolution pixels per side) of the network's receptive radius.

    Every operation's reach is added as if all ran in series, which bounds the true radius from above: a
    3x3 convolution at a level of f pixels per sample adds f, a 2x2 mean or a bilinear doubling adds 2f,
    a space-to-depth rearrangement adds its factor, and padding to `multiple` adds multiple - 1.
    """
    n_scales = len(stages)
    mult = 2 ** (n_scales - 1 + levels - 1)
    total = mult - 1
    for s, count in enumerate(stages):
        f0 = 2 ** (n_scales - 1 - s)
        total += 2 * f0 + f0 * 3  # unshuffle, head conv + block, and the tail or the scale's upsampling
        if s:
            total += 2 * f0 + f0  # coarser features doubled, fusion conv
        per_stage = 0
        for i in range(levels):
            f = f0 * 2**i
            per_stage += 2 * (2 * blocks * f)  # encoder and decoder blocks
            if i < levels - 1:
                per_stage += 2 * f + 2 * (2 * f) + 2 * f  # down, up, skip block
        total += count * per_stage
    return total


#: The directions the directional estimate looks along (rows, columns and both diagonals), as pixel steps.
DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


class BlurGate(nn.Module):
    """How blurred each region of a normalised image (B, 3, H, W) looks, as a weight in [0, 1] (B, 1, H, W).

    A no-reference estimate: the share of the luma's gradient energy, in a 31-pixel window, that survives a
    Gaussian blur of sigma 1. A blurred region has little fine detail to lose (a share near 0.5 to 0.8), a
    sharp one loses most of it (0.1 to 0.35); flat regions count as sharp. The share maps linearly from
    [lo, hi] to [0, 1], so the deblur residual leaves sharp photos and sharp regions alone. Thresholds are
    set on training crops (see models/liif-deblur.md). Stride-1 operations only: shift-equivariant, with a
    reach of `RADIUS` pixels.
    """

    WINDOW = 31
    RADIUS = WINDOW // 2 + 3 + 1  # window, Gaussian taps, forward difference

    def __init__(self, lo: float, hi: float, directional: float | None = None) -> None:
        super().__init__()
        self.lo, self.hi = float(lo), float(hi)
        self.directional = None if directional is None else float(directional)
        """With a value, the share also looks along `DIRECTIONS` (see `directional_share`), lowered by
        this much, and the larger counts: a region smeared along one direction (camera shake) keeps the
        gradient across the smear sharp, so the isotropic share alone reads it as sharp."""
        # The photo gate's taps (`_gaussian_taps`), made on the CPU even where the network is built on the
        # meta device (`count_parameters`): meta tensor maths goes through torch's Python decompositions,
        # which import torch._dynamo (1.2 s).
        g = torch.tensor(_gaussian_taps(), dtype=torch.float32, device="cpu")
        self.register_buffer("kernel", g.reshape(1, 1, 1, 7), persistent=False)
        if self.directional is not None:
            along = torch.zeros((len(DIRECTIONS), 1, 7, 7), device="cpu")
            steps = torch.zeros((2 * len(DIRECTIONS), 1, 3, 3), device="cpu")
            for d, (dy, dx) in enumerate(DIRECTIONS):
                for k in range(7):
                    along[d, 0, 3 + (k - 3) * dy, 3 + (k - 3) * dx] = g[k]
                for half in (0, len(DIRECTIONS)):  # the image's differences, then the smoothed ones'
                    steps[half + d, 0, 1, 1] = -1.0
                    steps[half + d, 0, 1 + dy, 1 + dx] = 1.0
            self.register_buffer("along", along, persistent=False)
            self.register_buffer("steps", steps, persistent=False)

    @staticmethod
    def window_mean(v: torch.Tensor) -> torch.Tensor:
        """The mean over the `WINDOW`-pixel square around each pixel (within the image), as rows then
        columns: the same divisor as a 2-D window, within float rounding, in a twelfth of the time (a
        one-channel megapixel: 0.035 against 0.43 s on the 2-core development machine)."""
        w = BlurGate.WINDOW
        rows = F.avg_pool2d(v, (1, w), 1, (0, w // 2), count_include_pad=False)
        return F.avg_pool2d(rows, (w, 1), 1, (w // 2, 0), count_include_pad=False)

    @staticmethod
    def _energy(y: torch.Tensor) -> torch.Tensor:
        gx = F.pad(y[..., :, 1:] - y[..., :, :-1], (0, 1, 0, 0))
        gy = F.pad(y[..., 1:, :] - y[..., :-1, :], (0, 0, 0, 1))
        return BlurGate.window_mean(gx * gx + gy * gy)

    def smooth(self, y: torch.Tensor) -> torch.Tensor:
        """Luma (B, 1, H, W) through the Gaussian of sigma 1 (edges replicated)."""
        k = cast(torch.Tensor, self.kernel)
        out = F.conv2d(F.pad(y, (3, 3, 0, 0), mode="replicate"), k)
        return F.conv2d(F.pad(out, (0, 0, 3, 3), mode="replicate"), k.transpose(2, 3))

    def directional_share(self, y: torch.Tensor) -> torch.Tensor:
        """Per pixel of luma (B, 1, H, W), the largest over `DIRECTIONS` of the share of the gradient
        energy along a direction (31-pixel window) that survives a 1-D Gaussian of sigma 1 along it, not
        lowered (edges replicated)."""
        n = len(DIRECTIONS)
        smooth = F.conv2d(F.pad(y, (3, 3, 3, 3), mode="replicate"), cast(torch.Tensor, self.along))
        both = F.pad(torch.cat((y.expand(-1, n, -1, -1), smooth), 1), (1, 1, 1, 1), mode="replicate")
        grad = F.conv2d(both, cast(torch.Tensor, self.steps), groups=2 * n)
        energy = self.window_mean(grad * grad)
        return (energy[:, n:] / (energy[:, :n] + 2e-6)).amax(dim=1, keepdim=True)  # 2e-6: one direction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In float32 even where the encoder runs under bf16 autocast: differences of bf16-rounded values
        # moved the weight by up to 0.07 on benchmark inputs, and the thresholds were set in float32.
        with torch.autocast(x.device.type, enabled=False):
            y = x.float().mean(dim=1, keepdim=True)
            share = self._energy(self.smooth(y)) / (self._energy(y) + 4e-6)  # 4e-6: 1e-6 in [0, 1] units
            if self.directional is not None:
                share = torch.maximum(share, self.directional_share(y) - self.directional)
            return ((share - self.lo) / (self.hi - self.lo)).clamp_(0.0, 1.0).to(x.dtype)


PHOTO_BLOCK = 256
PHOTO_BLOCKS = 16


def photo_blocks(h: int, w: int) -> list[tuple[int, int, int, int]]:
    """Where the photo-level blur estimate looks, (y0, y1, x0, x1) each: the whole photo up to
    `PHOTO_BLOCKS` blocks' worth of pixels (1 MP), else a grid of at most that many `PHOTO_BLOCK`-pixel
    blocks spread evenly over it, so a 100 MP scan is judged from 1 MP of it (in under 0.1 s). A function
    of the size alone: a tiled encode and a whole one judge the photo from the same pixels."""
    b = PHOTO_BLOCK
    if h * w <= PHOTO_BLOCKS * b * b or min(h, w) < b:
        return [(0, h, 0, w)]
    ny = max(1, min(h // b, round(math.sqrt(PHOTO_BLOCKS * h / w))))
    nx = max(1, min(w // b, PHOTO_BLOCKS // ny))
    ys = [round(i * (h - b) / max(1, ny - 1)) for i in range(ny)] if ny > 1 else [(h - b) // 2]
    xs = [round(j * (w - b) / max(1, nx - 1)) for j in range(nx)] if nx > 1 else [(w - b) // 2]
    return [(y, y + b, x, x + b) for y in ys for x in xs]


def _gaussian_rows(y: torch.Tensor, taps: list[float], dim: int) -> torch.Tensor:
    """`y` filtered along `dim` by the odd `taps`, edges replicated: shifted weighted sums, which for one
    large grey image are many times faster than a one-channel convolution."""
    r = len(taps) // 2
    n = y.shape[dim]
    first, last = y.narrow(dim, 0, 1), y.narrow(dim, n - 1, 1)
    padded = torch.cat([first] * r + [y] + [last] * r, dim=dim)
    out = padded.narrow(dim, 0, n) * taps[0]
    for k in range(1, len(taps)):
        out.add_(padded.narrow(dim, k, n), alpha=taps[k])
    return out


#: How much the directional estimate is lowered to put it on the isotropic one's scale: on this project's
#: training photos shrunk 2 to 4 times (noisy and JPEG-compressed copies too) their 99th percentiles are
#: 0.523 and 0.401 (`docs/analysis/photo_gate_calibration.py`).
DIRECTIONAL_OFFSET = 0.12


def _gaussian_taps() -> list[float]:
    """The 7 taps of a Gaussian of sigma 1, summing to 1: the blur both gates measure what survives of.
    Plain Python floats, so they are real numbers even where torch builds tensors on the meta device."""
    g = [math.exp(-(k * k) / 2.0) for k in range(-3, 4)]
    total = math.fsum(g)
    return [v / total for v in g]


def _directional_energies(y: torch.Tensor, taps: list[float]) -> list[tuple[float, float]]:
    """Per direction of `DIRECTIONS`: (gradient energy along it after a 1-D Gaussian along it, before),
    both over the pixels far enough from the edge that the replicated border does not reach them."""
    h, w = y.shape
    r = len(taps) // 2
    m = r + 1
    if h <= 2 * m or w <= 2 * m:
        return [(0.0, 0.0)] * len(DIRECTIONS)
    padded = F.pad(y[None, None], (m, m, m, m), mode="replicate")[0, 0]
    found = []
    for dy, dx in DIRECTIONS:

        def at(image: torch.Tensor, k: int, pad: int, dy: int = dy, dx: int = dx) -> torch.Tensor:
            return image[pad + k * dy : pad + k * dy + h, pad + k * dx : pad + k * dx + w]

        smooth = at(padded, -r, m) * taps[0]
        for k in range(1, len(taps)):
            smooth.add_(at(padded, k - r, m), alpha=taps[k])
        energies = []
        for image in (smooth, y):
            inner = image[m : h - m, m : w - m]
            step = image[m + dy : h - m + dy, m + dx : w - m + dx]
            energies.append(float((step - inner).square().sum(dtype=torch.float64)))
        found.append((energies[0], energies[1]))
    return found


def directional_share(luma_blocks: Iterable[torch.Tensor]) -> float:
    """The directional part of `blur_share`, not lowered by `DIRECTIONAL_OFFSET`: per direction of
    `DIRECTIONS`, the share of the gradient energy along it that survives a 1-D Gaussian along it (summed
    over the blocks), the largest of the four."""
    taps = _gaussian_taps()
    along = [[0.0, 0.0] for _ in DIRECTIONS]
    for block in luma_blocks:
        y = block.float()
        for sums, (k, t) in zip(along, _directional_energies(y, taps), strict=True):
            sums[0] += k
            sums[1] += t + 1e-6 * y.numel()
    return max((k / t for k, t in along if t > 0), default=0.0)


def blur_share(luma_blocks: Iterable[torch.Tensor]) -> float:
    """The photo-level blur estimate (blocks (h, w) of luma in [0, 1] units, summed over all of them): the
    larger of two shares of gradient energy that survive a blur of sigma 1 (7 taps, as `BlurGate`'s).

    - Isotropic: of the luma's gradient, through a 2-D Gaussian. Sharp photos measure about 0.2 (0.40 for
      the 99th percentile of this project's training photos, noisy and JPEG-compressed copies too),
      blurred ones 0.4 to 0.8.
    - Directional, for motion blur, which smears along one direction only and leaves the gradient across it
      sharp: `directional_share`, less `DIRECTIONAL_OFFSET`. On training photos through blur-v1's motion blur it
      opens the photo gate fully on 67% of them instead of 35%, and leaves 8% closed instead of 31%.

    A nearly flat photo counts as sharp (1e-6 of energy per pixel is added to each whole, as in `BlurGate`):
    it has nothing to deblur."""
    blocks = [block.float() for block in luma_blocks]
    taps = _gaussian_taps()
    kept = total = 0.0
    for y in blocks:
        total += 1e-6 * y.numel()
        smooth = _gaussian_rows(_gaussian_rows(y, taps, 1), taps, 0)
        for image, into in ((smooth, "kept"), (y, "total")):
            gx = image[:, 1:] - image[:, :-1]
            gy = image[1:, :] - image[:-1, :]
            energy = float(gx.square().sum(dtype=torch.float64) + gy.square().sum(dtype=torch.float64))
            if into == "kept":
                kept += energy
            else:
                total += energy
    if total <= 0:  # no pixels
        return 0.0
    return max(kept / total, directional_share(blocks) - DIRECTIONAL_OFFSET)


def photo_blur_share(pixels: np.ndarray) -> float:
    """`blur_share` of a photo (H, W, 3; uint8, uint16 or float in [0, 1]), from its `photo_blocks`."""
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(pixels.dtype, 1.0)
    h, w = pixels.shape[:2]

    def luma(y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        block = pixels[y0:y1, x0:x1]
        total = block[..., 0].astype(np.float32) + block[..., 1] + block[..., 2]  # not .mean(): 15x slower
        return torch.from_numpy(total * np.float32(1.0 / (3.0 * scale)))

    return blur_share(luma(*b) for b in photo_blocks(h, w))


def tensor_blur_share(x: torch.Tensor) -> list[float]:
    """`blur_share` of each normalised image (B, 3, H, W) of a batch, from its `photo_blocks`."""
    y = (x.float().sum(dim=1) * (1.0 / 6.0) + 0.5).cpu()  # the mean of the channels, from [-1, 1]
    h, w = y.shape[-2:]
    return [blur_share(one[y0:y1, x0:x1] for y0, y1, x0, x1 in photo_blocks(h, w)) for one in y]


class MSSNet(nn.Module):
    """The deblurring network on a normalised image (B, 3, H, W); any H, W (padded to `multiple`)."""

    def __init__(
        self,
        wf: int = 20,
        scale: int = 40,
        vscale: int = 40,
        stages: Sequence[int] = (1, 2, 3),
        levels: int = 3,
        blocks: int = 2,
        halo: int | None = None,
        gate_lo: float | None = None,
        gate_hi: float | None = None,
        gate_directional: float | None = None,
        photo_lo: float | None = None,
        photo_hi: float | None = None,
    ) -> None:
        super().__init__()
        if (photo_lo is None) != (photo_hi is None):
            raise ValueError("a photo gate needs both photo_lo and photo_hi")
        if photo_lo is not None and photo_hi is not None and not 0 <= photo_lo < photo_hi <= 1:
            raise ValueError(f"invalid photo gate [{photo_lo}, {photo_hi}]: needs 0 <= lo < hi <= 1")
        self.photo: tuple[float, float] | None = (
            None if photo_lo is None or photo_hi is None else (float(photo_lo), float(photo_hi))
        )
        """The photo-level gate: the whole residual is scaled by the photo's `blur_share` mapped from
        [lo, hi] to [0, 1], so a sharp photo passes unchanged (None: no photo gate)."""
        if gate_lo is None or gate_hi is None:
            if gate_lo is not None or gate_hi is not None:
                raise ValueError("a blur gate needs both gate_lo and gate_hi")
            self.gate: BlurGate | None = None
        elif not 0 <= gate_lo < gate_hi <= 1:
            raise ValueError(f"invalid blur gate [{gate_lo}, {gate_hi}]: needs 0 <= lo < hi <= 1")
        else:
            self.gate = BlurGate(gate_lo, gate_hi, gate_directional)
        """Scales the residual by how blurred each region looks (None: the residual as it is)."""
        if not stages or min(stages) < 1 or levels < 1 or blocks < 1:
            raise ValueError("MSSNet needs at least one scale, stage, level and block")
        widths = unet_widths(wf, scale, vscale, levels)
        self.widths = widths
        self.n_scales = len(stages)
        self.multiple = 2 ** (self.n_scales - 1 + levels - 1)
        """Inputs are padded to a multiple of this; shifts by it leave the output shifted alike."""
        self.heads = nn.ModuleList()
        self.fusions = nn.ModuleList()
        self.scale_ups = nn.ModuleList()
        self.stages = nn.ModuleList()
        for s, count in enumerate(stages):
            f = 2 ** (self.n_scales - 1 - s)
            self.heads.append(nn.Sequential(nn.Conv2d(3 * f * f, wf, 3, padding=1), ResBlock(wf, 1.0)))
            if s:
                self.scale_ups.append(nn.Conv2d(wf, wf, 1, bias=False))
                self.fusions.append(nn.Conv2d(2 * wf, wf, 3, padding=1))
            chain = [UNetStage(widths, blocks, fuse=s > 0 or k > 0) for k in range(count)]
            self.stages.append(nn.ModuleList(chain))
        self.tail = nn.Conv2d(wf, 3, 3, padding=1)
        with torch.no_grad():
            self.tail.weight.zero_()
            assert self.tail.bias is not None
            self.tail.bias.zero_()
        bound = bound_radius(stages, levels, blocks)
        self.bound_radius = -(-bound // self.multiple) * self.multiple
        """The analytic upper bound of the receptive radius, rounded up to `multiple`."""
        reach = self.bound_radius if halo is None else int(halo)
        self.receptive_radius = max(reach, BlurGate.RADIUS) if self.gate is not None else reach
        """The halo tiled encoding uses: the bound, or a measured one given as `halo` (see the card), and
        at least the gate's reach."""

    def photo_weight(self, share: float) -> float:
        """How much of the residual a photo of `blur_share` `share` gets (1 without a photo gate)."""
        if self.photo is None:
            return 1.0
        lo, hi = self.photo
        return min(1.0, max(0.0, (share - lo) / (hi - lo)))

    def describe(self, share: float) -> str:
        """One line for the person: what the photo gate does to a photo of `blur_share` `share`."""
        weight = self.photo_weight(share)
        if weight <= 0.0 and self.photo is not None:
            return (
                f"Deblur: this photo looks sharp (blur estimate {share:.2f}, below {self.photo[0]:.2f} "
                "where the deblur pass starts), so the deblur pass leaves it alone."
            )
        if weight >= 1.0:
            return f"Deblur: this photo looks blurred (blur estimate {share:.2f}); it is deblurred in full."
        return (
            f"Deblur: this photo looks slightly blurred (blur estimate {share:.2f}); it is deblurred at "
            f"{weight:.0%} strength."
        )

    def forward(self, x: torch.Tensor, shares: Sequence[float] | None = None) -> torch.Tensor:
        """Deblur a batch; with a photo gate, `shares` are the photos' `blur_share` (default: measured on
        `x`, right where `x` is each whole photo; a tile of one must be given its photo's). A batch of
        photos the gate leaves alone (sharp ones) is returned as it is, without running the network."""
        weights: list[float] | None = None
        if self.photo is not None:
            found = tensor_blur_share(x) if shares is None else list(shares)
            if len(found) != x.shape[0]:
                raise ValueError(f"{len(found)} photo shares for a batch of {x.shape[0]}")
            weights = [self.photo_weight(v) for v in found]
            if not any(weights):
                return x
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        prev: tuple[Features, Features] | None = None
        feat: torch.Tensor | None = None
        for s in range(self.n_scales):
            f = 2 ** (self.n_scales - 1 - s)
            inp = F.pixel_unshuffle(xp, f) if f > 1 else xp
            y = self.heads[s](inp)
            if s:
                assert feat is not None and prev is not None
                y = self.fusions[s - 1](torch.cat((y, self.scale_ups[s - 1](_up2(feat))), 1))
                prev = ([_up2(t) for t in prev[0]], [_up2(t) for t in prev[1]])
            for stage in cast(nn.ModuleList, self.stages[s]):
                prev = stage(y, prev)
                y = prev[1][0]
            feat = y
        assert feat is not None
        residual = self.tail(feat)
        if self.gate is not None:
            residual = residual * self.gate(xp)
        if weights is not None and min(weights) < 1.0:
            scale = torch.tensor(weights, dtype=residual.dtype, device=residual.device)
            residual = residual * scale.view(-1, 1, 1, 1)
        out = xp + residual
        return out[..., :h, :w] if ph or pw else out


class DeblurredEncoder(nn.Module):
    """An encoder behind an `MSSNet`: the `liif-deblur` model's encoder (see models/liif-deblur.md).

    With `tuned` (a second copy of the encoder, trained on the deblur pass's output against the sharp
    high-resolution pixels), a photo the photo gate opens is encoded by it: the deblur pass restores in
    low resolution what it can, and the tuned encoder learns what is left, for no more encode work. A photo
    the gate leaves alone keeps the official encoder (the sharp-photo figures cannot change), and one it
    opens partly gets the two encoders' features mixed by the gate's weight, so nothing jumps at the gate.
    """

    def __init__(self, encoder: nn.Module, deblur: MSSNet, tuned: nn.Module | None = None) -> None:
        super().__init__()
        self.deblur = deblur
        self.inner = encoder
        self.tuned = tuned
        self.out_dim = int(cast(int, encoder.out_dim))
        self.depth = int(getattr(encoder, "depth", 0))
        total = deblur.receptive_radius + int(cast(int, encoder.receptive_radius))
        self.receptive_radius = -(-total // deblur.multiple) * deblur.multiple
        """The two radii add up, rounded up to the deblur network's grid, so a crop of a tile on that grid
        with this halo starts on the grid too (the network is shift-equivariant only on its grid)."""

    @property
    def photo_gated(self) -> bool:
        """Whether the deblur pass has a photo gate: then a tile needs its whole photo's `blur_share`."""
        return self.deblur.photo is not None

    def radius_for(self, blur_share: float) -> int:
        """The halo a tile of a photo of this blur estimate needs: the encoder's alone where the photo gate
        skips the network (the network's output is then its input), else `receptive_radius`."""
        if self.deblur.photo is not None and self.deblur.photo_weight(blur_share) <= 0.0:
            return int(cast(int, self.inner.receptive_radius))
        return self.receptive_radius

    def forward(self, x: torch.Tensor, blur_share: float | None = None) -> torch.Tensor:
        shares = None if blur_share is None else [blur_share] * x.shape[0]
        if self.tuned is None:
            return self.inner(self.deblur(x, shares))
        if shares is None and self.deblur.photo is not None:
            shares = tensor_blur_share(x)
        weights = [self.deblur.photo_weight(v) for v in shares] if shares else [1.0] * x.shape[0]
        y = self.deblur(x, shares)
        if not any(weights):
            return self.inner(y)
        tuned = self.tuned(y)
        if min(weights) >= 1.0:
            return tuned
        base = self.inner(y)
        w = torch.tensor(weights, dtype=tuned.dtype, device=tuned.device).view(-1, 1, 1, 1)
        return base + w * (tuned - base)


DEBLUR_ARGS = (
    "wf",
    "scale",
    "vscale",
    "stages",
    "levels",
    "blocks",
    "halo",
    "gate_lo",
    "gate_hi",
    "gate_directional",
    "photo_lo",
    "photo_hi",
)
"""The arguments of a `deblurred` spec besides `encoder_spec`."""


@registry.register("deblurred")
def make_deblurred(encoder_spec: Mapping[str, Any], tuned_encoder: bool = False, **kwargs: Any) -> nn.Module:
    """`{'name': 'deblurred', 'args': {'encoder_spec': {...}, 'wf', 'scale', 'vscale', 'stages', ...}}`;
    `tuned_encoder`: the model also holds a tuned copy of the encoder for photos the gate opens."""
    unknown = set(kwargs) - set(DEBLUR_ARGS)
    if unknown:
        raise TypeError(f"unknown deblurred arguments {sorted(unknown)}")
    tuned = registry.make(encoder_spec) if tuned_encoder else None
    return DeblurredEncoder(registry.make(encoder_spec), MSSNet(**kwargs), tuned)


def count_parameters(args: Mapping[str, Any]) -> int:
    """Parameters of an `MSSNet(**args)`, counted without allocating its weights."""
    with torch.device("meta"):
        net = MSSNet(**{k: v for k, v in args.items() if k in DEBLUR_ARGS})
    return sum(p.numel() for p in net.parameters())
