"""The fast LIIF query: only the needed neighbourhoods, one batched decoder call, a split first layer.

The paper's decoder input for a query x and latent z* is [unfold3x3(z*), x - v*, cell]. The first Linear
layer is therefore a sum of a per-latent part (W_f · unfold(z*) + b, the same for every query that uses z*)
and a tiny per-query part (W_x · rel_coord + W_c · rel_cell). The per-latent part is exactly a 3x3
convolution of the feature map, computed once per block of latents and cached (`ProjectionCache`), so a
query costs a gather plus the remaining layers. The four ensemble members run as one batch.

Conventions follow the reference code: coordinates are pixel centres in [-1, 1] in (row, col) order; the
nearest latent is found as `grid_sample(mode='nearest', align_corners=False)` does, after the ±1e-6 shift
and clamping; the ensemble's area weights are swapped diagonally.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from viewer.liif.liif import LIIF
from viewer.liif.lm import ModulatedMLP, coord_basis

_EPS_SHIFT = 1e-6
_CLAMP = 1 - 1e-6


class LatentSource(Protocol):
    """An encoded photo as the query reads it: its latent grid's size and device, and exact crops."""

    height: int
    width: int
    device: torch.device

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Latents [y0, y1) x [x0, x1) as float32 (C, h, w)."""
        ...


def relu_(x: torch.Tensor) -> torch.Tensor:
    """ReLU in place. On a CPU a bf16 tensor is clamped as its int16 bit patterns (a negative bf16 is a
    negative int16, a non-negative one keeps its bits): the same values as `torch.relu_`, in 37 instead
    of 209 us for 51,200 x 48 values on the 2-core AVX512-BF16 machine, where torch converts bf16 to float
    and back for it."""
    if x.dtype == torch.bfloat16 and x.device.type == "cpu":
        x.view(torch.int16).clamp_min_(0)
        return x
    return torch.relu_(x)


def _fused_linear_relu_works(dtype: torch.dtype) -> bool:
    """Whether oneDNN's fused linear+bias+ReLU is available here (it saves a pass over the activations)."""
    op = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    try:
        x = torch.randn(4, 8, dtype=dtype)
        w = torch.randn(5, 8, dtype=dtype)
        b = torch.randn(5, dtype=dtype)
        got = op(x, w, b, "relu", [], "")
        want = torch.relu(F.linear(x, w, b))
        return bool(torch.allclose(got.float(), want.float(), atol=1e-2, rtol=1e-2))
    except (RuntimeError, TypeError, NotImplementedError):
        return False


