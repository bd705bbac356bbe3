"""Starting a training run from weights: a saved model of the same network or of a smaller one that the
new network grows from exactly (deeper clean-up, deeper hypernetwork, wider query MLP, coordinate weights,
a wider and deeper deblurring network), or a student's decoder layers from its teacher's."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from viewer.errors import ArgumentError
from viewer.liif.liif import LIIF
from viewer.liif.lm import ModulatedMLP
from viewer.liif.models import MLP, CleanedEncoder, LowRankLinear, ResBlock
from viewer.liif.mssnet import DeblurredEncoder, MSSNet, UNetStage
from viewer.train.query import project


def start_from(model: LIIF, path: str) -> None:
    """Load `path`'s weights into `model`, which must have the same architecture, or one that grows from it
    exactly (`_grow_cleanup`, `_grow_hypernet`, `_grow_query`, `_grow_coord`, `_grow_deblur`)."""
    from viewer.liif.checkpoint import load_model

    start = load_model(Path(path), "cpu")
    if _grow_deblur(model, start):
        return
    if start.spec == model.spec or isinstance(model.encoder, DeblurredEncoder):
        try:
            model.load_state_dict(_start_state(model, start))
        except RuntimeError:
            raise ArgumentError(f"--init {path}: its weights do not fit this run's network") from None
    elif not any(grow(model, start) for grow in (_grow_cleanup, _grow_hypernet, _grow_query, _grow_coord)):
        raise ArgumentError(f"--init {path}: its architecture differs from the one this run trains")


def _start_state(model: LIIF, start: LIIF) -> dict[str, torch.Tensor]:
    """`start`'s weights for `model`, less a tuned encoder that only `start` holds: the deblur recipe trains
    the network alone, so a shipped deblur model (whose tuned copy serves only photos behind the network it
    was tuned for) can start it."""
    state = start.state_dict()
    if isinstance(model.encoder, DeblurredEncoder) and model.encoder.tuned is None:
        state = {k: v for k, v in state.items() if not k.startswith("encoder.tuned.")}
    return state


def _cleanup_blocks_of(spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A cleaned model's clean-up depth and its spec with that depth set to -1; (0, spec) for others."""
    enc = spec["args"]["encoder_spec"]
    if enc.get("name") != "cleaned":
        return 0, spec
    other = copy.deepcopy(spec)
    other["args"]["encoder_spec"]["args"]["n_resblocks"] = -1
    return int(enc["args"].get("n_resblocks", 8)), other


def _load_all_but(model: LIIF, start: LIIF, prefix: str) -> None:
    """Load `start`'s weights into `model`, except those named under `prefix`, which the caller sets."""
    state = {k: v for k, v in start.state_dict().items() if not k.startswith(prefix)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith(prefix) for k in missing), missing


