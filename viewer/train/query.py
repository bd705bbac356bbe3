"""A differentiable LIIF query for training, batched over images, with the first layer split.

It computes exactly the paper's formulation (the same function as `viewer.liif.reference.query_rgb`): the
decoder input [unfold3x3(z*), x - v*, cell] goes through a first Linear layer whose feature part is a 3x3
convolution of the feature map, computed once per latent instead of once per query and ensemble member.
Gradients flow to the encoder (through `feat`) and to every decoder weight, so the same code trains a
decoder alone or the whole model, and runs a teacher cheaply under `torch.no_grad()`.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from viewer.engine.device import cpu_has_fast_bf16
from viewer.liif.liif import LIIF
from viewer.liif.lm import ModulatedMLP
from viewer.liif.query import latent_centres, nearest_index

_EPS_SHIFT = 1e-6
_CLAMP = 1 - 1e-6


def conv_autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast for a training step's convolutions on a CPU with native bf16 (AVX512-BF16 or AMX),
    else nothing: weights, optimiser and loss stay fp32. On the 2-core Xeon with AMX a `deblur-tune` step
    took 0.59 to 0.68 s instead of 1.02 to 1.10, a `deblur` step 0.28 to 0.35 instead of 0.45 to 0.54
    (channels-last either way; `python docs/analysis/train_precision.py`), and a 300-step run ended within
    0.0013 dB of the same run in fp32 (docs/TRAINING-LOG.md)."""
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def project(model: LIIF, feat: torch.Tensor) -> torch.Tensor:
    """Per-latent part of the decoder's first layer (pre-ReLU, bias included): (B, hidden, H, W); for a
    modulated decoder, every layer's shifts."""
    k = 3 if model.feat_unfold else 1
    if isinstance(model.imnet, ModulatedMLP):
        if model.training:
            # Training on a CPU with native bf16: the hypernetwork's two convolutions, most of a step's
            # work, run about twice as fast under bf16 autocast (weights and the rest of the step stay fp32).
            with conv_autocast(feat.device):
                return model.imnet.latent_rows(feat, k).float()
        return model.imnet.latent_rows(feat, k)
    first = model.imnet.linears()[0]
    c = feat.shape[1]
    n_feat = c * k * k
    # unfold's channel order (c, ky, kx) is a conv kernel's (out, c, ky, kx) layout; zero padding as unfold.
    weight = first.weight[:, :n_feat].reshape(first.out_features, c, k, k)
    return F.conv2d(feat, weight, first.bias, padding=k // 2)


def train_query(model: LIIF, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """RGB in normalised units at coord (B, Q, 2) with cell (B, Q, 2), from feat (B, C, H, W): (B, Q, 3)."""
    b, _, h, w = feat.shape
    q = coord.shape[1]
    dev = feat.device
    imnet = model.imnet
    # Per-latent rows (B*H*W, width), so each query's part is one contiguous row gather.
    proj = project(model, feat)
    proj = proj.permute(0, 2, 3, 1).reshape(b * h * w, proj.shape[1])
    row_c, col_c = latent_centres(h, dev), latent_centres(w, dev)
    if model.local_ensemble:
        offsets, eps = [(-1, -1), (-1, 1), (1, -1), (1, 1)], _EPS_SHIFT
    else:
        offsets, eps = [(0, 0)], 0.0
    base = (torch.arange(b, device=dev) * (h * w)).unsqueeze(1)
    idx, rels = [], []
    for vx, vy in offsets:
        cr = (coord[..., 0] + (vx / h + eps)).clamp(-_CLAMP, _CLAMP)
        cc = (coord[..., 1] + (vy / w + eps)).clamp(-_CLAMP, _CLAMP)
        i, j = nearest_index(cr, h), nearest_index(cc, w)
        rels.append(torch.stack(((coord[..., 0] - row_c[i]) * h, (coord[..., 1] - col_c[j]) * w), dim=-1))
        idx.append(base + i * w + j)
    n_members = len(offsets)
    rel_all = torch.stack(rels, dim=1)  # (B, K, Q, 2)
    extra = rel_all
    if model.cell_decode:
        rel_cell = cell * torch.tensor([h, w], device=dev, dtype=cell.dtype)
        extra = torch.cat((rel_all, rel_cell.unsqueeze(1).expand(b, n_members, q, 2)), dim=-1)
    rows = proj.index_select(0, torch.stack(idx, dim=1).reshape(-1))  # (B*K*Q, width)
    extra = extra.reshape(-1, extra.shape[-1])
    if isinstance(imnet, ModulatedMLP):
        y = imnet.tail(imnet.first_layer(rows, extra), rows[:, imnet.widths[0] : imnet.shift_width])
    else:
        first = imnet.linears()[0]
        n_feat = feat.shape[1] * (9 if model.feat_unfold else 1)
        w_extra = first.weight[:, n_feat : n_feat + extra.shape[-1]]
        x = torch.addmm(rows, extra, w_extra.t())
        y = imnet.layers[2:](torch.relu(x))  # the layers after the first Linear + ReLU
    preds = y.view(b, n_members, q, -1)
    if n_members == 1:
        return preds[:, 0]
    areas = (rel_all[..., 0] * rel_all[..., 1]).abs() + 1e-9
    weights = areas.flip(1) / areas.sum(dim=1, keepdim=True)  # diagonal swap: 0<->3, 1<->2
    return (preds * weights.unsqueeze(-1)).sum(dim=1)