class Decoder:
    """A LIIF decoder's weights laid out for the split first layer, in one compute dtype.

    Immutable after construction, so several threads may share it.
    """

    def __init__(self, model: LIIF, dtype: torch.dtype, device: torch.device) -> None:
        c = model.feat_dim
        k = 3 if model.feat_unfold else 1
        n_feat_in = c * k * k
        self.dtype = dtype
        self.device = device
        self.local_ensemble = model.local_ensemble
        self.cell_decode = model.cell_decode
        self.kernel = k
        imnet = model.imnet

        def lowered(w: torch.Tensor) -> torch.Tensor:
            return w.detach().to(device=device, dtype=dtype).contiguous()

        def exact(w: torch.Tensor) -> torch.Tensor:
            return w.detach().to(device=device, dtype=torch.float32).contiguous()

        self.modulated = isinstance(imnet, ModulatedMLP)
        """A latent-modulated decoder (liif-lm): the cached rows are its hypernetwork's shifts for every
        query layer, and the query MLP adds them (see `viewer.liif.lm`)."""
        self.hyper: tuple[torch.Tensor, torch.Tensor] | None = None
        self.hyper_blocks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        if isinstance(imnet, ModulatedMLP):
            width = imnet.hyper_in.out_features
            self.proj_weight = exact(imnet.hyper_in.weight).reshape(width, c, k, k)
            self.proj_bias = exact(imnet.hyper_in.bias)
            self.hyper = (exact(imnet.hyper_out.weight)[:, :, None, None], exact(imnet.hyper_out.bias))
            self.hyper_blocks = [
                (
                    exact(a.weight)[:, :, None, None],
                    exact(a.bias),
                    exact(b.weight)[:, :, None, None],
                    exact(b.bias),
                )
                for a, b in imnet.block_layers()
            ]
            self.hidden = imnet.latent_width
            self.first_width = imnet.widths[0]
            self.shift_width = imnet.shift_width
            self.coord_terms = imnet.coord_terms
            q = exact(imnet.query.weight).t()
            self.w_rel = q[:2].contiguous()
            self.w_cell = q[2:4].contiguous() if self.cell_decode else None
            self.layers: list[tuple[torch.Tensor, torch.Tensor | None]] = [
                (lowered(m.weight), None) for m in imnet.linears()[1:-1]
            ]
            self.layers.append((lowered(imnet.out.weight), lowered(imnet.out.bias)))
        else:
            lins = imnet.linears()
            w1, b1 = exact(lins[0].weight), exact(lins[0].bias)
            self.hidden = int(w1.shape[0])
            self.first_width = self.shift_width = self.hidden
            self.coord_terms = 0
            # unfold's channel order is (c, ky, kx), which is exactly a conv kernel's (out, c, ky, kx) layout.
            self.proj_weight = w1[:, :n_feat_in].reshape(self.hidden, c, k, k).contiguous()
            self.proj_bias = b1
            self.w_rel = w1[:, n_feat_in : n_feat_in + 2].t().contiguous()
            self.w_cell = w1[:, n_feat_in + 2 : n_feat_in + 4].t().contiguous() if self.cell_decode else None
            self.layers = [(lowered(lin.weight), lowered(lin.bias)) for lin in lins[1:]]
        self._fused = device.type == "cpu" and _fused_linear_relu_works(dtype)
        self.bag_layout: tuple[int, int] | None = None
        """Where a decoder with coordinate weights has its cached row as whole segments of the first
        layer's width: (segments per latent, segment of the first term's weights d_r); see `run_bag`."""
        if self.coord_terms and self.shift_width % self.first_width == 0:
            a_r = self.shift_width // self.first_width
            self.bag_layout = (a_r + self.coord_terms, a_r)
        self.query_width = self.shift_width if self.bag_layout is not None else self.hidden
        """Values gathered per query: the cached row, less the coordinate weights (`run_bag` sums them in
        row and column parts)."""

    def run_bag(
        self,
        table: torch.Tensor,
        bag: torch.Tensor,
        shift_tables: list[torch.Tensor],
        shift_rows: torch.Tensor,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """A decoder with coordinate weights on rows of a first-layer-wide `table` (see
        `GridQuery._separable_band`): per query, its first layer's pre-activation is the sum of the rows
        `bag` (N, b), weighted by `weights` (N, b) where given, in one fused pass (`embedding_bag`), and
        hidden layer k's shifts are the rows `shift_rows` (N,) of `shift_tables[k]`. Float32 (N, 3)."""
        first = F.embedding_bag(bag, table, mode="sum", per_sample_weights=weights)
        # One contiguous gather per layer: the layer's product is accumulated into it in place.
        shifts = [t.index_select(0, shift_rows) for t in shift_tables]
        return self.hidden_layers(relu_(first), shifts).float()

    @property
    def hidden_widths(self) -> list[int]:
        """The widths of the layers after the first, but the last (a modulated decoder's shifted layers)."""
        return [int(weight.shape[0]) for weight, _bias in self.layers[:-1]]

    def hidden_layers(self, x: torch.Tensor, shifts: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Apply the layers after the first (ReLU between them, none after the last); a modulated
        decoder's hidden layers add their per-latent `shifts` (one (N, width) tensor per layer, overwritten)
        instead of a bias."""
        last = len(self.layers) - 1
        if shifts is not None:
            for (weight, _bias), shift in zip(self.layers[:last], shifts, strict=True):
                # In place on the gathered rows (a fresh tensor): no copy of the shifts.
                x = relu_(shift.addmm_(x, weight.t()))
            return self._out(x)
        for weight, bias in self.layers[:last]:
            if self._fused:
                x = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu", [], "")
            else:
                x = relu_(F.linear(x, weight, bias))
        return self._out(x)

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        """The last layer, (N, 3). In bf16 it is computed as (3, N) = W @ x^T and returned transposed: the
        same values (each is one dot product either way), in 0.21 instead of 0.34 ms for 51,200 queries of
        a 48-wide decoder on the 2-core AVX512-BF16 machine (in fp32 the (N, 3) product was the faster)."""
        weight, bias = self.layers[-1]
        if self.dtype != torch.bfloat16:
            return F.linear(x, weight, bias)
        if bias is None:
            return (weight @ x.t()).t()
        return torch.addmm(bias[:, None], weight, x.t()).t()

    def run(
        self,
        rows: torch.Tensor,
        extra: torch.Tensor,
        w_extra: torch.Tensor,
        basis: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The decoder on gathered per-latent `rows` (N, hidden; overwritten) and the per-query first-layer
        columns `extra` (N, e) with their weights `w_extra` (e, first width): float32 (N, 3). A decoder
        with coordinate weights also takes the offset's terms `basis` (N, terms; `coord_basis`)."""
        if self.modulated:
            w0, at = self.first_width, self.shift_width
            first = rows[:, :w0].addmm_(extra, w_extra)
            if self.coord_terms:  # per-latent weights of the offset's terms
                assert basis is not None
                for t in range(self.coord_terms):
                    first.addcmul_(rows[:, at + t * w0 : at + (t + 1) * w0], basis[:, t : t + 1])
            shifts, start = [], w0
            for n in self.hidden_widths:
                shifts.append(rows[:, start : start + n])
                start += n
            return self.hidden_layers(relu_(first), shifts).float()
        return self.hidden_layers(relu_(rows.addmm_(extra, w_extra))).float()

    def project(self, source: LatentSource, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """Per-latent first-layer activations (pre-ReLU) for latents [r0, r1) x [c0, c1), shape (h, w, hidden).

        Uses the true zero padding of the feature map at the image border, so a block's values do not
        depend on which render asked for it (nor on how the map is tiled).
        """
        h, w = source.height, source.width
        p = self.kernel // 2
        y0, y1, x0, x1 = max(0, r0 - p), min(h, r1 + p), max(0, c0 - p), min(w, c1 + p)
        crop = source.crop(y0, y1, x0, x1).unsqueeze(0).float()
        pad = (p - (c0 - x0), p - (x1 - c1), p - (r0 - y0), p - (y1 - r1))
        if any(pad):
            crop = F.pad(crop, pad)
        if self.device.type == "cpu":
            # oneDNN's native layout: a 64 x 320 block's projection took 29 instead of 46 ms in fp32, the
            # hypernetwork's 24 instead of 53 ms in bf16 (2-core AVX512-BF16 machine), and the (h, w, C)
            # result below needs no transposing copy.
            crop = crop.contiguous(memory_format=torch.channels_last)
        if self.hyper is not None:
            return self._shifts(crop)
        out = F.conv2d(crop, self.proj_weight, self.proj_bias)
        return out[0].permute(1, 2, 0).to(self.dtype).contiguous()

    def _shifts(self, crop: torch.Tensor) -> torch.Tensor:
        """A modulated decoder's per-latent shifts of a zero-padded feature crop (1, C, h+2p, w+2p), as
        (h, w, latent width). Where the query runs in bf16, the hypernetwork's two convolutions do too
        (autocast, fp32 accumulation): they are most of a low zoom's work, and the shifts are kept in
        bf16 anyway."""
        assert self.hyper is not None
        w2, b2 = self.hyper

        def hypernet() -> torch.Tensor:
            h = relu_(F.conv2d(crop, self.proj_weight, self.proj_bias))
            for wa, ba, wb, bb in self.hyper_blocks:
                h = h + F.conv2d(relu_(F.conv2d(h, wa, ba)), wb, bb)
            return F.conv2d(h, w2, b2)

        if self.dtype == torch.bfloat16 and self.device.type in ("cpu", "cuda"):
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                out = hypernet()
        else:
            out = hypernet()
        return out[0].permute(1, 2, 0).to(self.dtype).contiguous()


class ProjectionCache:
    """Blocks of the decoder's per-latent projection for one encoded photo, under a memory budget (LRU).

    It reads latents only through `source.crop`, so a lazily encoded store is encoded where it is queried.
    Thread-safe: the viewport worker and an export may query the same image, and the threads of one render
    share its blocks (a block one thread is projecting, another waits for rather than projecting it too).

    It holds its source weakly: the source keeps its caches (`Latents.projection`), and a strong reference
    back made a cycle that kept a closed photo's encoded tiles and projections in memory until Python's
    cyclic collector ran (in the viewer, 0.6 GiB after a few 100 MP photos).
    """

    def __init__(
        self, source: LatentSource, decoder: Decoder, *, block: int = 32, budget_bytes: int = 512 << 20
    ):
        self._source = weakref.ref(source)
        self.height = source.height
        self.width = source.width
        self.device = source.device
        self.decoder = decoder
        self.block = block
        itemsize = torch.empty((), dtype=decoder.dtype).element_size()
        self._max_blocks = max(16, budget_bytes // (block * block * decoder.hidden * itemsize))
        self._blocks: OrderedDict[tuple[int, int], torch.Tensor] = OrderedDict()
        self._pending: dict[tuple[int, int], Future[torch.Tensor]] = {}  # blocks being projected
        self._lock = threading.Lock()

    @property
    def source(self) -> LatentSource:
        """The encoded photo this cache projects (alive while anyone uses it: its users hold it)."""
        source = self._source()
        if source is None:
            raise ReferenceError("the encoded photo of this projection cache was closed")
        return source

    def _block(self, bi: int, bj: int) -> torch.Tensor:
        key = (bi, bj)
        with self._lock:
            hit = self._blocks.get(key)
            if hit is not None:
                self._blocks.move_to_end(key)
                return hit
            pending = self._pending.get(key)
            mine = pending is None
            if pending is None:
                pending = self._pending[key] = Future()
        if not mine:  # another thread is projecting this block: wait for it instead of doing it twice
            return pending.result()
        h, w = self.height, self.width
        b = self.block
        try:
            val = self.decoder.project(
                self.source, bi * b, min(h, (bi + 1) * b), bj * b, min(w, (bj + 1) * b)
            )
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            self._blocks[key] = val
            del self._pending[key]
            while len(self._blocks) > self._max_blocks:
                self._blocks.popitem(last=False)
        pending.set_result(val)
        return val

    def rows(self, rows: list[int], c0: int, c1: int) -> torch.Tensor:
        """The projection of the latent rows `rows` across the whole blocks that cover columns [c0, c1]
        (inclusive), (len(rows), width, hidden); like `box`, its columns start at c0 // block * block. Reads
        only those rows of the blocks: a render that needs a few rows at a time copies no whole box."""
        b = self.block
        out = []
        for r in rows:
            bi = r // b
            out.append(torch.cat([self._block(bi, bj)[r - bi * b] for bj in range(c0 // b, c1 // b + 1)]))
        return torch.stack(out)

    def box(self, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """Projection covering latents [r0, r1] x [c0, c1] (inclusive), assembled from whole blocks.

        The result starts at block corner (r0 // block * block, c0 // block * block); callers index it with
        the latent index minus that corner.
        """
        b = self.block
        rows = []
        for bi in range(r0 // b, r1 // b + 1):
            rows.append(torch.cat([self._block(bi, bj) for bj in range(c0 // b, c1 // b + 1)], dim=1))
        return rows[0] if len(rows) == 1 else torch.cat(rows, dim=0)


def latent_centres(n: int, device: torch.device) -> torch.Tensor:
    """Centres of n latent cells in [-1, 1], computed as the reference's make_coord does (float32)."""
    r = 1.0 / n
    return (-1.0 + r) + (2 * r) * torch.arange(n, device=device).float()


def nearest_index(c: torch.Tensor, n: int) -> torch.Tensor:
    """Index grid_sample(mode='nearest', align_corners=False) picks for normalised coordinate c."""
    ix = ((c + 1) * n - 1) / 2
    return torch.round(ix).clamp_(0, n - 1).long()


@dataclass(frozen=True)
class EnsembleTerms:
    """The parts of a local-ensemble query, for K members (4, or 1 without the ensemble) and N queries.

    `rows`/`cols` (K, N) index the latent each member uses, `rel` (K, N, 2) is the query's offset from that
    latent's centre in latent units, `preds` (K, N, 3) the decoder outputs (normalised units), `weights`
    (K, N) the area weights after the diagonal swap, summing to 1 over K.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    rel: torch.Tensor
    preds: torch.Tensor
    weights: torch.Tensor

    def blend(self) -> torch.Tensor:
        """The query's RGB: the weighted sum of the members' predictions, (N, 3)."""
        out = self.preds[0] * self.weights[0].unsqueeze(-1)
        for k in range(1, self.preds.shape[0]):
            out = out + self.preds[k] * self.weights[k].unsqueeze(-1)
        return out


def ensemble_terms(
    decoder: Decoder,
    cache: ProjectionCache,
    coord: torch.Tensor,
    cell: torch.Tensor,
    centres: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> EnsembleTerms:
    """Evaluate the decoder for every ensemble member of `coord` (N, 2) with `cell` (N, 2) or (2,)."""
    h, w = cache.height, cache.width
    dev = cache.device
    coord = coord.to(device=dev, dtype=torch.float32)
    cell = cell.to(device=dev, dtype=torch.float32)
    row_c, col_c = centres if centres is not None else (latent_centres(h, dev), latent_centres(w, dev))
    if decoder.local_ensemble:
        offsets = [(-1, -1), (-1, 1), (1, -1), (1, 1)]
        eps = _EPS_SHIFT
    else:
        offsets, eps = [(0, 0)], 0.0
    rx, ry = 1.0 / h, 1.0 / w
    k = len(offsets)

    ii, jj, rels = [], [], []
    for vx, vy in offsets:
        cr = (coord[:, 0] + (vx * rx + eps)).clamp_(-_CLAMP, _CLAMP)
        cc = (coord[:, 1] + (vy * ry + eps)).clamp_(-_CLAMP, _CLAMP)
        i, j = nearest_index(cr, h), nearest_index(cc, w)
        rel = torch.stack(
            ((coord[:, 0] - row_c.index_select(0, i)) * h, (coord[:, 1] - col_c.index_select(0, j)) * w),
            dim=1,
        )
        ii.append(i)
        jj.append(j)
        rels.append(rel)
    i_all = torch.cat(ii)
    j_all = torch.cat(jj)
    rel_all = torch.cat(rels)

    r0, r1 = int(i_all.min()), int(i_all.max())
    c0, c1 = int(j_all.min()), int(j_all.max())
    box = cache.box(r0, r1, c0, c1)
    b = cache.block
    flat = box.reshape(-1, box.shape[-1])
    idx = (i_all - (r0 // b) * b) * box.shape[1] + (j_all - (c0 // b) * b)
    x = flat.index_select(0, idx)

    # First layer: cached per-latent part + [rel_coord, rel_cell] @ W in one in-place addmm.
    if decoder.w_cell is None:
        extra, w_extra = rel_all, decoder.w_rel
    else:
        rel_cell = cell * torch.tensor([h, w], device=dev, dtype=torch.float32)
        if rel_cell.dim() == 1:
            ones = torch.ones((rel_all.shape[0], 1), device=dev, dtype=torch.float32)
            extra = torch.cat((rel_all, ones), dim=1)
            w_extra = torch.cat((decoder.w_rel, (rel_cell @ decoder.w_cell).unsqueeze(0)), dim=0)
        else:
            extra = torch.cat((rel_all, rel_cell.repeat(k, 1)), dim=1)
            w_extra = torch.cat((decoder.w_rel, decoder.w_cell), dim=0)
    basis = coord_basis(rel_all[:, 0], rel_all[:, 1], decoder.coord_terms) if decoder.coord_terms else None
    y = decoder.run(
        x,
        extra.to(decoder.dtype),
        w_extra.to(decoder.dtype),
        None if basis is None else basis.to(decoder.dtype),
    )
    preds = y.view(k, -1, y.shape[-1])
    rel_k = rel_all.view(k, -1, 2)
    if k == 1:
        weights = torch.ones(rel_k.shape[:2], device=dev)
    else:
        areas = (rel_k[..., 0] * rel_k[..., 1]).abs() + 1e-9
        # Diagonal swap (0<->3, 1<->2): each member is weighted by the area opposite it.
        weights = areas.flip(0) / areas.sum(dim=0)
    return EnsembleTerms(i_all.view(k, -1), j_all.view(k, -1), rel_k, preds, weights)


def query(
    decoder: Decoder,
    cache: ProjectionCache,
    coord: torch.Tensor,
    cell: torch.Tensor,
    centres: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """RGB (normalised units, not clamped) at `coord` (N, 2) with `cell` (N, 2) or (2,), as float32 (N, 3)."""
    return ensemble_terms(decoder, cache, coord, cell, centres).blend()


def _axis_members(
    coords: torch.Tensor, n: int, centres: torch.Tensor, shifts: list[int], eps: float
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """For one axis of a grid: per ensemble shift, the latent index of each coordinate and its offset from
    that latent's centre in latent units, computed exactly as `ensemble_terms` does per query."""
    out = {}
    for v in shifts:
        c = (coords + (v * (1.0 / n) + eps)).clamp_(-_CLAMP, _CLAMP)
        i = nearest_index(c, n)
        out[v] = (i, (coords - centres.index_select(0, i)) * n)
    return out


class GridQuery:
    """The decoder on the grid `rows` x `cols` of one render, a band of rows at a time: RGB (normalised units,
    float32, (R*C, 3) in row-major order) for one `cell` (2,), the same function as `query` on every (row,
    col) pair, cheaper for a render.

    On a grid, a query's latent index, its offset and its ensemble area are a row part and a column part:
    they are computed per row and per column (R + C values instead of R * C) and broadcast. For a small
    decoder this bookkeeping, not the MLP, was most of a render's time. What depends only on the columns
    (their members, the first layer's per-query column of column offsets, the constant cell) is computed
    once per render, and the projection box is assembled again only when a band reaches new blocks: for
    `liif-lm` a 320 -> 2560 px render's decode went from about 2.1 to 1.9 s. The arithmetic of each query
    is `query`'s, in the same order.
    """

    def __init__(
        self,
        decoder: Decoder,
        cache: ProjectionCache,
        cols: torch.Tensor,
        cell: torch.Tensor,
        centres: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        h, w = cache.height, cache.width
        dev = cache.device
        self.decoder, self.cache = decoder, cache
        cols = cols.to(device=dev, dtype=torch.float32)
        cell = cell.to(device=dev, dtype=torch.float32).reshape(2)
        self.row_centres, col_c = (
            centres if centres is not None else (latent_centres(h, dev), latent_centres(w, dev))
        )
        if decoder.local_ensemble:
            self.shifts, self.eps = [-1, 1], _EPS_SHIFT
        else:
            self.shifts, self.eps = [0], 0.0
        self.by_col = _axis_members(cols, w, col_c, self.shifts, self.eps)
        self.c0 = min(int(j.min()) for j, _ in self.by_col.values())
        self.c1 = max(int(j.max()) for j, _ in self.by_col.values())
        # The first layer's per-query columns, as `ensemble_terms` builds them: [rel_row, rel_col, 1] with the
        # render's constant cell folded into the last row of the weight.
        w_extra = decoder.w_rel
        if decoder.w_cell is not None:
            rel_cell = cell * torch.tensor([h, w], device=dev, dtype=torch.float32)
            w_extra = torch.cat((decoder.w_rel, (rel_cell @ decoder.w_cell).unsqueeze(0)), dim=0)
        self.w_extra = w_extra.to(decoder.dtype)
        self.first_const = w_extra[2] if w_extra.shape[0] > 2 else torch.zeros_like(w_extra[0])
        self.n_cols = cols.shape[0]
        self.members = [(vx, vy) for vx in self.shifts for vy in self.shifts]
        self._box_key: tuple[int, int] | None = None
        self._box = torch.empty(0)
        self._extra: torch.Tensor | None = None  # reused while bands have the same height
        # A decoder with coordinate weights (`_separable_band`): per column member, its columns' latent
        # (local to the box) and the column parts of its table rows; the table and the shifts, by slots.
        self._bag_cols: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._table = torch.empty(0)
        self._shift_tables: list[torch.Tensor] = []  # per hidden layer, by slots
        # A's per-latent parts (s_1, d_r + w_r, d_rr) in float32, in the render's latent columns, by slot
        self._a_parts = torch.empty(0)
        self._slots_n = self._table_rows = self._a_at = 0
        self._slot_rows: list[int] = []  # the latent row in each slot, -1 for none
        self._ones: torch.Tensor | None = None
        self._col_rows = self._rel_c = torch.empty(0)
        self._c_lo = self._n_ac = 0

    def _box_for(self, r0: int, r1: int) -> torch.Tensor:
        """The projection box of latent rows [r0, r1] and the render's columns, kept while it serves."""
        b = self.cache.block
        key = (r0 // b, r1 // b)
        if key != self._box_key:
            self._box = self.cache.box(r0, r1, self.c0, self.c1)
            self._box_key = key
        return self._box

    def _separable_band(
        self, by_row: dict[int, tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A decoder with coordinate weights on a band: member predictions (K, R*C, 3) and areas (K, R, C).

        On a grid, a query's first-layer pre-activation splits into a part that depends on its row and its
        latent's column, `A = s_1 + const + (w_r + d_r) * rel_r (+ d_rr * rel_r^2)`, a part that depends on
        its latent's row and its column, `C = (w_c + d_c) * rel_c (+ d_cc * rel_c^2)`, and, with second-
        order terms, `d_rc * rel_r * rel_c`. Each part is computed once for all the queries that share it
        (at a zoom of s, one in s): C, d_rc and the hidden layers' shifts once per latent row of the render,
        into slots of a table that bands reuse, A per band, so a query's first layer is a sum of two or
        three table rows (`run_bag`) instead of a matrix product plus two or five element-wise products.
        The same sums as `query`'s; in bf16, rounded differently. The projection is read a latent row at a
        time, when the row first gets a slot (`ProjectionCache.rows`), with the parts of A kept in the slot
        too: no band assembles a box of whole blocks.
        """
        d = self.decoder
        assert d.bag_layout is not None
        seg, a_r = d.bag_layout
        w0, quadratic = d.first_width, d.coord_terms == 5
        dev, dt = self.cache.device, d.dtype
        b = self.cache.block
        # the columns of the blocks the render reads, from the first one's corner (as `ProjectionCache.box`)
        bw = min(self.cache.width, (self.c1 // b + 1) * b) - (self.c0 // b) * b
        a_segs = [0, a_r, a_r + 2] if quadratic else [0, a_r]  # A's parts: s_1, d_r (, d_rr)
        n_r, n_c, k = by_row[self.shifts[0]][0].shape[0], self.n_cols, len(self.members)
        n_sh = len(self.shifts)  # members per axis: 2 with the local ensemble, else 1
        lo = min(int(i.min()) for i, _ in by_row.values())
        hi = max(int(i.max()) for i, _ in by_row.values())
        if not self._bag_cols:
            col_base = (self.c0 // self.cache.block) * self.cache.block
            # A is computed for the latent columns the render uses, [c_lo, c_hi] of the box's
            self._c_lo = int(self.c0 - col_base)
            self._n_ac = self.c1 - self.c0 + 1
            for v, (j, _) in self.by_col.items():
                jl = j - col_base
                cols = torch.stack((jl - self._c_lo, torch.arange(n_c, device=dev), jl), dim=1)
                self._bag_cols[v] = (jl, cols)
            # per column member: [latent column from c_lo, column, latent column] (the column parts of the
            # A, C and d_rc rows; the last is also the shifts'), and the column offsets
            # int32: a fifth faster to gather with than int64 (embedding_bag, index_select)
            self._col_rows = torch.stack([self._bag_cols[v][1] for v in self.shifts]).to(torch.int32)
            self._rel_c = torch.stack([self.by_col[v][1] for v in self.shifts])
        n_s, n_x = self._slots_n, (bw if quadratic else 0)
        if n_s < hi - lo + 1 or self._table_rows < n_r:
            # Slots for latent rows: per column member C (C rows), d_rc (box width rows); then A's slot.
            n_s = self._slots_n = max(hi - lo + 1, 4)
            self._table_rows = n_r
            self._a_at = n_s * (n_sh * n_c + n_x)
            self._table = torch.empty((self._a_at + n_sh * n_r * self._n_ac, w0), device=dev, dtype=dt)
            self._shift_tables = [torch.empty((n_s * bw, n), device=dev, dtype=dt) for n in d.hidden_widths]
            self._a_parts = torch.empty((len(a_segs), n_s, self._n_ac, w0), device=dev, dtype=torch.float32)
            self._slot_rows = [-1] * n_s
        table = self._table
        missing = [row for row in range(lo, hi + 1) if self._slot_rows[row % n_s] != row]
        if missing:  # fill the slots of the latent rows not there yet, all in one go
            where = torch.tensor(missing, device=dev)
            slots = where % n_s
            here = self.cache.rows(missing, self.c0, self.c1).view(len(missing), bw, seg, w0)
            # C's per-latent factors (d_c + w_c and d_cc) at the latent columns' resolution, then gathered
            # to the render's columns: the same values as gathering first, in fewer passes over them.
            factors = here[:, :, a_r + 1].float().add_(d.w_rel[1])
            if quadratic:
                factors = torch.stack((factors, here[:, :, a_r + 3].float()), dim=2)  # (m, bw, 2, w0)
            c_table = table[: n_s * n_sh * n_c].view(n_s, n_sh, n_c, w0)
            for t, vy in enumerate(self.shifts):
                jl, rel_c = self._bag_cols[vy][0], self.by_col[vy][1]
                c = rel_c[None, :, None]
                at_cols = factors.index_select(1, jl)
                linear = at_cols[:, :, 0] if quadratic else at_cols
                part = linear * c
                if quadratic:
                    part.add_(at_cols[:, :, 1] * (c * c))
                if len(missing) == 1:  # written straight into its slot, rounded once as a copy would
                    c_table[int(slots[0]), t].copy_(part[0])
                else:
                    c_table[:, t].index_copy_(0, slots, part.to(dt))
            if quadratic:
                cross = table[n_s * n_sh * n_c : n_s * (n_sh * n_c + bw)].view(n_s, bw, w0)
                cross.index_copy_(0, slots, here[:, :, a_r + 4].contiguous())
            shifted = here[:, :, 1:a_r].reshape(len(missing), bw, -1)
            start = 0
            for shift_table, n in zip(self._shift_tables, d.hidden_widths, strict=True):
                shift_table.view(n_s, bw, n).index_copy_(0, slots, shifted[..., start : start + n])
                start += n
            used = here[:, self._c_lo : self._c_lo + self._n_ac]  # the render's latent columns
            for t, segment in enumerate(a_segs):
                part = used[:, :, segment].float()
                if t == 1:  # d_r with the query's own weight added once per slot, not once per band
                    part.add_(d.w_rel[0])
                self._a_parts[t].index_copy_(0, slots, part)
            for row in missing:
                self._slot_rows[row % n_s] = row
        # A for every row member at once: (members, R, the render's latent columns) rows in the table's slot.
        rows_i = torch.stack([by_row[v][0] for v in self.shifts])  # (n_sh, R) latent rows
        rel_r = torch.stack([by_row[v][1] for v in self.shifts])
        slots = rows_i % n_s
        flat_slots = slots.view(-1)
        n_ac = self._n_ac
        r = rel_r.view(-1, 1, 1)
        a = self._a_parts[1].index_select(0, flat_slots).mul_(r)
        a.add_(self._a_parts[0].index_select(0, flat_slots)).add_(self.first_const)
        if quadratic:
            a.add_(self._a_parts[2].index_select(0, flat_slots).mul_(r * r))
        table[self._a_at : self._a_at + n_sh * n_r * n_ac].view(n_sh * n_r, n_ac, w0).copy_(a)
        # Table rows of every member (row member x, column member y) as a row part plus a column part.
        members = torch.arange(n_sh, device=dev)
        a_rows = self._a_at + (members[:, None] * n_r + torch.arange(n_r, device=dev)) * n_ac
        c_rows = slots[:, None, :] * (n_sh * n_c) + (members * n_c)[None, :, None]
        parts = [a_rows[:, None, :].expand(n_sh, n_sh, n_r), c_rows]
        n_bag = 3 if quadratic else 2
        if quadratic:
            parts.append((n_s * n_sh * n_c + slots * bw)[:, None, :].expand(n_sh, n_sh, n_r))
        row_part = torch.stack(parts, dim=-1).to(torch.int32)  # (x, y, R, n_bag)
        bag = row_part[:, :, :, None, :] + self._col_rows[None, :, None, :, :n_bag]
        shift_rows = (slots * bw).to(torch.int32)[:, None, :, None] + self._col_rows[None, :, None, :, 2]
        area = rel_r[:, None, :, None] * self._rel_c[None, :, None, :]  # (x, y, R, C)
        weights = None
        if quadratic:  # [1, 1, rel_r * rel_c]
            ones = self._ones
            if ones is None or ones.shape[1] != n_r:
                ones = self._ones = torch.ones((k, n_r, n_c, 3), device=dev, dtype=dt)
            ones[..., 2] = area.view(k, n_r, n_c)
            weights = ones.view(-1, 3)
        preds = d.run_bag(table, bag.view(-1, n_bag), self._shift_tables, shift_rows.view(-1), weights)
        return preds.view(k, n_r * n_c, -1), area.view(k, n_r, n_c).abs_().add_(1e-9)

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        """RGB of the band `rows` (R,) x the render's columns, (R*C, 3)."""
        decoder, dev = self.decoder, self.cache.device
        rows = rows.to(device=dev, dtype=torch.float32)
        by_row = _axis_members(rows, self.cache.height, self.row_centres, self.shifts, self.eps)
        if decoder.bag_layout is not None:
            preds, area = self._separable_band(by_row)
            return self._blend(preds, area)
        r0 = min(int(i.min()) for i, _ in by_row.values())
        r1 = max(int(i.max()) for i, _ in by_row.values())
        box = self._box_for(r0, r1)
        b = self.cache.block
        k = len(self.members)
        flat = box.reshape(-1, box.shape[-1])
        n_r, n_c = rows.shape[0], self.n_cols
        idx = torch.empty((k, n_r, n_c), device=dev, dtype=torch.long)
        # Written in the decoder's dtype directly (the same rounding as casting a float32 copy, without one);
        # the column offsets and the ones stay from the band before when the height is the same.
        extra = self._extra
        fresh = extra is None or extra.shape[1] != n_r
        if fresh:
            extra = torch.ones((k, n_r, n_c, self.w_extra.shape[0]), device=dev, dtype=decoder.dtype)
            self._extra = extra
        assert extra is not None
        area = torch.empty((k, n_r, n_c), device=dev, dtype=torch.float32)
        for m, (vx, vy) in enumerate(self.members):
            i, rel_r = by_row[vx]
            j, rel_c = self.by_col[vy]
            torch.add(
                ((i - (r0 // b) * b) * box.shape[1]).unsqueeze(1),
                (j - (self.c0 // b) * b).unsqueeze(0),
                out=idx[m],
            )
            extra[m, ..., 0] = rel_r.unsqueeze(1)
            if fresh:
                extra[m, ..., 1] = rel_c.unsqueeze(0)
            torch.mul(rel_r.unsqueeze(1), rel_c.unsqueeze(0), out=area[m]).abs_().add_(1e-9)
        # All members in one batch, as `ensemble_terms` runs them (the same matrix shapes, so the same sums).
        x = flat.index_select(0, idx.view(-1))
        basis = None
        if decoder.coord_terms:  # widths that do not fit `_separable_band`'s table: `query`'s products
            parts = []
            for vx, vy in self.members:
                rel_r, rel_c = by_row[vx][1], self.by_col[vy][1]
                grid = torch.broadcast_tensors(rel_r.unsqueeze(1), rel_c.unsqueeze(0))
                parts.append(coord_basis(grid[0].reshape(-1), grid[1].reshape(-1), decoder.coord_terms))
            basis = torch.cat(parts).to(decoder.dtype)
        preds = decoder.run(x, extra.view(-1, extra.shape[-1]), self.w_extra, basis).view(k, n_r * n_c, -1)
        return self._blend(preds, area)

    def _blend(self, preds: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
        """RGB (R*C, 3) from member predictions (K, R*C, 3) and their ensemble areas (K, R, C)."""
        k = preds.shape[0]
        if k == 1:
            return preds[0]
        area = area.view(k, -1)
        # Diagonal swap (0<->3, 1<->2): each member is weighted by the area opposite it (as `ensemble_terms`).
        weights = area.flip(0) / area.sum(dim=0)
        out = preds[0] * weights[0].unsqueeze(-1)
        for m in range(1, k):
            out = out + preds[m] * weights[m].unsqueeze(-1)
        return out


def grid_query(
    decoder: Decoder,
    cache: ProjectionCache,
    rows: torch.Tensor,
    cols: torch.Tensor,
    cell: torch.Tensor,
    centres: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """RGB of the grid `rows` (R,) x `cols` (C,) with one `cell` in one call (see `GridQuery`)."""
    return GridQuery(decoder, cache, cols, cell, centres)(rows)
