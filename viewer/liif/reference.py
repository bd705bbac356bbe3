"""The paper's query as the official code runs it, made stateless: the benchmark's baseline.

It unfolds the whole feature map on every call and runs the decoder four times, once per ensemble member,
with `grid_sample` lookups, exactly like `LIIF.query_rgb` in github.com/yinboc/liif.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from viewer.liif.liif import LIIF


def make_coord(shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """Pixel-centre coordinates of an (H, W) grid in [-1, 1], shape (H, W, 2), as the reference makes them."""
    seqs = []
    for n in shape:
        r = 1.0 / n
        seqs.append(-1.0 + r + (2 * r) * torch.arange(n, device=device).float())
    return torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1)


def query_rgb(model: LIIF, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """Reference query: feat (B, C, H, W), coord and cell (B, Q, 2) -> RGB (B, Q, 3), normalised units."""
    if model.feat_unfold:
        feat = F.unfold(feat, 3, padding=1).view(feat.shape[0], feat.shape[1] * 9, *feat.shape[2:])
    if model.local_ensemble:
        vx_lst, vy_lst, eps = [-1, 1], [-1, 1], 1e-6
    else:
        vx_lst, vy_lst, eps = [0], [0], 0.0
    rx = 2 / feat.shape[-2] / 2
    ry = 2 / feat.shape[-1] / 2
    feat_coord = (
        make_coord(feat.shape[-2:], feat.device)
        .permute(2, 0, 1)
        .unsqueeze(0)
        .expand(feat.shape[0], 2, *feat.shape[-2:])
    )
    preds, areas = [], []
    for vx in vx_lst:
        for vy in vy_lst:
            c = coord.clone()
            c[:, :, 0] += vx * rx + eps
            c[:, :, 1] += vy * ry + eps
            c.clamp_(-1 + 1e-6, 1 - 1e-6)
            grid = c.flip(-1).unsqueeze(1)
            q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[:, :, 0, :].permute(
                0, 2, 1
            )
            q_coord = F.grid_sample(feat_coord, grid, mode="nearest", align_corners=False)[:, :, 0, :]
            q_coord = q_coord.permute(0, 2, 1)
            rel = coord - q_coord
            rel[:, :, 0] *= feat.shape[-2]
            rel[:, :, 1] *= feat.shape[-1]
            inp = torch.cat([q_feat, rel], dim=-1)
            if model.cell_decode:
                rel_cell = cell.clone()
                rel_cell[:, :, 0] *= feat.shape[-2]
                rel_cell[:, :, 1] *= feat.shape[-1]
                inp = torch.cat([inp, rel_cell], dim=-1)
            bs, q = coord.shape[:2]
            preds.append(model.imnet(inp.view(bs * q, -1)).view(bs, q, -1))
            areas.append(torch.abs(rel[:, :, 0] * rel[:, :, 1]) + 1e-9)
    total = torch.stack(areas).sum(dim=0)
    if model.local_ensemble:
        areas = [areas[3], areas[2], areas[1], areas[0]]
    ret = torch.zeros_like(preds[0])
    for pred, area in zip(preds, areas, strict=True):
        ret = ret + pred * (area / total).unsqueeze(-1)
    return ret


def batched_predict(
    model: LIIF, inp: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor, bsize: int = 30000
) -> torch.Tensor:
    """The reference's test-time loop: encode once, then query in batches of `bsize` (as in test.py)."""
    with torch.no_grad():
        feat = model.encode(inp)
        n = coord.shape[1]
        out = []
        for ql in range(0, n, bsize):
            qr = min(ql + bsize, n)
            out.append(query_rgb(model, feat, coord[:, ql:qr, :], cell[:, ql:qr, :]))
        return torch.cat(out, dim=1)
