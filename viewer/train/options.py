"""The settings of a training run and the options of `liif-viewer train` (no torch import here, so the
command line can list its options without loading torch)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

RECIPES = ("fast", "oldphoto", "cleanup", "scratch", "deblur", "deblur-tune")


@dataclass
class TrainConfig:
    """Everything that defines a run; stored in the work folder and in the shipped file's metadata."""

    recipe: str
    name: str
    steps: int = 3000
    batch: int = 16
    lr: float = 1e-3
    lr_min_ratio: float = 0.01
    seed: int = 0
    points: int = 2304
    distill_points: int = 2304
    step_points: int = 2304
    """Ground-truth points per crop used in one step of recipe fast (each with a teacher answer too)."""
    random_points: int = -1
    """Recipe fast: teacher points at random coordinates and cells per crop in one step; -1: `step_points`.
    Fewer than `step_points` weights the loss towards the x1..x4 of the ground-truth points."""
    distill_scales: tuple[float, float] = (1.0, 30.0)
    gt_weight: float = 0.5
    loss: str = "l1"
    """Recipe fast: `l1` (LIIF's) or `l2`, whose minimum is what PSNR rewards (for a final fine-tune)."""
    hidden: list[int] = field(default_factory=lambda: [88, 88, 88])
    local_ensemble: bool = True
    hyper_hidden: int = 0
    """Recipe fast: 0 trains an `mlp` decoder; above 0, a latent-modulated `lm-mlp` (liif-lm) whose
    per-latent hypernetwork has this width; `hidden` are then its query MLP's widths."""
    hyper_blocks: int = 0
    """Residual blocks in a latent-modulated decoder's hypernetwork; `init` may be the same model with fewer."""
    coord_weights: bool = False
    """A latent-modulated decoder's per-latent coordinate weights (`viewer.liif.lm`); `init` may lack them."""
    coord_quadratic: bool = False
    """Coordinate weights of the offset's second-order terms too (implies `coord_weights`); `init` may have
    only the linear ones, or none."""
    first_rank: int = 0
    """Factor the decoder's first layer to this rank (0: full); see `models.LowRankLinear`."""
    inherit_layers: bool = False
    """Recipe fast: start each student decoder layer whose shape matches the teacher's from the teacher."""
    init: str = ""
    """Start the student from this weights file (same architecture), e.g. to continue a shipped model."""
    feat_unfold: bool = True
    cell_decode: bool = True
    pool: int = 4000
    pool_shrink: float = 0.0
    """Recipe fast: share of the pool crops built in this run whose photo is first shrunk (see
    `data.make_batch`): sharper inputs than the training photos give, on which the teacher still answers."""
    pool_graphics: float = 0.0
    """Recipe fast: share of the pool crops built in this run cut from synthetic drawings of shapes and text
    (`graphics.synthetic_graphic`), which the training photos lack."""
    pool_text: float = 0.0
    """Recipe fast: share of the pool crops built in this run cut from pages of small print
    (`graphics.text_page`)."""
    degrade_p: float = 0.8
    cleanup_width: int = 32
    """Recipe cleanup: channels of the clean-up network in front of the teacher's encoder."""
    cleanup_blocks: int = 8
    """Recipe cleanup: its residual blocks (receptive radius 2 * blocks + 2 pixels)."""
    crop: int = 64
    """Recipe cleanup: side of the low-resolution crops it learns on (it sees no HR pixels)."""
    clean_weight: float = 1.0
    """Recipe cleanup: loss weight of the crops left clean (above 1: changing a clean photo costs more)."""
    dense_share: float = 0.0
    """Recipe deblur: share of the steps whose crops are `dense_crop` pixels, shrunk by a scale from
    `dense_scale`: the training photos are about 321 px high, so a `crop` of 128 px is never shrunk more than
    2.5 times, while a benchmark input at x4 is the whole photo shrunk 4 times (denser detail, which the
    same blur destroys more of)."""
    dense_crop: int = 80
    """Recipe deblur: the side of a dense step's low-resolution crops."""
    dense_scale: tuple[float, float] = (2.5, 4.0)
    """Recipe deblur: the range a dense crop's shrink is drawn from (as far as its photo allows)."""
    dense_batch: int = 0
    """Recipe deblur: crops in a dense step; 0: as many as give `batch` crops' pixels."""
    deblur_net: list[int] = field(default_factory=lambda: [20, 40, 40, 1, 2, 3])
    """Recipe deblur: the MSSNet's wf, scale, vscale, then U-Net stages per scale, coarsest first."""
    deblur_halo: int = -1
    """Recipe deblur: the halo its spec declares (-1: the analytic bound; see `mssnet.MSSNet`)."""
    deblur_gate: list[float] = field(default_factory=list)
    """Recipe deblur: the local blur gate's [lo, hi] (`mssnet.BlurGate`) and, optionally, its directional
    offset, or empty for none."""
    deblur_photo_gate: list[float] = field(default_factory=list)
    """Recipe deblur: the photo gate's [lo, hi] (`mssnet.MSSNet.photo`), or empty for none."""
    train_deblur: bool = False
    """Recipe deblur-tune: fine-tune the deblurring network too, end to end through the HR loss, with the
    tuned encoder (otherwise only the tuned encoder trains)."""
    tuned_from: str = ""
    """Recipe deblur-tune: start the tuned encoder from this deblur model's tuned encoder instead of a copy
    of the official one (for a new deblurring network in front of a tuned encoder trained before)."""
    encoder: str = "edsr-baseline"
    teacher: str = "edsr-baseline-liif"
    save_every: int = 200
    log_every: int = 50
    note: str = ""
    """Free text kept with the settings in the file's `training` metadata (e.g. "stage 6: ...")."""


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Options of `liif-viewer train` (also `python -m viewer.train`)."""
    p = parser or argparse.ArgumentParser(
        prog="liif-viewer train", description="train one of the project's LIIF models"
    )
    d = TrainConfig(recipe="fast", name="")
    p.add_argument("--recipe", required=True, choices=RECIPES)
    p.add_argument("--name", required=True, help="model name, e.g. liif-lm")
    p.add_argument("--out", type=Path, required=True, help="the .safetensors file to write at the end")
    p.add_argument("--work", type=Path, default=None, help="state and pool folder (default build/train/NAME)")
    p.add_argument(
        "--data",
        default=None,
        help="training image folders, separated by ':' (default: ../shared/data/train/*)",
    )
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3; oldphoto 1e-4)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--points", type=int, default=d.points, help="HR pixels sampled per crop")
    p.add_argument("--hidden", default="88,88,88", help="decoder widths (recipes fast and scratch)")
    p.add_argument(
        "--no-ensemble",
        action="store_true",
        help="decoder without LIIF's local ensemble: one query per pixel instead of four (fast, scratch)",
    )
    p.add_argument(
        "--hyper-hidden",
        type=int,
        default=d.hyper_hidden,
        help="train a latent-modulated decoder (liif-lm) with a per-latent hypernetwork this wide; "
        "--hidden are then its per-query widths (fast)",
    )
    p.add_argument(
        "--hyper-blocks",
        type=int,
        default=d.hyper_blocks,
        help="residual blocks in the hypernetwork of --hyper-hidden; --init may have fewer, and the new "
        "ones start as identities (fast)",
    )
    p.add_argument(
        "--coord-weights",
        action="store_true",
        help="give the decoder of --hyper-hidden per-latent weights of the relative coordinate; --init may "
        "lack them, and they start at zero (fast)",
    )
    p.add_argument(
        "--coord-quadratic",
        action="store_true",
        help="--coord-weights for the offset's second-order terms too (rel_r^2, rel_c^2, rel_r*rel_c); "
        "--init may have only the linear ones, or none, and the new ones start at zero (fast)",
    )
    p.add_argument(
        "--first-rank",
        type=int,
        default=d.first_rank,
        help="factor the decoder's first layer to this rank (0: full rank) (fast, scratch)",
    )
    p.add_argument(
        "--inherit-layers",
        action="store_true",
        help="start decoder layers shaped as the teacher's from its weights; a factored first layer from its "
        "principal directions on the pool (fast)",
    )
    p.add_argument(
        "--init", default="", help="start from this weights file of the same architecture (fast, scratch)"
    )
    p.add_argument(
        "--step-points",
        type=int,
        default=d.step_points,
        help="ground-truth points per crop in each step (fast)",
    )
    p.add_argument(
        "--random-points",
        type=int,
        default=d.random_points,
        help="teacher points at random coordinates and cells (x1..x30) per crop in each step; "
        "default: as many as --step-points (fast)",
    )
    p.add_argument("--pool", type=int, default=d.pool, help="crops in the distillation pool (recipe fast)")
    p.add_argument(
        "--pool-shrink",
        type=float,
        default=d.pool_shrink,
        help="share of the pool crops built in this run cut from photos first shrunk by 1 to 2.5x, for "
        "sharper inputs (fast; default 0)",
    )
    p.add_argument(
        "--pool-graphics",
        type=float,
        default=d.pool_graphics,
        help="share of the pool crops built in this run cut from synthetic drawings of shapes and text "
        "(fast; default 0)",
    )
    p.add_argument(
        "--pool-text",
        type=float,
        default=d.pool_text,
        help="share of the pool crops built in this run cut from pages of small print (fast; default 0)",
    )
    p.add_argument(
        "--gt-weight", type=float, default=d.gt_weight, help="weight of the ground-truth loss (fast)"
    )
    p.add_argument(
        "--loss",
        default=d.loss,
        choices=("l1", "l2"),
        help="l1 (LIIF's) or l2, which PSNR rewards, e.g. for a final fine-tune (fast)",
    )
    p.add_argument(
        "--degrade-p", type=float, default=d.degrade_p, help="share of damaged inputs (oldphoto, cleanup)"
    )
    p.add_argument(
        "--cleanup-width", type=int, default=d.cleanup_width, help="clean-up network channels (cleanup)"
    )
    p.add_argument(
        "--cleanup-blocks",
        type=int,
        default=d.cleanup_blocks,
        help="clean-up network residual blocks (cleanup)",
    )
    p.add_argument("--crop", type=int, default=d.crop, help="low-resolution crop side (cleanup)")
    p.add_argument(
        "--clean-weight",
        type=float,
        default=d.clean_weight,
        help="loss weight of the crops left clean, against 1 for damaged ones (cleanup)",
    )
    p.add_argument(
        "--dense-share",
        type=float,
        default=d.dense_share,
        help="share of steps on crops shrunk more than --crop allows, as at x4 (deblur; default 0: none)",
    )
    p.add_argument("--dense-crop", type=int, default=d.dense_crop, help="a dense step's crop side (deblur)")
    p.add_argument(
        "--dense-scale",
        default=",".join(str(v) for v in d.dense_scale),
        help="LO,HI: the range a dense crop's shrink is drawn from (deblur)",
    )
    p.add_argument(
        "--dense-batch",
        type=int,
        default=d.dense_batch,
        help="crops in a dense step (deblur; default 0: the pixels of --batch crops of --crop px)",
    )
    p.add_argument(
        "--deblur-net",
        default="20,40,40,1,2,3",
        help="MSSNet wf, scale, vscale, then U-Net stages per scale, coarsest first (deblur; MSSNet-small)",
    )
    p.add_argument(
        "--deblur-halo",
        type=int,
        default=d.deblur_halo,
        help="halo its spec declares for tiled encoding; -1: the analytic bound (deblur)",
    )
    p.add_argument(
        "--deblur-gate",
        default="",
        help="LO,HI[,OFFSET]: scale the residual by a blur estimate mapped from [LO, HI] to [0, 1], so "
        "sharp regions are left alone; with OFFSET the estimate also looks along four directions (for "
        "motion blur), lowered by OFFSET; empty: no gate (deblur)",
    )
    p.add_argument(
        "--deblur-photo-gate",
        default="",
        help="LO,HI: scale the residual by the whole photo's blur estimate mapped from [LO, HI] to [0, 1], "
        "so sharp photos pass unchanged (and without running the network); empty: none (deblur)",
    )
    p.add_argument(
        "--train-deblur",
        action="store_true",
        help="also fine-tune the deblurring network, end to end through the HR loss (deblur-tune)",
    )
    p.add_argument(
        "--tuned-from",
        default="",
        help="a deblur model whose tuned encoder the tuned copy starts from, instead of the official "
        "encoder (deblur-tune)",
    )
    p.add_argument("--encoder", default=d.encoder, choices=("edsr-baseline", "rdn"), help="(scratch)")
    p.add_argument(
        "--teacher", default=d.teacher, help="registry name or weights file (fast, oldphoto, cleanup)"
    )
    p.add_argument("--display-name", default="", help="the name the viewer's menu shows")
    p.add_argument(
        "--quality",
        default="",
        help="measured-quality line for `liif-viewer models` (from `liif-viewer eval`), e.g. with --export-now",
    )
    p.add_argument("--note", default=d.note, help="a note kept with this run's settings in the file")
    p.add_argument("--device", default="auto")
    p.add_argument("--save-every", type=int, default=d.save_every)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--max-steps-now", type=int, default=None, help="stop this call after N steps (resumable)")
    p.add_argument(
        "--export-now",
        action="store_true",
        help="write --out from the work folder's saved state as it is (to measure a run part way), then stop",
    )
    p.add_argument("--no-resume", action="store_true", help="start over even if the work folder has a run")
    return p
