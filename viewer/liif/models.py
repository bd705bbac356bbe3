"""Network components under the official LIIF names, and a typed registry to build them from specs.

Parameter names and constructor arguments follow github.com/yinboc/liif so that official checkpoints load
unmodified. Encoders are used without upsampling: they return a 64-channel feature map at input size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import torch
from torch import nn

ModelFactory = Callable[..., nn.Module]


class Registry:
    """Maps component names to factories. Registering a name twice is an error."""

    def __init__(self) -> None:
        self._factories: dict[str, ModelFactory] = {}

    def register(self, name: str) -> Callable[[ModelFactory], ModelFactory]:
        """Decorator that registers a factory under `name`."""

        def wrap(factory: ModelFactory) -> ModelFactory:
            if name in self._factories:
                raise KeyError(f"component {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return wrap

    def names(self) -> list[str]:
        return sorted(self._factories)

    def make(self, spec: Mapping[str, Any], args: Mapping[str, Any] | None = None) -> nn.Module:
        """Build a component from `{'name': ..., 'args': {...}}`, with `args` overriding the spec's."""
        name = spec.get("name")
        if name not in self._factories:
            raise KeyError(f"unknown component {name!r}; known: {', '.join(self.names())}")
        kwargs = dict(spec.get("args") or {})
        if args:
            kwargs.update(args)
        return self._factories[name](**kwargs)


registry = Registry()
"""The default registry holding the official component names."""


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class MeanShift(nn.Conv2d):
    """Fixed 1x1 colour shift kept for checkpoint compatibility (the LIIF encoder does not apply it)."""

    def __init__(self, rgb_range: float, sign: int = -1) -> None:
        super().__init__(3, 3, kernel_size=1)
        mean = torch.tensor((0.4488, 0.4371, 0.4040))
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            assert self.bias is not None
            self.bias.copy_(sign * rgb_range * mean)
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    """conv-ReLU-conv with a scaled identity skip."""

    def __init__(self, n_feats: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(n_feats, n_feats, 3), nn.ReLU(True), _conv(n_feats, n_feats, 3))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        if self.res_scale != 1.0:  # EDSR-baseline's is 1: skipping the multiply is exact and saves a pass
            res = res.mul(self.res_scale)
        # In place on the convolution's fresh output (its backward does not need it): the same sums, without
        # a new activation-sized tensor whose first touch page-faults (9.8 against 1.7 ms for a 512 x 512 x
        # 64 bf16 map on the 2-core AMD machine without huge pages).
        return res.add_(x)


