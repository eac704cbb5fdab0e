"""De-duplication (paper 4.1.1): the autoencoder, the hash, the groups, the binary."""
import json
import os

import numpy as np
import pytest

from testutil import encode_image, run_binary, smooth_image
from dcgan_keras.analysis import dedup
from dcgan_keras.data import datasets
from dcgan_keras.utils.images import read_png

DEDUP = "dcgan_keras.binaries.dedup"


def test_autoencoder_is_3072_128_3072_relu():
    autoencoder, encoder = dedup.build_autoencoder()
    assert autoencoder.input_shape == (None, 3072) and autoencoder.output_shape == (None, 3072)
    code = autoencoder.get_layer("code")
    assert code.units == 128 and code.activation.__name__ == "relu"
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3072)).astype(np.float32)
    codes = encoder(x, training=False).numpy()
    assert codes.shape == (4, 128) and codes.min() >= 0
    # Noise and dropout act while training only: inference is deterministic.
    np.testing.assert_array_equal(codes, encoder(x, training=False).numpy())
    assert not np.allclose(autoencoder(x, training=True), autoencoder(x, training=True))


def test_hash_bits_and_groups_of_equal_hashes():
    codes = np.zeros((5, 128), np.float32)
    codes[0, [0, 9]] = 1.0
    codes[1, [0, 9]] = 0.5   # same bits as 0
    codes[2, [0]] = 1.0
    codes[3, [0, 9]] = 2.0   # same bits as 0
    codes[4, 9] = 0.01       # below a 0.05 threshold: all zero
    hashes = dedup.hash_codes(codes)
    assert hashes.shape == (5, 16) and hashes.dtype == np.uint8
    assert hashes[0, 0] == 0b10000000 and hashes[0, 1] == 0b01000000
    assert [g.tolist() for g in dedup.group(hashes)] == [[0, 1, 3]]
    assert [g.tolist() for g in dedup.group(dedup.hash_codes(codes, 0.05))] == [[0, 1, 3]]
    assert dedup.group(np.zeros((0, 16), np.uint8)) == []


def _planted_folder(root, distinct=40, copies=6):
    """distinct smooth images, and exact / slightly noisy PNG copies of the first ones."""
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(distinct):
        (root / f"img_{i:03d}.png").write_bytes(encode_image(smooth_image(48, 48, i), "PNG"))
    for i in range(copies):
        (root / f"zcopy_{i:03d}.png").write_bytes(encode_image(smooth_image(48, 48, i), "PNG"))
        noisy = np.clip(smooth_image(48, 48, i) + rng.normal(0, 1, (48, 48, 3)), 0, 255)
        (root / f"znoisy_{i:03d}.png").write_bytes(encode_image(noisy.astype(np.uint8), "PNG"))
    return str(root)


def test_binary_finds_planted_copies_and_groups_no_distinct_images(tmp_path):
    data = _planted_folder(tmp_path / "images")
    workdir = str(tmp_path / "dedup")
    result = run_binary(DEDUP, "--dataset=folder", f"--data_dir={data}",
                        f"--workdir={workdir}", "--epochs=20", "--batch_size=16")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(workdir, "dedup.json")) as f:
        report = json.load(f)
    assert report["num_images"] == 52 and report["ids_are"] == "paths relative to the folder"
    groups = [set(g) for g in report["groups"]]
    for i in range(6):  # every exact copy has its original's hash
        assert any({f"img_{i:03d}.png", f"zcopy_{i:03d}.png"} <= g for g in groups), i
    for g in groups:  # and no group holds two different images
        assert len({name[-7:-4] for name in g}) == 1, g
    listed = open(os.path.join(workdir, "exclude_list.txt")).read().split()
    assert sorted(listed) == sorted(m for g in report["groups"] for m in g[1:])
    assert report["num_excluded"] == len(listed) >= 6
    grid = read_png(os.path.join(workdir, "dedup_groups.png"))
    assert grid.shape[1] == 8 * 34 + 2 and grid.shape[0] == len(groups) * 34 + 2
    assert os.path.exists(os.path.join(workdir, "autoencoder.weights.h5"))
    # The list is an --exclude_list: exactly those records leave the training data.
    kept = datasets.get_source("folder", "train", data,
                               exclude_list=os.path.join(workdir, "exclude_list.txt"))
    assert kept.num_examples == 52 - len(listed)
    assert not set(kept.ids()) & set(listed)


@pytest.mark.parametrize("flags,message", [
    (["--dataset=folder", "--data_dir=/no/such/dir"], "not a directory"),
    (["--dataset=lsun", "--data_dir=/no/such/dir"], "is not a directory"),
    (["--dataset=fashion_mnist", "--epochs=0"], "epochs must be >= 1"),
])
def test_binary_bad_input_is_one_clear_line(tmp_path, flags, message):
    result = run_binary(DEDUP, f"--workdir={tmp_path}/w", "--allow_download=false", *flags)
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


def test_images_at_by_random_access_and_by_streaming():
    images = np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1) * np.full((1, 8, 8, 3), 40,
                                                                        np.uint8)
    source = datasets.array_source("toy", "train", images)
    streaming = datasets.Source(name="toy", split="train", num_examples=6,
                                records=source.records, load=source.load)
    for s in (source, streaming):
        got = dedup.images_at(s, [4, 1, 4], preprocess="pad")
        assert got.shape == (3, 32, 32, 3)
        np.testing.assert_allclose(got[:, 16, 16, 0], np.array([160, 40, 160]) / 127.5 - 1,
                                   atol=1e-6)
