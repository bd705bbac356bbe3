"""Multiply-adds of a LIIF decoder per output pixel, counted from the model's spec (no torch needed).

Two counts, biases and activations left out:
- **paper**: what LIIF's reference code computes. Each member of the local ensemble (4 of them, 1 without
  it) runs the whole MLP on [unfold3x3(z), rel_coord, rel_cell]: the sum over its Linear layers of in·out
  (rank·(in + out) for a layer factored by `ranks`).
- **here**: what this program's query computes (`viewer.liif.query`). The first layer's feature part
  (feat_in·hidden) is a 3x3 convolution of the feature map, computed once per latent (one per source pixel)
  and cached, so it is counted apart, per latent. Per member and pixel there remain the relative
  coordinate's 2 columns and, with cell decoding, 1 more: a render's cell is the same for every pixel, so
  its projection is folded into one column of a constant 1. The later layers run as full matrices (a
  factored layer is folded into its equivalent weight), so they count in·out.

`decoder_cost` reads the same spec a checkpoint stores (`{name: 'liif', args: {...}}`), so the listing of
models needs no torch; tests check the count against the layers of a built model and against torch's own
count of the query's matrix products.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Encoder widths when their spec leaves them out (the official defaults, as in `viewer.liif.models`).
_DEFAULT_WIDTH = {"edsr-baseline": ("n_feats", 64), "rdn": ("G0", 64)}
_MAX_DEPTH = 8


@dataclass(frozen=True)
class DecoderCost:
    """Multiply-adds of one decoder, per output pixel and per latent."""

    members: int
    """Decoder evaluations per output pixel: 4 with the local ensemble, else 1."""
    paper_per_member: int
    """One evaluation of the whole MLP, as the reference runs it."""
    here_per_member: int
    """One evaluation as this program's query runs it, the first layer's feature part excluded."""
    per_latent: int
    """The first layer's feature part (a modulated decoder: its hypernetwork), once per latent, cached."""
    modulated: bool = False
    """A latent-modulated decoder (`lm-mlp`): per latent a hypernetwork, per query a narrow MLP."""

    @property
    def paper_per_pixel(self) -> int:
        return self.members * self.paper_per_member

    @property
    def here_per_pixel(self) -> int:
        return self.members * self.here_per_member

    def per_pixel_at(self, scale: float) -> float:
        """What this program computes per output pixel at a magnification `scale`, the per-latent part
        shared by the scale**2 output pixels of each source pixel."""
        return self.here_per_pixel + self.per_latent / (scale * scale)


def _positive(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{what} must be a positive whole number, not {value!r}")
    return value


def encoder_width(spec: Any, depth: int = 0) -> int:
    """Channels of the feature map an encoder spec makes; wrappers (clean-up, deblurring) pass on their
    inner encoder's. Raises ValueError for a spec it cannot read."""
    if depth > _MAX_DEPTH or not isinstance(spec, Mapping):
        raise ValueError("the encoder spec is not a readable {name, args} object")
    name = spec.get("name")
    args = spec.get("args") or {}
    if not isinstance(args, Mapping):
        raise ValueError("the encoder's args are not an object")
    if name in _DEFAULT_WIDTH:
        key, default = _DEFAULT_WIDTH[name]
        return _positive(args.get(key, default), key)
    if "encoder_spec" in args:
        return encoder_width(args["encoder_spec"], depth + 1)
    raise ValueError(f"unknown encoder {name!r}")


def decoder_cost(spec: Any) -> DecoderCost:
    """The decoder's multiply-adds for a LIIF spec (see the module docstring); ValueError if unreadable."""
    if (
        not isinstance(spec, Mapping)
        or spec.get("name") != "liif"
        or not isinstance(spec.get("args"), Mapping)
    ):
        raise ValueError("not a LIIF spec")
    args = spec["args"]
    unfold = bool(args.get("feat_unfold", True))
    cell = bool(args.get("cell_decode", True))
    ensemble = bool(args.get("local_ensemble", True))
    imnet = args.get("imnet_spec")
    if (
        not isinstance(imnet, Mapping)
        or imnet.get("name") not in ("mlp", "lm-mlp")
        or not isinstance(imnet.get("args"), Mapping)
    ):
        raise ValueError("the decoder is not an 'mlp' or an 'lm-mlp'")
    margs = imnet["args"]
    hidden = margs.get("hidden_list")
    if not isinstance(hidden, list) or not hidden:
        raise ValueError("the decoder has no hidden_list")
    feat_in = encoder_width(args.get("encoder_spec")) * (9 if unfold else 1)
    if imnet.get("name") == "lm-mlp":
        return _modulated_cost(margs, feat_in, 2 + (2 if cell else 0), 4 if ensemble else 1)
    dims = [feat_in + 2 + (2 if cell else 0), *(_positive(h, "hidden_list") for h in hidden)]
    dims.append(_positive(margs.get("out_dim", 3), "out_dim"))
    n = len(dims) - 1
    ranks = margs.get("ranks") or [0] * n
    if (
        not isinstance(ranks, list)
        or len(ranks) != n
        or not all(isinstance(r, int) and r >= 0 for r in ranks)
    ):
        raise ValueError(f"ranks needs one whole number per layer ({n})")

    def paper(k: int) -> int:
        r = ranks[k]
        return r * (dims[k] + dims[k + 1]) if r else dims[k] * dims[k + 1]

    later = sum(dims[k] * dims[k + 1] for k in range(1, n))
    return DecoderCost(
        members=4 if ensemble else 1,
        paper_per_member=sum(paper(k) for k in range(n)),
        here_per_member=(2 + (1 if cell else 0)) * dims[1] + later,
        per_latent=feat_in * dims[1],
    )


def _modulated_cost(margs: Mapping[str, Any], feat_in: int, query_dim: int, members: int) -> DecoderCost:
    """A latent-modulated decoder (`viewer.liif.lm`): its hypernetwork runs once per latent; run as the
    paper runs a decoder, every evaluation would also run it, so "paper" counts it per evaluation."""
    widths = [_positive(w, "hidden_list") for w in margs["hidden_list"]]
    hyper = _positive(margs.get("hyper_hidden", 256), "hyper_hidden")
    out = _positive(margs.get("out_dim", 3), "out_dim")
    blocks = int(margs.get("hyper_blocks", 0))
    # per-latent weights of the offset's 2 terms, or 5 with the second-order ones
    terms = (5 if margs.get("coord_quadratic", False) else 2) if margs.get("coord_weights", False) else 0
    coord = terms * widths[0]
    per_latent = feat_in * hyper + 2 * hyper * hyper * blocks + hyper * (sum(widths) + coord)
    query = query_dim * widths[0] + coord + sum(a * b for a, b in itertools.pairwise(widths))
    query += widths[-1] * out
    # Here a render's cell is constant, so its columns fold into one (as for an mlp's first layer).
    here = (query_dim - 1 if query_dim == 4 else query_dim) * widths[0] + query - query_dim * widths[0]
    return DecoderCost(members, per_latent + query, here, per_latent, modulated=True)
