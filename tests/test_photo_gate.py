"""The deblur pass's photo-level gate: one blur estimate per photo scales the whole residual, so a sharp
photo passes unchanged (without running the network) and every tile of a photo is gated as the whole."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import numpy as np
import pytest
import torch
from test_deblur import TINY, _tiny_liif

from viewer.engine import degrade
from viewer.errors import ArgumentError, CheckpointError
from viewer.liif import mssnet
from viewer.liif.checkpoint import check_spec, load_model, save_safetensors
from viewer.liif.liif import LIIF, make_liif
from viewer.liif.mssnet import (
    PHOTO_BLOCK,
    PHOTO_BLOCKS,
    DeblurredEncoder,
    MSSNet,
    photo_blocks,
    photo_blur_share,
    tensor_blur_share,
)
from viewer.train import trainer
from viewer.train.options import TrainConfig

if TYPE_CHECKING:
    from viewer.engine.imageio import LoadedImage

GATE = {"photo_lo": 0.41, "photo_hi": 0.51}


def _gated_liif(seed: int = 0, **kw: object) -> LIIF:
    """A tiny deblur model with random weights (its tail too, so it is not the identity) and a photo gate."""
    return _tiny_liif(seed, **{**GATE, **kw})


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A sharp photo-like texture: blocks of random grey levels with hard edges, float (h, w, 3)."""
    rng = np.random.default_rng(seed)
    cells = rng.random((h // 4 + 1, w // 4 + 1, 3)).astype(np.float32)
    return np.ascontiguousarray(cells.repeat(4, 0).repeat(4, 1)[:h, :w])


def _blurred(img: np.ndarray) -> np.ndarray:
    return degrade.convolve(img, degrade.disc_kernel(2.5))


def test_blocks_cover_a_small_photo_whole_and_sample_a_big_one_evenly() -> None:
    assert photo_blocks(300, 500) == [(0, 300, 0, 500)]
    assert photo_blocks(1024, 1024) == [(0, 1024, 0, 1024)]  # 1 MP: still whole
    assert photo_blocks(100, 90_000) == [(0, 100, 0, 90_000)]  # too thin for a block: whole
    for h, w in ((8000, 12000), (12000, 8000), (3000, 40000), (2100, 2100)):
        blocks = photo_blocks(h, w)
        assert 1 < len(blocks) <= PHOTO_BLOCKS
        assert len(set(blocks)) == len(blocks)
        for y0, y1, x0, x1 in blocks:
            assert 0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w
            assert (y1 - y0, x1 - x0) == (PHOTO_BLOCK, PHOTO_BLOCK)
        ys = sorted({b[0] for b in blocks})
        xs = sorted({b[2] for b in blocks})
        # spread from edge to edge (one row or column: centred), not bunched in a corner
        for starts, edge in ((ys, h), (xs, w)):
            if len(starts) > 1:
                assert starts[0] == 0 and starts[-1] == edge - PHOTO_BLOCK
            else:
                assert starts == [(edge - PHOTO_BLOCK) // 2]
        assert len(ys) > 1 or len(xs) > 1


def test_the_estimate_is_the_same_from_pixels_and_from_the_network_input() -> None:
    img = _texture(120, 160)
    for pixels in (img, (img * 255).round().astype(np.uint8), (img * 65535).round().astype(np.uint16)):
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(pixels.dtype, 1.0)
        x = torch.from_numpy(pixels.astype(np.float32) / np.float32(scale))
        t = (x.permute(2, 0, 1)[None] - 0.5) / 0.5
        assert photo_blur_share(pixels) == pytest.approx(tensor_blur_share(t)[0], abs=2e-4)


def test_blurred_photos_measure_higher_than_sharp_ones_and_flat_is_zero() -> None:
    for seed in range(3):
        sharp = _texture(96, 128, seed)
        assert photo_blur_share(sharp) < 0.41 < 0.51 < photo_blur_share(_blurred(sharp))
    assert photo_blur_share(np.full((40, 40, 3), 0.5, np.float32)) == 0.0


def test_motion_blur_opens_the_gate_where_the_isotropic_share_alone_stays_shut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Motion blur smears one direction only: the isotropic share of a block texture shaken along its
    rows or columns stays as low as a sharp photo's, the directional one sees it."""
    for seed in range(3):
        sharp = _texture(96, 128, seed)
        shaken = {a: degrade.convolve(sharp, degrade.motion_kernel(6, a)) for a in (0, 90)}
        assert photo_blur_share(sharp) < 0.41
        for image in shaken.values():
            assert photo_blur_share(image) > 0.51  # the gate fully open
        with monkeypatch.context() as m:
            m.setattr(mssnet, "DIRECTIONAL_OFFSET", float("inf"))  # the isotropic part alone
            for image in shaken.values():
                assert photo_blur_share(image) < 0.41  # would have stayed closed
            isotropic_sharp = photo_blur_share(sharp)
        assert photo_blur_share(sharp) == pytest.approx(isotropic_sharp, abs=0.05)


def test_a_sharp_photo_passes_unchanged_without_running_the_network() -> None:
    net = MSSNet(**TINY, **GATE)  # type: ignore[arg-type]
    with torch.no_grad():
        net.tail.weight.normal_(0.0, 0.3)
    calls = []
    net.heads[0].register_forward_hook(lambda *_: calls.append(1))
    sharp = (torch.from_numpy(_texture(64, 80)).permute(2, 0, 1)[None] - 0.5) / 0.5
    blurred = (torch.from_numpy(_blurred(_texture(64, 80))).permute(2, 0, 1)[None] - 0.5) / 0.5
    with torch.no_grad():
        assert net(sharp) is sharp and not calls
        out = net(blurred)
    assert calls and (out - blurred).abs().max() > 1e-3
    # a batch of both: each photo gated by its own estimate
    with torch.no_grad():
        both = net(torch.cat((sharp, blurred)))
    assert torch.equal(both[0], sharp[0])
    assert torch.allclose(both[1], out[0], atol=1e-5)
    # half open: half the residual
    with torch.no_grad():
        half = net(blurred, [0.46])
    assert torch.allclose(half - blurred, (out - blurred) * 0.5, atol=1e-5)
    with pytest.raises(ValueError, match="2 photo shares"):
        net(blurred, [0.5, 0.5])


def test_tiles_are_gated_as_the_whole_photo() -> None:
    """The lazy store's tiles, each encoded from a crop, equal a whole encode: the engine measures the
    photo once and hands its estimate to every tile (a crop's own estimate would differ)."""
    from viewer.engine.render import Engine

    sharp = _texture(150, 170, seed=4)
    photo = (np.clip(sharp * 0.5 + _blurred(sharp) * 0.5, 0, 1) * 255).round().astype(np.uint8)
    share = photo_blur_share(photo)
    model = _gated_liif(seed=2, photo_lo=share - 0.05, photo_hi=share + 0.05)  # half open
    assert isinstance(model.encoder, DeblurredEncoder)
    assert model.encoder.deblur.photo_weight(share) == pytest.approx(0.5)
    engine = Engine(model, "cpu", "fp32")
    whole = engine.render_scale(engine.encode(photo), 340, 300)
    side = 16 + 2 * model.receptive_radius  # an encode budget that takes one 16-pixel tile at a time
    small = Engine(model, "cpu", "fp32", encode_budget_bytes=side * side * 4 * 8 * 4)
    store = small.open_store(photo, tile=16, dtype=torch.float32)
    tiled = small.render_scale(store, 340, 300)
    assert store.encoded > 50
    assert np.abs(tiled - whole).max() < 1e-4
    # the same tile encoded with its own crop's estimate instead differs: the photo's is needed
    crop = photo[40:100, 40:100]
    assert abs(photo_blur_share(crop) - share) > 1e-3
    own = small.encode_region(photo, 48, 64, 48, 64, blur_share=photo_blur_share(crop))
    given = small.encode_region(photo, 48, 64, 48, 64)
    assert (own - given).abs().max() > 1e-4


def test_the_spec_round_trips_and_bad_photo_gates_are_refused(tmp_path: Path) -> None:
    model = _gated_liif(seed=5)
    assert model.photo_gated
    path = tmp_path / "g.safetensors"
    save_safetensors(model, path)
    again = load_model(path)
    assert again.spec == model.spec and again.photo_gated
    x = torch.randn(1, 3, 24, 20)
    with torch.no_grad():
        assert torch.equal(again.encode(x), model.encode(x))
    for bad, why in (
        ({"photo_lo": 0.6, "photo_hi": 0.5}, "photo gate"),
        ({"photo_lo": -0.1, "photo_hi": 0.5}, "photo gate"),
        ({"photo_lo": 0.4, "photo_hi": None}, "finite number"),
    ):
        spec = model.spec
        args = {**spec["args"]["encoder_spec"]["args"], **bad}
        crafted = {**spec, "args": {**spec["args"], "encoder_spec": {"name": "deblurred", "args": args}}}
        with pytest.raises(CheckpointError, match=why):
            check_spec(crafted)
    with pytest.raises(ValueError, match="both"):
        MSSNet(**TINY, photo_lo=0.4)  # type: ignore[arg-type]
    assert not make_liif(n_feats=8, n_resblocks=1, hidden=(8,)).photo_gated


def test_a_cleanup_in_front_hands_the_raw_photos_estimate_on_and_tiles_equal_the_whole() -> None:
    """cleaned(photo-gated deblurred): the deblur pass is gated by the photo as it came in (the clean-up
    changes it), in a whole encode and in every tile alike."""
    from viewer.engine.render import Engine
    from viewer.liif.models import CleanedEncoder

    sharp = _texture(150, 170, seed=4)
    photo = (np.clip(sharp * 0.5 + _blurred(sharp) * 0.5, 0, 1) * 255).round().astype(np.uint8)
    share = photo_blur_share(photo)
    inner = _gated_liif(seed=7, photo_lo=share - 0.05, photo_hi=share + 0.05)
    spec = {"name": "cleaned", "args": {"encoder_spec": inner.spec["args"]["encoder_spec"], "n_resblocks": 1}}
    model = LIIF(spec, inner.spec["args"]["imnet_spec"])
    assert isinstance(model.encoder, CleanedEncoder) and model.photo_gated
    model.encoder.inner.load_state_dict(inner.encoder.state_dict())
    model.imnet.load_state_dict(inner.imnet.state_dict())
    with torch.no_grad():
        for p in model.encoder.cleanup.parameters():
            p.normal_(0.0, 0.05)
    model.eval()
    x = (torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)[None] - 0.5) / 0.5
    with torch.no_grad():
        whole = model.encode(x)
        given = model.encode(x, blur_share=share)
        cleaned = model.encoder.cleanup(x)
        by_cleaned = model.encoder.inner(cleaned)  # the deblur pass judging the cleaned photo instead
    assert torch.equal(whole, given)
    assert (whole - by_cleaned).abs().max() > 1e-4  # the clean-up changes the estimate: it matters
    engine = Engine(model, "cpu", "fp32")
    full = engine.render_scale(engine.encode(photo), 340, 300)
    side = 16 + 2 * model.receptive_radius
    small = Engine(model, "cpu", "fp32", encode_budget_bytes=side * side * 4 * 8 * 4)
    store = small.open_store(photo, tile=16, dtype=torch.float32)
    tiled = small.render_scale(store, 340, 300)
    assert store.encoded > 50 and store.blur_share == share
    assert np.abs(tiled - full).max() < 1e-4
    # a batch of two different photos: each judged on its own
    other = (torch.from_numpy(_texture(150, 170, seed=9)).permute(2, 0, 1)[None] - 0.5) / 0.5
    with torch.no_grad():
        pair = model.encode(torch.cat((x, other)))
        alone = model.encode(other)
    assert torch.allclose(pair[0], whole[0], atol=1e-5) and torch.allclose(pair[1], alone[0], atol=1e-5)


def test_the_training_option_reaches_the_spec_and_bad_values_are_refused() -> None:
    enc = {"name": "edsr-baseline", "args": {"no_upsampling": True}}
    cfg = TrainConfig(recipe="deblur", name="g", deblur_net=[4, 4, 4, 1], deblur_photo_gate=[0.41, 0.51])
    spec = trainer.deblur_spec(cfg, enc)
    assert (spec["args"]["photo_lo"], spec["args"]["photo_hi"]) == (0.41, 0.51)
    for bad in ([0.5, 0.4], [0.3], [0.3, 1.5]):
        with pytest.raises(ArgumentError, match="deblur-photo-gate"):
            trainer.deblur_spec(
                TrainConfig(recipe="deblur", name="g", deblur_net=[4, 4, 4, 1], deblur_photo_gate=bad), enc
            )


def test_the_viewer_says_what_the_gate_does_to_the_open_photo() -> None:
    """The worker opens the photo's store (nothing encoded) and posts one notice with the estimate."""
    import threading
    import time

    from viewer.app.messages import EncodeDone, EngineConfig, Notice
    from viewer.app.worker import RenderWorker
    from viewer.engine.render import Engine

    events: list[object] = []
    cond = threading.Condition()

    def emit(ev: object) -> None:
        with cond:
            events.append(ev)
            cond.notify_all()

    def notices_after_open(pixels: np.ndarray) -> list[str]:
        events.clear()
        worker = RenderWorker(emit, lambda c: Engine(_gated_liif(seed=6), "cpu", "fp32"))
        worker.start()
        try:
            worker.configure(EngineConfig("gated", "cpu", "fp32"), 1)
            worker.open_image(cast("LoadedImage", SimpleNamespace(pixels=pixels)), 1)
            deadline = time.monotonic() + 30
            with cond:  # the notice follows EncodeDone, on the worker thread
                while not any(isinstance(e, Notice) for e in events) and time.monotonic() < deadline:
                    cond.wait(0.5)
                assert any(isinstance(e, EncodeDone) for e in events)
                return [e.message for e in events if isinstance(e, Notice)]
        finally:
            assert worker.close(10)

    sharp = _texture(96, 128, seed=1)
    said = notices_after_open((sharp * 255).round().astype(np.uint8))
    assert len(said) == 1 and "looks sharp" in said[0] and "0.41" in said[0]
    blurred = (np.clip(_blurred(sharp), 0, 1) * 255).round().astype(np.uint8)
    said = notices_after_open(blurred)
    assert len(said) == 1 and "deblurred in full" in said[0]
    net = MSSNet(**TINY, **GATE)  # type: ignore[arg-type]
    assert "at 50% strength" in net.describe(0.46)


def test_a_sharp_photos_tiles_take_only_the_encoders_halo() -> None:
    """Where the photo gate skips the network, a tile needs only the encoder's own context: the engine
    cuts smaller crops (about half the encode work for the viewer's small tiles), with the same result."""
    from viewer.engine.render import Engine

    model = _gated_liif(seed=8)
    assert isinstance(model.encoder, DeblurredEncoder)
    inner_radius = int(cast(int, model.encoder.inner.receptive_radius))
    assert model.radius_for(0.2) == inner_radius < model.receptive_radius == model.radius_for(0.6)
    assert model.radius_for(None) == model.receptive_radius
    sharp = (_texture(150, 170, seed=4) * 255).round().astype(np.uint8)
    assert photo_blur_share(sharp) < 0.41
    seen: list[tuple[int, ...]] = []
    model.encoder.inner.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    engine = Engine(model, "cpu", "fp32")
    whole = engine.render_scale(engine.encode(sharp), 340, 300)
    side = 16 + 2 * model.receptive_radius
    small = Engine(model, "cpu", "fp32", encode_budget_bytes=side * side * 4 * 8 * 4)

    def pixels_encoded(photo: np.ndarray) -> tuple[int, np.ndarray]:
        seen.clear()
        store = small.open_store(photo, tile=16, dtype=torch.float32)
        out = small.render_scale(store, 340, 300)
        assert store.encoded > 50
        return sum(h * w for _b, _c, h, w in seen), out

    sharp_px, tiled = pixels_encoded(sharp)
    assert np.abs(tiled - whole).max() < 1e-4
    blurred = (np.clip(_blurred(sharp / 255.0), 0, 1) * 255).round().astype(np.uint8)
    assert photo_blur_share(blurred) > 0.51
    blurred_px, _ = pixels_encoded(blurred)
    assert sharp_px < 0.7 * blurred_px  # the same tiles, smaller crops
    # the same pixels as the encoder without the deblur pass in front
    plain = LIIF(model.spec["args"]["encoder_spec"]["args"]["encoder_spec"], model.spec["args"]["imnet_spec"])
    plain.encoder.load_state_dict(model.encoder.inner.state_dict())
    plain.imnet.load_state_dict(model.imnet.state_dict())
    ref = Engine(plain.eval(), "cpu", "fp32")
    assert np.abs(ref.render_scale(ref.encode(sharp), 340, 300) - whole).max() < 1e-5


def test_a_sharp_photo_is_encoded_whole_in_larger_pieces_with_the_same_result() -> None:
    """`Engine.encode` of a photo over the budget's crop: where the gate skips the network, the pieces are
    sized for the encoder's halo alone (fewer, larger pieces), and they still equal one untiled encode."""
    from viewer.engine.render import Engine

    model = _gated_liif(seed=9)
    sharp = (_texture(300, 330, seed=6) * 255).round().astype(np.uint8)
    blurred = (np.clip(_blurred(sharp / 255.0), 0, 1) * 255).round().astype(np.uint8)
    side = 40 + 2 * model.receptive_radius
    small = Engine(model, "cpu", "fp32", encode_budget_bytes=side * side * 4 * 8 * 4)
    share_sharp, share_blurred = small.blur_share(sharp), small.blur_share(blurred)
    assert share_sharp is not None and share_blurred is not None
    assert small.encode_tile_size(share_sharp) > small.encode_tile_size(share_blurred)
    assert small.encode_tile_size(share_blurred) == small.encode_tile_size()  # the whole halo
    seen: list[tuple[int, ...]] = []
    assert isinstance(model.encoder, DeblurredEncoder)
    model.encoder.inner.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    tiled = small.render_scale(small.encode(sharp), 300, 260)
    pieces = len(seen)
    seen.clear()
    small.encode(blurred)
    assert 1 < pieces < len(seen)
    whole = Engine(model, "cpu", "fp32")
    assert np.abs(tiled - whole.render_scale(whole.encode(sharp), 300, 260)).max() < 1e-4


def test_tiles_are_encoded_without_autograd_from_any_thread() -> None:
    """`encode_region` runs in inference mode wherever it is called from (the viewer's worker prefetches
    outside a render; a render's decode threads encode missing tiles): no autograd graph is kept, and a
    decode thread can turn what it renders into numpy."""
    import threading

    from viewer.engine.render import Engine

    model = _gated_liif(seed=9)
    engine = Engine(model, "cpu", "fp32")
    photo = (_texture(64, 80, seed=2) * 255).round().astype(np.uint8)
    got: list[torch.Tensor] = []
    thread = threading.Thread(target=lambda: got.append(engine.encode_region(photo, 0, 32, 0, 48)))
    thread.start()
    thread.join()
    assert not got[0].requires_grad and torch.is_inference(got[0])
    assert engine.photo_gate_note(0.2).startswith("Deblur: this photo looks sharp")
