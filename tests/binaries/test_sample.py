"""The sample binary: the same seed gives the same samples from a workdir, an export and
the exported `sample` signature; .npy keeps the z of every image."""
import os

import numpy as np
import pytest
from testutil import run_binary, write_idx
import tensorflow as tf

from dcgan_keras.exporters import sampling
from dcgan_keras.utils import images as images_lib


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(workdir, export_dir) of a 2-step run on 32 random 28x28 images."""
    from dcgan_keras.config import TrainConfig
    from dcgan_keras.exporters import export_lib
    from dcgan_keras.training import train_lib
    root = tmp_path_factory.mktemp("sample")
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    write_idx(str(data / "train-images-idx3-ubyte.gz"), rng.integers(0, 256, (32, 28, 28)))
    write_idx(str(data / "train-labels-idx1-ubyte.gz"), np.arange(32) % 10)
    config = TrainConfig(dataset="fashion_mnist", data_dir=str(data), image_size=16,
                         channels=1, base_width=8, z_dim=8, batch_size=16, max_steps=2,
                         allow_download=False, num_sample_images=4)
    workdir = str(root / "workdir")
    train_lib.train_and_evaluate(config, workdir)
    export_lib.export_from_workdir(workdir, quantizations=[])
    return workdir, os.path.join(workdir, "export")


def _sample(*args):
    return run_binary("dcgan_keras.binaries.sample", *args, timeout=300)


def test_same_seed_same_samples_from_workdir_export_and_signature(run, tmp_path):
    workdir, export_dir = run
    out = str(tmp_path / "samples.npy")
    proc = _sample(f"--workdir={workdir}", "--num=6", "--seed=3", f"--out={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"wrote 6 samples (seed 3) to {out}" in proc.stdout
    images, z = sampling.load_samples(out)  # a structured array: no pickle
    assert images.shape == (6, 16, 16, 1) and images.dtype == np.uint8
    assert z.shape == (6, 8) and z.dtype == np.float32
    # the run's prior, the paper's U(-1, 1), drawn from seed (3, 0)
    np.testing.assert_array_equal(z, tf.random.stateless_uniform(
        [6, 8], seed=[3, 0], minval=-1.0, maxval=1.0).numpy())

    from_export, z_export = sampling.sample_from_export(export_dir, 6, 3, batch_size=4)
    np.testing.assert_array_equal(z_export, z)
    assert np.abs(from_export.astype(int) - images.astype(int)).max() <= 1  # rounding ties

    g = tf.saved_model.load(os.path.join(export_dir, "generator"))
    signature = g.signatures["sample"](num=tf.constant(6), seed=tf.constant(3, tf.int64))
    np.testing.assert_array_equal(signature["z"].numpy(), z)
    np.testing.assert_array_equal(signature["images"].numpy(), from_export)

    other, _ = sampling.sample_from_export(export_dir, 6, 4)
    assert not np.array_equal(other, from_export)


def test_png_grid_from_an_export(run, tmp_path):
    _, export_dir = run
    images, z = sampling.sample_from_export(export_dir, 5, 0)
    out = sampling.save_samples(str(tmp_path / "grid.png"), images, z)
    grid = images_lib.read_png(out)
    # 5 images -> 3 columns x 2 rows of 16x16 tiles with 2-pixel padding.
    assert grid.shape == (2 * 18 + 2, 3 * 18 + 2, 1)
    np.testing.assert_array_equal(grid[2:18, 2:18], images[0])
    np.testing.assert_array_equal(grid[20:36, 2:18], images[3])


def test_npz_and_bad_extensions(tmp_path):
    images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    z = np.ones((2, 5), np.float32)
    path = sampling.save_samples(str(tmp_path / "s.npz"), images, z)
    got_images, got_z = sampling.load_samples(path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_z, z)
    with pytest.raises(ValueError, match="--out must end in one of .png, .npy, .npz"):
        sampling.save_samples(str(tmp_path / "s.jpg"), images, z)
    assert sorted(os.listdir(tmp_path)) == ["s.npz"]


@pytest.mark.parametrize("distribution", ["uniform", "normal"])
def test_latents_rows_do_not_depend_on_num(distribution):
    np.testing.assert_array_equal(sampling.latents(3, 7, 4, distribution),
                                  sampling.latents(9, 7, 4, distribution)[:3])
    z = sampling.latents(4000, 0, 10, distribution).numpy()
    std = 1 / np.sqrt(3) if distribution == "uniform" else 1.0  # U(-1, 1): 1/sqrt(3)
    assert abs(z.mean()) < 0.02 and abs(z.std() - std) < 0.02
    assert (np.abs(z).max() <= 1) == (distribution == "uniform")


def test_sample_binary_needs_exactly_one_source(tmp_path):
    proc = _sample("--out=x.png")
    assert proc.returncode == 2
    assert "pass exactly one of --workdir (a training run) or --export_dir" in proc.stderr