class EDSRBaseline(nn.Module):
    """EDSR-baseline without its upsampler: head conv, residual blocks, body conv, global skip."""

    def __init__(
        self, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0, rgb_range: float = 1.0
    ):
        super().__init__()
        self.sub_mean = MeanShift(rgb_range)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(_conv(3, n_feats, 3))
        blocks: list[nn.Module] = [ResBlock(n_feats, res_scale) for _ in range(n_resblocks)]
        blocks.append(_conv(n_feats, n_feats, 3))
        self.body = nn.Sequential(*blocks)
        self.out_dim = n_feats
        self.receptive_radius = 2 * n_resblocks + 2
        """Pixels of context each output latent depends on, per side (one per 3x3 conv)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        return self.body(x).add_(x)  # in place on the last convolution's output, as in ResBlock


@registry.register("edsr-baseline")
def make_edsr_baseline(
    n_resblocks: int = 16,
    n_feats: int = 64,
    res_scale: float = 1.0,
    scale: int = 2,
    no_upsampling: bool = False,
    rgb_range: float = 1.0,
) -> nn.Module:
    """The official factory signature; only the encoder form (no_upsampling=True) is supported."""
    del scale
    if not no_upsampling:
        raise ValueError("LIIF encoders have no upsampler: edsr-baseline needs no_upsampling=True")
    return EDSRBaseline(n_resblocks, n_feats, res_scale, rgb_range)


class _RDBConv(nn.Module):
    def __init__(self, cin: int, growth: int, k: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, growth, k, padding=(k - 1) // 2), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.conv(x)), 1)


class _RDB(nn.Module):
    def __init__(self, g0: int, growth: int, n_layers: int, k: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[_RDBConv(g0 + c * growth, growth, k) for c in range(n_layers)])
        self.LFF = nn.Conv2d(g0 + n_layers * growth, g0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LFF(self.convs(x)).add_(x)  # in place on the 1x1 convolution's fresh output


class RDN(nn.Module):
    """Residual Dense Network without its upsampler (Zhang et al. 2018), names as in LIIF's rdn.py."""

    def __init__(self, g0: int = 64, k: int = 3, depth: int = 16, n_layers: int = 8, growth: int = 64):
        super().__init__()
        pad = (k - 1) // 2
        self.SFENet1 = nn.Conv2d(3, g0, k, padding=pad)
        self.SFENet2 = nn.Conv2d(g0, g0, k, padding=pad)
        self.RDBs = nn.ModuleList([_RDB(g0, growth, n_layers, k) for _ in range(depth)])
        self.GFF = nn.Sequential(nn.Conv2d(depth * g0, g0, 1), nn.Conv2d(g0, g0, k, padding=pad))
        self.out_dim = g0
        self.depth = depth
        self.receptive_radius = pad * (3 + depth * n_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.SFENet1(x)
        x = self.SFENet2(f1)
        outs = []
        for block in self.RDBs:
            x = block(x)
            outs.append(x)
        return self.GFF(torch.cat(outs, 1)).add_(f1)


_RDN_CONFIGS = {"A": (20, 6, 32), "B": (16, 8, 64)}


@registry.register("rdn")
def make_rdn(
    G0: int = 64,
    RDNkSize: int = 3,
    RDNconfig: str = "B",
    scale: int = 2,
    no_upsampling: bool = False,
    depth: int | None = None,
    n_layers: int | None = None,
    growth: int | None = None,
) -> nn.Module:
    """The official factory signature, plus optional overrides of (D, C, G) for small test models."""
    del scale
    if not no_upsampling:
        raise ValueError("LIIF encoders have no upsampler: rdn needs no_upsampling=True")
    if RDNconfig not in _RDN_CONFIGS:
        raise ValueError(f"unknown RDN config {RDNconfig!r}")
    d, c, g = _RDN_CONFIGS[RDNconfig]
    return RDN(G0, RDNkSize, depth or d, n_layers or c, growth or g)


class CleanupNet(nn.Module):
    """A small residual CNN that cleans a normalised input image (noise, grain, JPEG) before the encoder.

    It returns `x + tail(body(head(x)))` with the tail convolution zero-initialised, so an untrained one is
    the identity and a model with it starts as exactly the model without it.
    """

    def __init__(self, n_feats: int = 32, n_resblocks: int = 8) -> None:
        super().__init__()
        self.head = _conv(3, n_feats, 3)
        self.body = nn.Sequential(*[ResBlock(n_feats, 1.0) for _ in range(n_resblocks)])
        self.tail = _conv(n_feats, 3, 3)
        with torch.no_grad():
            self.tail.weight.zero_()
            assert self.tail.bias is not None
            self.tail.bias.zero_()
        self.receptive_radius = 2 * n_resblocks + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.tail(self.body(self.head(x)))


def encoder_chain(encoder: nn.Module) -> list[nn.Module]:
    """An encoder and the encoders it wraps, outermost first: a clean-up or deblur pre-pass keeps the encoder
    behind it as `inner`, so the last one is the encoder whose features a decoder reads."""
    chain = [encoder]
    inner = getattr(encoder, "inner", None)
    while isinstance(inner, nn.Module):
        chain.append(inner)
        inner = getattr(inner, "inner", None)
    return chain


def encoder_grid(encoder: nn.Module) -> int:
    """The pixel grid an encoder is shift-equivariant on: a deblur pre-pass's (MSSNet pools by its
    `multiple`), found through any wrappers in front of it, else 1. Tiles and their crops must start on it
    for tiled encoding to equal the whole."""
    for enc in encoder_chain(encoder):
        deblur = getattr(enc, "deblur", None)
        if deblur is not None:
            return int(getattr(deblur, "multiple", 1))
    return 1


class CleanedEncoder(nn.Module):
    """An encoder behind a `CleanupNet`: the old-photo model's encoder (see models/liif-oldphoto.md)."""

    def __init__(self, encoder: nn.Module, n_feats: int, n_resblocks: int) -> None:
        super().__init__()
        self.cleanup = CleanupNet(n_feats, n_resblocks)
        self.inner = encoder
        self.out_dim = int(cast(int, encoder.out_dim))
        self.depth = int(getattr(encoder, "depth", 0))
        total = self.cleanup.receptive_radius + int(cast(int, encoder.receptive_radius))
        grid = encoder_grid(encoder)
        self.receptive_radius = -(-total // grid) * grid
        """The two radii add up, so tiled encoding stays exact; rounded up to the grid of a deblur pass
        behind the clean-up, so a tile's crop starts on that grid (see `encoder_grid`)."""

    @property
    def photo_gated(self) -> bool:
        """Whether a deblur pass behind the clean-up has a photo gate (see `mssnet.DeblurredEncoder`)."""
        return bool(getattr(self.inner, "photo_gated", False))

    def radius_for(self, blur_share: float) -> int:
        """The halo a tile needs for a photo of this blur estimate (see `DeblurredEncoder.radius_for`)."""
        if self.photo_gated:
            inner = int(cast(Callable[[float], int], self.inner.radius_for)(blur_share))
        else:
            inner = int(cast(int, self.inner.receptive_radius))
        total = self.cleanup.receptive_radius + inner
        grid = encoder_grid(self.inner)
        return -(-total // grid) * grid

    def forward(self, x: torch.Tensor, blur_share: float | None = None) -> torch.Tensor:
        """A photo-gated deblur pass behind the clean-up is handed the photo's blur estimate as it came in
        (`blur_share`, or measured here on `x` as a whole photo): measured on each tile's cleaned crop
        instead, tiles would not equal the whole."""
        if not self.photo_gated:
            return self.inner(self.cleanup(x))
        if blur_share is None:
            from viewer.liif.mssnet import tensor_blur_share

            shares = tensor_blur_share(x)
            if len(set(shares)) > 1:  # one estimate per call: a batch of different photos goes one by one
                return torch.cat([self.forward(x[i : i + 1]) for i in range(x.shape[0])])
            blur_share = shares[0]
        return self.inner(self.cleanup(x), blur_share=blur_share)


@registry.register("cleaned")
def make_cleaned(encoder_spec: Mapping[str, Any], n_feats: int = 32, n_resblocks: int = 8) -> nn.Module:
    """`{'name': 'cleaned', 'args': {'encoder_spec': {...}, 'n_feats', 'n_resblocks'}}`."""
    return CleanedEncoder(registry.make(encoder_spec), n_feats, n_resblocks)


class LowRankLinear(nn.Module):
    """A Linear layer factored as `up(down(x))` with a rank-`rank` bottleneck and no ReLU between.

    It computes an ordinary affine map of rank at most `rank` in `rank * (in + out)` multiply-adds instead
    of `in * out`. `weight` and `bias` give the equivalent single layer (used where the weight is folded
    into a per-latent cache, so the factoring costs nothing there).
    """

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        if not 0 < rank < min(in_features, out_features):
            raise ValueError(f"rank {rank} must be between 1 and {min(in_features, out_features) - 1}")
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features)

    @property
    def weight(self) -> torch.Tensor:
        """The equivalent (out, in) weight."""
        return self.up.weight @ self.down.weight

    @property
    def bias(self) -> torch.Tensor:
        """The equivalent bias."""
        return self.up.bias

    @property
    def macs(self) -> int:
        """Multiply-adds per input row."""
        return self.rank * (self.in_features + self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


DecoderLayer = nn.Linear | LowRankLinear


def layer_macs(layer: DecoderLayer) -> int:
    """Multiply-adds of one decoder layer per input row."""
    return layer.macs if isinstance(layer, LowRankLinear) else layer.in_features * layer.out_features


class MLP(nn.Module):
    """Linear/ReLU stack: `layers.{0,2,4,...}` are the Linear layers, as in the official checkpoints.

    `ranks` (one per Linear layer, 0 for full rank) factors chosen layers as `LowRankLinear`.
    """

    def __init__(
        self, in_dim: int, out_dim: int, hidden_list: list[int], ranks: list[int] | None = None
    ) -> None:
        super().__init__()
        dims = [in_dim, *hidden_list, out_dim]
        ranks = list(ranks) if ranks else [0] * (len(dims) - 1)
        if len(ranks) != len(dims) - 1:
            raise ValueError(f"ranks needs one entry per layer ({len(dims) - 1}), got {len(ranks)}")
        layers: list[nn.Module] = []
        for k in range(len(dims) - 1):
            r = int(ranks[k])
            layers.append(LowRankLinear(dims[k], dims[k + 1], r) if r else nn.Linear(dims[k], dims[k + 1]))
            if k < len(dims) - 2:
                layers.append(nn.ReLU())
        self.layers = nn.Sequential(*layers)

    def linears(self) -> list[DecoderLayer]:
        """The (possibly factored) Linear layers in order."""
        return [m for m in self.layers if isinstance(m, nn.Linear | LowRankLinear)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[:-1]
        return self.layers(x.reshape(-1, x.shape[-1])).view(*shape, -1)


@registry.register("mlp")
def make_mlp(in_dim: int, out_dim: int, hidden_list: list[int], ranks: list[int] | None = None) -> nn.Module:
    return MLP(in_dim, out_dim, list(hidden_list), ranks)
