"""The LIIF model: an encoder and an MLP decoder, with no per-image state.

Unlike the reference implementation, which stores the feature map in `self.feat`, `encode` returns it
and every query takes it as an argument, so a viewport render and an export can share one model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from viewer.liif.lm import ModulatedMLP
from viewer.liif.models import MLP, Registry, layer_macs, registry


class LIIF(nn.Module):
    """Encoder + decoder with the three switchable parts of LIIF's query (arXiv 2012.09161, sec. 3)."""

    def __init__(
        self,
        encoder_spec: Mapping[str, Any],
        imnet_spec: Mapping[str, Any] | None = None,
        local_ensemble: bool = True,
        feat_unfold: bool = True,
        cell_decode: bool = True,
        *,
        components: Registry | None = None,
    ) -> None:
        super().__init__()
        if imnet_spec is None:
            raise ValueError("a LIIF model needs a decoder (imnet_spec)")
        reg = components or registry
        self.local_ensemble = bool(local_ensemble)
        self.feat_unfold = bool(feat_unfold)
        self.cell_decode = bool(cell_decode)
        self.encoder = reg.make(encoder_spec)
        self.feat_dim = int(cast(int, self.encoder.out_dim))
        in_dim = self.feat_dim * (9 if self.feat_unfold else 1) + 2 + (2 if self.cell_decode else 0)
        extra: dict[str, Any] = {"in_dim": in_dim}
        if imnet_spec.get("name") == "lm-mlp":
            extra["query_dim"] = 2 + (2 if self.cell_decode else 0)
        imnet = reg.make(imnet_spec, args=extra)
        if not isinstance(imnet, MLP | ModulatedMLP):
            raise ValueError("the LIIF decoder must be an 'mlp' or an 'lm-mlp'")
        self.imnet: MLP | ModulatedMLP = imnet
        self.spec: dict[str, Any] = {
            "name": "liif",
            "args": {
                "encoder_spec": dict(encoder_spec),
                "imnet_spec": dict(imnet_spec),
                "local_ensemble": self.local_ensemble,
                "feat_unfold": self.feat_unfold,
                "cell_decode": self.cell_decode,
            },
        }
        """The `{name, args}` a checkpoint stores so the model can be rebuilt without guessing."""

    @property
    def receptive_radius(self) -> int:
        """Context (source pixels per side) the encoder needs for one latent code to be exact."""
        return int(cast(int, self.encoder.receptive_radius))

    def radius_for(self, blur_share: float | None) -> int:
        """The context a tile needs for a photo of this blur estimate: less than `receptive_radius` where a
        photo gate skips the deblur network (only the encoder behind it then looks around)."""
        if blur_share is None or not self.photo_gated:
            return self.receptive_radius
        radius_for = cast(Callable[[float], int], self.encoder.radius_for)
        return int(radius_for(blur_share))

    def encode(self, inp: torch.Tensor, blur_share: float | None = None) -> torch.Tensor:
        """Map a normalised image (B, 3, H, W), values (x-0.5)/0.5, to its feature map (B, C, H, W).
        `blur_share`: the whole photo's blur estimate, for an encoder with a photo-gated deblur pass
        (`photo_gated`) encoding a tile of it (ignored by any other encoder)."""
        if blur_share is not None and self.photo_gated:
            return self.encoder(inp, blur_share=blur_share)
        return self.encoder(inp)

    @property
    def photo_gated(self) -> bool:
        """Whether the encoder's output depends on a whole-photo estimate (`mssnet.DeblurredEncoder` with a
        photo gate): a tile then needs the photo's `blur_share` to equal the whole encode."""
        return bool(getattr(self.encoder, "photo_gated", False))

    def decoder_macs_per_query(self) -> int:
        """Multiply-adds of one decoder evaluation (one of the ensemble's four), as the paper runs it; for
        a modulated decoder, its query MLP (the hypernetwork runs once per latent, not per query)."""
        if isinstance(self.imnet, ModulatedMLP):
            return self.imnet.per_member_macs()
        return sum(layer_macs(m) for m in self.imnet.linears())


def make_liif(
    encoder: str = "edsr-baseline",
    *,
    n_resblocks: int = 1,
    n_feats: int = 8,
    hidden: Sequence[int] = (16,),
    seed: int = 0,
    local_ensemble: bool = True,
    feat_unfold: bool = True,
    cell_decode: bool = True,
    hyper_hidden: int = 0,
    hyper_blocks: int = 0,
    coord_weights: bool = False,
    coord_quadratic: bool = False,
) -> LIIF:
    """Build a small randomly initialised LIIF model (for tests and benchmarks of the machinery); with
    `hyper_hidden`, its decoder is a latent-modulated one (`lm-mlp`) with that hypernetwork width and
    `hyper_blocks` residual blocks (random, not the identities training starts them as) and, with
    `coord_weights`, per-latent coordinate weights (with `coord_quadratic`, of the second-order terms too)."""
    if encoder == "edsr-baseline":
        enc: dict[str, Any] = {
            "name": "edsr-baseline",
            "args": {"no_upsampling": True, "n_resblocks": n_resblocks, "n_feats": n_feats},
        }
    elif encoder == "rdn":
        enc = {
            "name": "rdn",
            "args": {
                "no_upsampling": True,
                "G0": n_feats,
                "depth": max(1, n_resblocks),
                "n_layers": 2,
                "growth": max(4, n_feats // 2),
            },
        }
    else:
        raise ValueError(f"unknown encoder {encoder!r}")
    imnet: dict[str, Any] = {"name": "mlp", "args": {"out_dim": 3, "hidden_list": list(hidden)}}
    if hyper_hidden:
        imnet = {"name": "lm-mlp", "args": {**imnet["args"], "hyper_hidden": hyper_hidden}}
        if hyper_blocks:
            imnet["args"]["hyper_blocks"] = hyper_blocks
        if coord_weights:
            imnet["args"]["coord_weights"] = True
        if coord_quadratic:
            imnet["args"]["coord_quadratic"] = True
    gen = torch.random.fork_rng()
    with gen:
        torch.manual_seed(seed)
        model = LIIF(enc, imnet, local_ensemble, feat_unfold, cell_decode)
        # Default init gives near-constant outputs; widen the decoder's last layer so tests see structure.
        with torch.no_grad():
            last = model.imnet.out if isinstance(model.imnet, ModulatedMLP) else model.imnet.linears()[-1]
            last.weight.mul_(4.0)
            if isinstance(model.imnet, ModulatedMLP):
                for _inner, outer in model.imnet.block_layers():
                    nn.init.normal_(outer.weight, std=0.1)
                    nn.init.normal_(outer.bias, std=0.1)
    return model.eval()
