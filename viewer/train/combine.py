"""Combine two of our models that share the official encoder: one's encoder, the other's decoder.

`liif-oldphoto` puts a clean-up network in front of the official encoder and keeps the official decoder;
`liif-lm` keeps the official encoder and has a small decoder distilled from the official one. Both
decoders read the same features (the official encoder's), so the clean-up network and the small decoder
fit together without training: `liif-oldphoto-lm` is that pair, the old-photo clean-up at the small
model's refine cost (see models/liif-oldphoto-lm.md for its measured figures).

    python -m viewer.train.combine --encoder models/liif-oldphoto.safetensors \
        --decoder models/liif-lm.safetensors --out models/liif-oldphoto-lm.safetensors \
        --name liif-oldphoto-lm --display-name "Old photo, latent-modulated (CPU)" --quality "..."

It refuses a pair whose decoder was trained on other features than the encoder gives: the decoder
model's encoder must hold exactly the same weights as the encoder model's (inner) official encoder.

With `--cleanup`, a third model's clean-up network goes in front of the encoder model's whole encoder, a
deblur pass included (a photo-gated one is then gated by the photo as it comes in, before the clean-up).
`liif-oldphoto-deblur` was `liif-oldphoto`'s clean-up, then `liif-deblur`'s deblur network, encoder and
decoder; it was retired on 2026-12-06, when the photo-gated `liif-deblur` measured better on blurred and
noisy photos than the pair (docs/TRAINING-LOG.md).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from viewer.errors import ArgumentError, CheckpointError
from viewer.liif.checkpoint import build_model, load_model, read_metadata, save_safetensors
from viewer.liif.liif import LIIF
from viewer.liif.models import CleanedEncoder, encoder_chain

_ENCODER_LABELS = {"edsr-baseline": "EDSR-baseline-LIIF", "rdn": "RDN-LIIF"}
"""How `liif-viewer models` names a plain encoder (one with a clean-up network names itself)."""

_SHARED_ARGS = ("local_ensemble", "feat_unfold", "cell_decode")
"""LIIF settings the decoder was trained with; the combined model must keep them."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _official_part(model: LIIF) -> dict[str, torch.Tensor]:
    """The weights of the encoder a decoder reads features from (inside any clean-up or deblur wrappers)."""
    return dict(encoder_chain(model.encoder)[-1].state_dict())


def combine(encoder_model: LIIF, decoder_model: LIIF, cleanup_model: LIIF | None = None) -> LIIF:
    """A model with `encoder_model`'s encoder and `decoder_model`'s decoder (imnet), weights copied; with
    `cleanup_model`, its clean-up network in front of that whole encoder.

    Raises ArgumentError when the decoder was not trained on the features that encoder produces, or the
    clean-up network was not trained in front of the same official encoder, or the encoder has one already.
    """
    enc_args, dec_args = encoder_model.spec.get("args", {}), decoder_model.spec.get("args", {})
    for key in _SHARED_ARGS:
        if bool(enc_args.get(key, True)) != bool(dec_args.get(key, True)):
            raise ArgumentError(f"the two models differ in '{key}', so the decoder cannot be reused")
    mine, theirs = _official_part(encoder_model), _official_part(decoder_model)
    if mine.keys() != theirs.keys() or any(not torch.equal(mine[k], theirs[k]) for k in mine):
        raise ArgumentError(
            "the decoder was trained on another encoder's features: the two models' (inner) encoders differ"
        )
    spec = copy.deepcopy(encoder_model.spec)
    spec["args"]["imnet_spec"] = copy.deepcopy(dec_args["imnet_spec"])
    state = {k: v for k, v in encoder_model.state_dict().items() if k.startswith("encoder.")}
    if cleanup_model is not None:
        cleaned = cleanup_model.encoder
        if not isinstance(cleaned, CleanedEncoder):
            raise ArgumentError("the --cleanup model has no clean-up network")
        if isinstance(encoder_model.encoder, CleanedEncoder):
            raise ArgumentError("the encoder model has a clean-up network already")
        official = _official_part(cleanup_model)
        if official.keys() != mine.keys() or any(not torch.equal(official[k], mine[k]) for k in mine):
            raise ArgumentError("the clean-up network was trained in front of another encoder")
        args = dict(cleanup_model.spec["args"]["encoder_spec"]["args"])
        args["encoder_spec"] = spec["args"]["encoder_spec"]
        spec["args"]["encoder_spec"] = {"name": "cleaned", "args": args}
        state = {"encoder.inner." + k[len("encoder.") :]: v for k, v in state.items()}
        state.update(
            {k: v for k, v in cleanup_model.state_dict().items() if k.startswith("encoder.cleanup.")}
        )
    model = build_model(spec, source="combined model")
    state.update({k: v for k, v in decoder_model.state_dict().items() if k.startswith("imnet.")})
    model.load_state_dict(state, strict=True)
    return model.eval()


