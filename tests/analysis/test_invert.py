"""Inverting G: the z of G(z) is found again, the images to invert are read as the run
would read them (and bad ones refused in one line), and the outputs round-trip."""
import os

import numpy as np
import pytest
from PIL import Image

from dcgan_keras.analysis import invert, outputs
from dcgan_keras.models import latent
from dcgan_keras.models.discriminator import Discriminator
from dcgan_keras.models.generator import Generator


def _varied_generator():
    """A tiny G whose images vary with z (the default N(0, 0.02) weights give near-constant
    images, which any z reproduces): kernels redrawn at unit gain."""
    g = Generator(image_size=16, channels=3, z_dim=8, base_width=8)
    rng = np.random.default_rng(0)
    for v in g.trainable_variables:
        if len(v.shape) > 1:
            fan_in = np.prod(v.shape[:-1]) if "deconv" not in v.path else (
                np.prod(v.shape[:2]) * v.shape[3] / 4)
            v.assign(rng.normal(0, 1 / np.sqrt(fan_in), v.shape).astype("float32"))
    return g, Discriminator(image_size=16, channels=3, base_width=8)


@pytest.mark.parametrize("feature_weight", [0.0, 1.0])
def test_inverting_g_of_z_finds_z_again(feature_weight):
    g, d = _varied_generator()
    z_true = latent.stateless([6, 8], [5, 5], "uniform").numpy()
    x = g(z_true, training=False).numpy()
    z_random = latent.stateless([6, 8], [9, 9], "uniform").numpy()
    baseline = invert.psnr(g(z_random, training=False).numpy(), x)
    assert baseline.max() < 25  # other z give other images
    r = invert.invert(g, d, x, starts=4, steps=200, feature_weight=feature_weight, seed=1)
    assert r.psnr.min() > 40  # the stated goal: 40 dB on G's own samples
    np.testing.assert_allclose(r.z, z_true, atol=1e-2)
    assert np.all(np.abs(r.z) <= 1)  # kept in the prior's cube
    np.testing.assert_allclose(r.reconstructions, g(r.z, training=False).numpy(), atol=1e-6)
    assert r.start.shape == (6,) and set(r.start) <= set(range(4))


def test_no_steps_keeps_the_best_of_the_random_starts():
    g, d = _varied_generator()
    x = g(latent.stateless([3, 8], [5, 5], "uniform"), training=False).numpy()
    one = invert.invert(g, d, x, starts=1, steps=0, feature_weight=0.0, seed=2)
    many = invert.invert(g, d, x, starts=8, steps=0, feature_weight=0.0, seed=2)
    assert np.all(many.loss <= one.loss + 1e-7)  # start 0 of 8 is start 0 of 1
    np.testing.assert_allclose(one.z, latent.stateless([3, 8], [2, 0], "uniform").numpy())
    with pytest.raises(ValueError, match=r"makes \(16, 16, 3\) images"):
        invert.invert(g, d, x[..., :1], steps=0)


def _png(path, array):
    Image.fromarray(array).save(path)


def test_a_folder_takes_the_runs_preprocessing_and_refuses_a_non_image(tmp_path):
    rng = np.random.default_rng(0)
    _png(tmp_path / "a.png", rng.integers(0, 256, (16, 16, 3), np.uint8))
    _png(tmp_path / "b.png", rng.integers(0, 256, (20, 30, 3), np.uint8))  # to crop
    _png(tmp_path / "c.png", rng.integers(0, 256, (16, 16), np.uint8))  # grayscale
    images, note = invert.load_images(str(tmp_path), 16, 3, "crop_resize")
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.float32
    assert -1 <= images.min() and images.max() <= 1
    first = np.asarray(Image.open(tmp_path / "a.png"), np.float32) / 127.5 - 1
    np.testing.assert_allclose(images[0], first, atol=1e-6)
    assert note == ("1 of 3 images are not 16x16: the run's 'crop_resize' preprocessing "
                    "cropped and resized them")
    np.testing.assert_array_equal(images[2][..., 0], images[2][..., 1])  # gray -> RGB
    assert invert.load_images(str(tmp_path), 16, 3, max_images=1)[0].shape[0] == 1
    (tmp_path / "d.png").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"d.png is not an image that decodes"):
        invert.load_images(str(tmp_path), 16, 3)


def test_arrays_and_sheets_are_read_and_bad_ones_refused(tmp_path):
    rng = np.random.default_rng(0)
    sheet = tmp_path / "sheet.npz"
    pixels = rng.integers(0, 256, (4, 16, 16, 3), np.uint8)
    np.savez(sheet, images=pixels, z=np.zeros((4, 8), np.float32))
    images, note = invert.load_images(str(sheet), 16, 3)
    np.testing.assert_allclose(images, pixels / 127.5 - 1, atol=1e-6)
    assert note == ""
    floats = tmp_path / "floats.npy"
    np.save(floats, pixels / 127.5 - 1)
    np.testing.assert_allclose(invert.load_images(str(floats), 16, 3)[0], images, atol=1e-2)
    cases = {"two.npy": (rng.integers(0, 256, (2, 16, 16, 2), np.uint8),
                         r"shape \(2, 16, 16, 2\); images must be \[N, H, W, C\] with C"),
             "range.npy": (np.full((2, 16, 16, 3), 5.0), "outside \\[-1, 1\\]")}
    for name, (array, message) in cases.items():
        np.save(tmp_path / name, array)
        with pytest.raises(ValueError, match=message):
            invert.load_images(str(tmp_path / name), 16, 3)
    with pytest.raises(ValueError, match="neither a folder of images nor a .npz/.npy"):
        invert.load_images(str(tmp_path / "missing.png"), 16, 3)


def test_run_writes_a_sheet_of_z_the_pairs_and_the_errors(tmp_path):
    g, d = _varied_generator()
    z_true = latent.stateless([3, 8], [5, 5], "uniform").numpy()
    x = g(z_true, training=False).numpy()
    summary = invert.run(g, d, x, str(tmp_path), starts=2, steps=100, feature_weight=0.0)
    assert summary["num_images"] == 3 and len(summary["images"]) == 3
    assert summary["mean_psnr"] == pytest.approx(np.mean([i["psnr"] for i in summary["images"]]))
    # The sheet: what every --sheet verb and sample --z_file read.
    images, z = outputs.load_sheet(str(tmp_path / "inverted.npz"))
    np.testing.assert_array_equal(z, outputs.load_z_file(str(tmp_path / "inverted.npz")))
    again = np.round((np.clip(g(z, training=False).numpy(), -1, 1) + 1) * 127.5)
    np.testing.assert_array_equal(images, again.astype(np.uint8))
    grid = np.asarray(Image.open(tmp_path / "inversion.png"))
    assert grid.shape == (2 + 18, 2 + 6 * 18, 3)  # one row of 3 (original, reconstruction)
    assert os.path.exists(tmp_path / "inversion.json")