@torch.no_grad()
def _grow_cleanup(model: LIIF, start: LIIF) -> bool:
    """Start `model` from `start` when they differ only in `model`'s clean-up network having more residual
    blocks: the first ones are `start`'s, and each new block's last convolution starts at zero, so the new
    blocks pass their input through and `model` starts as exactly `start` (with room to learn more).
    Returns False, loading nothing, when the two differ in any other way."""
    deep, spec = _cleanup_blocks_of(model.spec)
    shallow, start_spec = _cleanup_blocks_of(start.spec)
    if spec != start_spec or not 0 < shallow < deep:
        return False
    missing, unexpected = model.load_state_dict(start.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("encoder.cleanup.body.") for k in missing), missing
    enc = model.encoder
    assert isinstance(enc, CleanedEncoder)
    for block in list(enc.cleanup.body)[shallow:]:
        assert isinstance(block, ResBlock)
        last = block.body[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        last.weight.zero_()
        last.bias.zero_()
    return True


@torch.no_grad()
def _grow_hypernet(model: LIIF, start: LIIF) -> bool:
    """Start `model` from `start` when they differ only in `model`'s hypernetwork having more residual
    blocks (a latent-modulated decoder): new blocks start as identities (their last layer at zero, as built),
    so `model` starts as exactly `start`. Returns False, loading nothing, when they differ otherwise."""

    def split(spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        other = copy.deepcopy(spec)
        imnet = other["args"]["imnet_spec"]
        if imnet.get("name") != "lm-mlp":
            return -1, other
        return int(imnet["args"].pop("hyper_blocks", 0)), other

    deep, spec = split(model.spec)
    shallow, start_spec = split(start.spec)
    if spec != start_spec or not 0 <= shallow < deep:
        return False
    missing, unexpected = model.load_state_dict(start.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("imnet.blocks.") for k in missing), missing
    return True


@torch.no_grad()
def _grow_query(model: LIIF, start: LIIF) -> bool:
    """Start `model` from `start` when they differ only in `model`'s query MLP being wider (a latent-
    modulated decoder with as many layers, each at least as wide). Old units keep their weights; a new
    unit's incoming weights (query, hidden and hypernetwork rows) start as small random values and its
    outgoing weights at zero, so `model` answers as `start` (up to float summation order) and the new units
    learn from there.
    Returns False, loading nothing, when they differ otherwise."""

    def split(spec: dict[str, Any]) -> tuple[list[int], dict[str, Any]]:
        other = copy.deepcopy(spec)
        imnet = other["args"]["imnet_spec"]
        if imnet.get("name") != "lm-mlp" or imnet["args"].get("coord_weights"):
            return [], other  # coordinate weights' rows sit after the shifts: not grown here
        return [int(w) for w in imnet["args"].pop("hidden_list")], other

    wide, spec = split(model.spec)
    narrow, start_spec = split(start.spec)
    grows = len(wide) == len(narrow) and all(a >= b for a, b in zip(wide, narrow, strict=True))
    if spec != start_spec or not narrow or not grows or wide == narrow:
        return False
    mine, theirs = model.imnet, start.imnet
    assert isinstance(mine, ModulatedMLP) and isinstance(theirs, ModulatedMLP)
    _load_all_but(model, start, "imnet.")
    for name in ("hyper_in", "blocks"):  # the hypernetwork's trunk does not depend on the widths
        getattr(mine, name).load_state_dict(getattr(theirs, name).state_dict())
    # hyper_out writes the layers' shifts one after another: copy each layer's old rows into its new block.
    at_new = at_old = 0
    for w_new, w_old in zip(wide, narrow, strict=True):
        rows = slice(at_new, at_new + w_old)
        mine.hyper_out.weight[rows] = theirs.hyper_out.weight[at_old : at_old + w_old]
        mine.hyper_out.bias[rows] = theirs.hyper_out.bias[at_old : at_old + w_old]
        # New units' shifts start near the old units' mean bias, so they are alive (not stuck below the ReLU).
        fresh = slice(at_new + w_old, at_new + w_new)
        mine.hyper_out.weight[fresh] *= 0.1
        mine.hyper_out.bias[fresh] = theirs.hyper_out.bias[at_old : at_old + w_old].mean().clamp(min=0.05)
        at_new, at_old = at_new + w_new, at_old + w_old
    pairs = list(zip(mine.linears(), theirs.linears(), strict=True))
    for k, (lin, old) in enumerate(pairs):
        n_out, n_in = old.weight.shape
        if k > 0:  # inputs from new units of the layer before start at zero: the output is unchanged
            lin.weight[:, n_in:] = 0.0
        lin.weight[:n_out, :n_in] = old.weight
        if k == len(pairs) - 1:
            assert lin.bias is not None and old.bias is not None
            lin.bias.copy_(old.bias)
    return True


@torch.no_grad()
def inherit_decoder_layers(student: LIIF, teacher: LIIF, feats: torch.Tensor | None = None) -> int:
    """Start the student's leading decoder layers from the teacher's; returns how many were set.

    Layers shaped as the teacher's are copied while the shapes match. A factored first layer
    (`LowRankLinear`) with the teacher's input and output sizes is set to the teacher's first layer
    restricted to the principal directions of its feature part on `feats` (B, C, H, W), plus the exact
    directions of its coordinate and cell inputs, so it starts as the best rank-r copy of the teacher's
    first layer on real photos.
    """
    copied = 0
    if not isinstance(student.imnet, MLP) or not isinstance(teacher.imnet, MLP):
        return copied
    for mine, theirs in zip(student.imnet.linears(), teacher.imnet.linears(), strict=False):
        if isinstance(mine, LowRankLinear) and isinstance(theirs, nn.Linear):
            if copied or feats is None or mine.weight.shape != theirs.weight.shape:
                break
            _low_rank_copy(mine, teacher, feats)
        elif isinstance(mine, nn.Linear) and mine.weight.shape == theirs.weight.shape:
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
        else:
            break
        copied += 1
    return copied


def _low_rank_copy(mine: LowRankLinear, teacher: LIIF, feats: torch.Tensor) -> None:
    assert isinstance(teacher.imnet, MLP)
    w, b = teacher.imnet.linears()[0].weight.float(), teacher.imnet.linears()[0].bias.float()
    # The teacher's per-latent first-layer part on real features (bias included), one row per latent.
    y = project(teacher, feats.float()).permute(0, 2, 3, 1).reshape(-1, w.shape[0])
    mean = y.mean(dim=0)
    n_feat = w.shape[1] - (4 if teacher.cell_decode else 2)
    extra = w[:, n_feat:]  # coordinate and cell columns: kept exactly
    n_pc = mine.rank - extra.shape[1]
    if n_pc < 1:
        raise ArgumentError(f"--first-rank must be above {extra.shape[1]}")
    _, _, vh = torch.linalg.svd(y - mean, full_matrices=False)
    basis, _ = torch.linalg.qr(torch.cat((extra, vh[:n_pc].t()), dim=1))
    mine.down.weight.copy_(basis.t() @ w)
    mine.up.weight.copy_(basis)
    mine.up.bias.copy_(mean - basis @ (basis.t() @ (mean - b)))


@torch.no_grad()
def _grow_coord(model: LIIF, start: LIIF) -> bool:
    """Start `model` from `start` when they differ only in `model`'s latent-modulated decoder having more
    per-latent coordinate weights (linear ones where `start` has none, or second-order ones too): their
    hypernetwork rows come last and start at zero, so `model` starts as exactly `start`. Returns False,
    loading nothing, when they differ otherwise."""

    def split(spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        other = copy.deepcopy(spec)
        args = other["args"]["imnet_spec"].get("args", {})
        linear, quadratic = bool(args.pop("coord_weights", False)), bool(args.pop("coord_quadratic", False))
        return (5 if quadratic else 2) if linear else 0, other

    grown, spec = split(model.spec)
    had, start_spec = split(start.spec)
    if spec != start_spec or grown <= had:
        return False
    mine, theirs = model.imnet, start.imnet
    assert isinstance(mine, ModulatedMLP) and isinstance(theirs, ModulatedMLP)
    _load_all_but(model, start, "imnet.hyper_out.")
    n = theirs.latent_width
    mine.hyper_out.weight.zero_()
    mine.hyper_out.bias.zero_()
    mine.hyper_out.weight[:n] = theirs.hyper_out.weight
    mine.hyper_out.bias[:n] = theirs.hyper_out.bias
    return True


@torch.no_grad()
def _grow_deblur(model: LIIF, start: LIIF) -> bool:
    """Start `model` from `start` when both are deblur models (`DeblurredEncoder`) whose deblurring networks
    differ only in `model`'s being wider (wf, scale, vscale) and having more stages at its finest scale, as
    MSSNet-small (20/40/40, stages 1-2-3) grows from the network shipped before (16/16/16, 1-2-2).

    Every weight that is not the deblurring network's is `start`'s (a tuned encoder only `start` holds is
    left out). In the network, old channels keep their weights and `model`'s new units start so that it
    deblurs exactly as `start` (up to float summation order), with every new weight able to learn:
    - a new feature channel's incoming weights and bias start at zero, so it is zero everywhere, and its
      outgoing weights random (they read zeros; the output convolution's too, which is built at zero), so
      gradients reach it;
    - a residual block's new hidden channel (behind a ReLU, where a zero would never learn) starts with
      random incoming weights and zero outgoing ones;
    - a new stage, appended to the finest scale's chain, starts as the identity on the path to the output
      (the finest level's blocks end at zero, its fusions and the upsampling into it are zero), the rest of
      it random.
    The gates and the halo have no weights, so they may differ. Returns False, loading nothing, when the two
    differ in any other way."""
    mine, theirs = model.encoder, start.encoder
    if not isinstance(mine, DeblurredEncoder) or not isinstance(theirs, DeblurredEncoder):
        return False
    new_args, old_args = (m.spec["args"]["encoder_spec"]["args"] for m in (model, start))
    a, b = mine.deblur, theirs.deblur
    same_rest = (
        model.spec["args"].get("imnet_spec") == start.spec["args"].get("imnet_spec")
        and new_args["encoder_spec"] == old_args["encoder_spec"]
        and len(a.stages) == len(b.stages)
        and len(a.widths) == len(b.widths)
        and all(new_args.get(k) == old_args.get(k) for k in ("levels", "blocks"))
    )
    if not same_rest or (mine.tuned is not None and theirs.tuned is None):
        return False
    counts = [len(cast(nn.ModuleList, s)) for s in a.stages]
    old_counts = [len(cast(nn.ModuleList, s)) for s in b.stages]
    wider = all(x >= y for x, y in zip(a.widths, b.widths, strict=True))
    deeper = counts[:-1] == old_counts[:-1] and counts[-1] >= old_counts[-1]
    if not (wider and deeper) or (counts == old_counts and a.widths == b.widths):
        return False
    state = {k: v for k, v in _start_state(model, start).items() if not k.startswith("encoder.deblur.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("encoder.deblur.") for k in missing), (missing, unexpected)
    _widen_deblur(a, b)
    finest = cast(nn.ModuleList, a.stages[-1])
    for stage in list(finest)[old_counts[-1] :]:
        _identity_path(cast(UNetStage, stage))
    return True


def _widen_deblur(net: MSSNet, old: MSSNet) -> None:
    """Copy `old`'s weights into the wider `net` (same names), new units set as `_grow_deblur` says."""
    wf, old_wf = net.widths[0], old.widths[0]
    theirs = dict(old.named_parameters())
    for name, p in net.named_parameters():
        q = theirs.get(name)
        if q is None:  # a whole new stage: random, its identity path set by the caller
            continue
        n_out = q.shape[0]
        hidden_in = name.endswith("body.0.weight") or name.endswith("body.0.bias")
        if not hidden_in:  # new feature channels start at zero; a block's new hidden units stay random
            p[n_out:] = 0.0
        if p.dim() == 1:
            p[:n_out] = q
            continue
        n_in = q.shape[1]
        if name.endswith("body.2.weight"):  # a block's new hidden units are not read yet
            p[:, n_in:] = 0.0
        if name == "tail.weight":  # built at zero (an untrained network is the identity): new columns
            nn.init.kaiming_uniform_(p[:, n_in:], a=5**0.5)  # random as a fresh convolution's, to learn
        if name.startswith("fusions."):  # input: the scale's head features, then the coarser scale's
            half = n_in // 2
            p[:n_out, :half] = q[:, :half]
            p[:n_out, wf : wf + half] = q[:, half:]
            assert half == old_wf
        else:
            p[:n_out, :n_in] = q


def _identity_path(stage: UNetStage) -> None:
    """Make a new stage pass its input through to its finest decoder output (what the next stage or the
    tail reads): the finest level's blocks and skip block end at zero, and the finest level's cross-stage
    fusions and the upsampling into it are zero."""
    blocks = [*cast(nn.Sequential, stage.enc[0]), *cast(nn.Sequential, stage.dec[0]), *stage.skip[:1]]
    for block in blocks:
        last = cast(ResBlock, block).body[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        last.weight.zero_()
        last.bias.zero_()
    for fuse in (stage.fuse_enc, stage.fuse_dec):
        if fuse is not None:
            cast(nn.Conv2d, fuse[0]).weight.zero_()
    if len(stage.up):
        cast(nn.Conv2d, stage.up[0].proj).weight.zero_()
