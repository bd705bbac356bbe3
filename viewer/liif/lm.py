"""The latent-modulated decoder of `liif-lm`: heavy work once per latent, a narrow MLP per output pixel.

LIIF's decoder runs a 580-256-256-256-256-3 MLP for each of the four ensemble members of every output
pixel (about 1.39M multiply-adds per pixel). Following the idea of latent modulation (LMF, He et al.,
CVPR 2024), this decoder splits the work by what it depends on:

- per latent (once per source pixel, cached with the latents): a hypernetwork reads the 3x3 neighbourhood
  of the latent, `h = relu(W_h · unfold(z) + b_h)`, optionally refines it with residual blocks,
  `h += B_k · relu(A_k · h + a_k) + b_k` (their last layer starts at zero, so a model grown by blocks starts
  as the model it grew from), and writes one shift vector per layer of the query MLP, `s = W_s · h + b_s`;
- per query (every ensemble member of every output pixel): a narrow MLP of the relative coordinate and
  cell, `x1 = relu(s_1 + W_q · [rel, cell])`, `x_{k+1} = relu(W_k · x_k + s_{k+1})`, `rgb = W_o · x_L + b_o`.
- optionally (`coord_weights`), the hypernetwork also writes per-latent additions `d_r, d_c` to the first
  layer's weights of the relative coordinate, `x1 = relu(s_1 + W_q · [rel, cell] + d_r * rel_r + d_c *
  rel_c)`: each latent can then turn and steepen its units' ramps across the pixel (where an edge runs),
  for 2 multiply-adds per first-layer unit and query. The additions come last in the cached row, so a
  model grown with them (their hypernetwork rows at zero) starts as the model it grew from.
- optionally also (`coord_quadratic`), per-latent weights of the offset's second-order terms, `+ d_rr *
  rel_r^2 + d_cc * rel_c^2 + d_rc * rel_r * rel_c`: a unit's response across the pixel can then bend
  (a ridge along a stroke, a blob at a dot) where the latent needs it, for 3 more multiply-adds per unit.

Nothing cached depends on the cell, so one cache serves every zoom level; the cell enters the query's first
layer, as in LIIF. The same function is computed three ways: `forward` on the paper's concatenated input
(for the reference query and tests), `latent_rows` + `tail` as the training query and the engine run it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from viewer.liif.models import registry


class ModulatedMLP(nn.Module):
    """A per-latent hypernetwork that shifts the hidden units of a narrow per-query MLP (see module doc).

    `in_dim` is LIIF's decoder input width (unfolded features + `query_dim`), `hidden_list` the query
    MLP's widths, `hyper_hidden` the hypernetwork's hidden width, `hyper_blocks` its residual blocks.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_list: Sequence[int],
        hyper_hidden: int = 256,
        query_dim: int = 4,
        hyper_blocks: int = 0,
        coord_weights: bool = False,
        coord_quadratic: bool = False,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in hidden_list]
        bad = hyper_blocks < 0 or not 0 < query_dim < in_dim or (coord_quadratic and not coord_weights)
        if not widths or min(widths) < 1 or hyper_hidden < 1 or bad:
            raise ValueError("a modulated decoder needs positive widths and a query part of its input")
        self.widths = widths
        self.coord_weights = bool(coord_weights)
        self.coord_terms = (5 if coord_quadratic else 2) if coord_weights else 0
        """Per-latent weight vectors of the offset's terms (`coord_basis`): 0, 2 (linear) or 5 (quadratic)."""
        self.query_dim = int(query_dim)
        self.feat_in = int(in_dim) - self.query_dim
        self.hyper_in = nn.Linear(self.feat_in, hyper_hidden)
        self.blocks = nn.ModuleList(
            nn.ModuleList([nn.Linear(hyper_hidden, hyper_hidden), nn.Linear(hyper_hidden, hyper_hidden)])
            for _ in range(int(hyper_blocks))
        )
        with torch.no_grad():
            for block in self.blocks:
                last = cast(nn.Linear, cast(nn.ModuleList, block)[1])
                last.weight.zero_()
                last.bias.zero_()
        self.hyper_out = nn.Linear(hyper_hidden, self.latent_width)
        self.query = nn.Linear(self.query_dim, widths[0], bias=False)
        self.mids = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], out_dim)

    def linears(self) -> list[nn.Linear]:
        """The per-query MLP's Linear layers in order (the hypernetwork's are `hyper_in`, `hyper_out`)."""
        return [self.query, *(cast(nn.Linear, m) for m in self.mids), self.out]

    def block_layers(self) -> list[tuple[nn.Linear, nn.Linear]]:
        """The hypernetwork's residual blocks as (inner, outer) Linear pairs."""
        return [
            (cast(nn.Linear, b[0]), cast(nn.Linear, b[1])) for b in cast(list[nn.ModuleList], self.blocks)
        ]

    def _refine(self, h: torch.Tensor, conv: bool) -> torch.Tensor:
        """Apply the residual blocks to hidden units `h`: (N, hidden), or (B, hidden, H, W) with `conv`."""
        for inner, outer in self.block_layers():
            if conv:
                wa, wb = inner.weight[:, :, None, None], outer.weight[:, :, None, None]
                t = torch.relu(F.conv2d(h, wa.to(h.dtype), inner.bias.to(h.dtype)))
                h = h + F.conv2d(t, wb.to(h.dtype), outer.bias.to(h.dtype))
            else:
                h = h + outer(torch.relu(inner(h)))
        return h

    @property
    def shift_width(self) -> int:
        """Values cached per latent for the shifts: one per query-MLP unit."""
        return sum(self.widths)

    @property
    def latent_width(self) -> int:
        """Values cached per latent: every layer's shift, then the coordinate weights' additions if any."""
        return self.shift_width + self.coord_terms * self.widths[0]

    def first_layer(self, rows: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        """The first layer's pre-activations (N, widths[0]) from cached `rows` (N, latent_width) and the
        query part `extra` (N, query_dim): [rel_r, rel_c, cell...]."""
        w0 = self.widths[0]
        first = torch.addmm(rows[:, :w0], extra, self.query.weight.t())
        if self.coord_terms:
            at, n = self.shift_width, self.coord_terms
            basis = coord_basis(extra[:, 0], extra[:, 1], n)
            d = rows[:, at : at + n * w0].reshape(-1, n, w0)
            first = first + (d * basis.unsqueeze(-1)).sum(dim=1)
        return first

    def latent_rows(self, feat: torch.Tensor, kernel: int) -> torch.Tensor:
        """Per-latent shifts (B, latent_width, H, W) of a feature map (B, C, H, W), zero-padded as unfold.

        `kernel` is 3 with LIIF's feature unfolding (the hypernetwork's first layer is then a 3x3 conv),
        else 1.
        """
        c = feat.shape[1]
        w = self.hyper_in.weight.reshape(self.hyper_in.out_features, c, kernel, kernel)
        h = torch.relu(
            F.conv2d(feat, w.to(feat.dtype), self.hyper_in.bias.to(feat.dtype), padding=kernel // 2)
        )
        h = self._refine(h, conv=True)
        w2 = self.hyper_out.weight.to(feat.dtype)[:, :, None, None]
        return F.conv2d(h, w2, self.hyper_out.bias.to(feat.dtype))

    def tail(self, first: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        """From the first layer's pre-activations (N, widths[0]) and the later shifts (N, sum(widths[1:]))
        to RGB (N, out_dim)."""
        x = torch.relu(first)
        at = 0
        for lin in self.linears()[1:-1]:
            n = lin.out_features
            x = torch.relu(torch.addmm(shifts[:, at : at + n], x, lin.weight.t()))
            at += n
        return self.out(x)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        """The paper's form: `inp` (..., in_dim) is [unfold(z), rel_coord, rel_cell] for one member."""
        shape = inp.shape[:-1]
        flat = inp.reshape(-1, inp.shape[-1])
        s = self.hyper_out(self._refine(torch.relu(self.hyper_in(flat[:, : self.feat_in])), conv=False))
        first = self.first_layer(s, flat[:, self.feat_in :])
        return self.tail(first, s[:, self.widths[0] : self.shift_width]).view(*shape, -1)

    def per_latent_macs(self) -> int:
        """Multiply-adds of the hypernetwork for one latent."""
        hidden = self.hyper_in.out_features
        return self.feat_in * hidden + 2 * hidden * hidden * len(self.blocks) + hidden * self.latent_width

    def per_member_macs(self) -> int:
        """Multiply-adds of one query-MLP evaluation (one ensemble member of one pixel)."""
        mids = sum(m.in_features * m.out_features for m in self.linears()[1:-1])
        coord = self.coord_terms * self.widths[0]
        return self.query_dim * self.widths[0] + coord + mids + self.widths[-1] * self.out.out_features


@registry.register("lm-mlp")
def make_lm_mlp(
    in_dim: int,
    out_dim: int,
    hidden_list: list[int],
    hyper_hidden: int = 256,
    query_dim: int = 4,
    hyper_blocks: int = 0,
    coord_weights: bool = False,
    coord_quadratic: bool = False,
) -> nn.Module:
    """`{'name': 'lm-mlp', 'args': {'out_dim': 3, 'hidden_list': [...], 'hyper_hidden': 256}}`, with
    optional `'hyper_blocks': n` (residual blocks in the hypernetwork; absent means none),
    `'coord_weights': true` (per-latent coordinate weights; absent means none) and, with them,
    `'coord_quadratic': true` (their second-order terms too)."""
    return ModulatedMLP(
        in_dim,
        out_dim,
        list(hidden_list),
        hyper_hidden,
        query_dim,
        hyper_blocks,
        coord_weights,
        coord_quadratic,
    )


def coord_basis(rel_r: torch.Tensor, rel_c: torch.Tensor, terms: int) -> torch.Tensor:
    """The offset's terms that per-latent coordinate weights multiply, (N, terms): [rel_r, rel_c] and,
    for 5 terms, [rel_r^2, rel_c^2, rel_r * rel_c] after them (the order of their cached rows)."""
    parts = [rel_r, rel_c]
    if terms == 5:
        parts += [rel_r * rel_r, rel_c * rel_c, rel_r * rel_c]
    return torch.stack(parts, dim=1)