def _part_record(path: Path) -> dict[str, object]:
    meta = read_metadata(path)
    try:
        training = json.loads(meta.get("training", "null"))
    except ValueError:
        training = None
    return {"file": path.name, "sha256": _sha256(path), "name": meta.get("name", ""), "training": training}


def _licences(enc_meta: dict[str, str], dec_meta: dict[str, str], cleanup: Path | None) -> str:
    """The default licence line: each part's own."""
    line = f"encoder: {enc_meta.get('licence', '?')}; decoder: {dec_meta.get('licence', '?')}"
    if cleanup is not None:
        line = f"clean-up: {read_metadata(cleanup).get('licence', '?')}; " + line
    return line


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m viewer.train.combine`."""
    p = argparse.ArgumentParser(
        prog="python -m viewer.train.combine",
        description="Write a model with one model's encoder and another's decoder (see the module's docstring).",
    )
    p.add_argument("--encoder", type=Path, required=True, help="weights whose encoder (and clean-up) to take")
    p.add_argument("--decoder", type=Path, required=True, help="weights whose decoder to take")
    p.add_argument(
        "--cleanup", type=Path, default=None, help="weights whose clean-up network to put in front (optional)"
    )
    p.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    p.add_argument("--name", required=True, help="registry name, e.g. liif-oldphoto-lm")
    p.add_argument("--display-name", default="", help="the name the viewer's Model menu shows")
    p.add_argument("--quality", default="", help="the measured-quality line `liif-viewer models` shows")
    p.add_argument("--licence", default="", help="the licence line (default: both models' lines)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Write the combined model; a clear message (no traceback) for bad input."""
    from viewer.train.trainer import architecture_label, decoder_macs_per_pixel

    args = build_parser().parse_args(argv)
    try:
        if not str(args.out).endswith(".safetensors"):
            raise ArgumentError(f"--out must be a .safetensors file, got '{args.out}'")
        for path in (args.encoder, args.decoder, *([args.cleanup] if args.cleanup else [])):
            if not path.is_file():
                raise ArgumentError(f"{path}: no such weights file")
        enc_meta, dec_meta = read_metadata(args.encoder), read_metadata(args.decoder)
        cleanup = load_model(args.cleanup) if args.cleanup else None
        model = combine(load_model(args.encoder), load_model(args.decoder), cleanup)
    except (ArgumentError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    encoder_name = str(model.spec["args"]["encoder_spec"]["name"])
    parts = {"encoder": _part_record(args.encoder), "decoder": _part_record(args.decoder)}
    if args.cleanup:
        parts["cleanup"] = _part_record(args.cleanup)
    meta = {
        "name": args.name,
        "display_name": args.display_name or args.name,
        "architecture": architecture_label(model, _ENCODER_LABELS.get(encoder_name, f"{encoder_name}-LIIF")),
        "source": "combined by this project from two of its trained models (see the model card)",
        "licence": args.licence or _licences(enc_meta, dec_meta, args.cleanup),
        "decoder_macs_per_pixel": str(decoder_macs_per_pixel(model)),
        "parameters": str(sum(p.numel() for p in model.parameters())),
        "training": json.dumps({"combined": parts}, sort_keys=True),
    }
    if args.quality:
        meta["quality"] = args.quality
    save_safetensors(model, args.out, meta)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, {meta['parameters']} parameters, "
        f"{int(meta['decoder_macs_per_pixel']):,} decoder multiply-adds per pixel)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
