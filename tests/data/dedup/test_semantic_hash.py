"""De-duplication (paper 4.1.1): the autoencoder, the hash, the groups, the binary."""
import json
import os

import numpy as np
import pytest

from testutil import encode_image, run_binary, smooth_image
from dcgan_keras.data.dedup import match as dedup_match, semantic_hash as dedup
from dcgan_keras.data import datasets, source as source_lib
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
    hashes = dedup_match.hash_codes(codes)
    assert hashes.shape == (5, 16) and hashes.dtype == np.uint8
    assert hashes[0, 0] == 0b10000000 and hashes[0, 1] == 0b01000000
    assert [g.tolist() for g in dedup_match.group(hashes)] == [[0, 1, 3]]
    assert [g.tolist() for g in dedup_match.group(dedup_match.hash_codes(codes, 0.05))] == [[0, 1, 3]]
    assert dedup_match.group(np.zeros((0, 16), np.uint8)) == []


def _codes(n=64, seed=0):
    """Synthetic codes [n, 5 probes, 128] of n distinct images (dense ReLU codes)."""
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(0.5, 1.0, (n, len(dedup.PROBE_SHIFTS), 128)), 0)


def test_verified_groups_copies_and_shifted_copies_but_not_equal_hash_strangers():
    rng = np.random.default_rng(1)
    codes = _codes()
    # 60: a near copy of 3; 61: a copy of 7 shifted a pixel right, so 61 shifted left
    # (probe 2, dx=-1) is 7; 62 and 63: distinct images with the same ReLU bits as 10.
    codes[60] = codes[3] * (1 + rng.normal(0, 0.01, (5, 128)))
    codes[61, 2] = codes[7, 0] * (1 + rng.normal(0, 0.01, 128))
    for k in (62, 63):
        codes[k, 0] = np.where(codes[10, 0] > 0, rng.uniform(0.1, 3, 128), 0)
    codes = codes.astype(np.float16)
    base = codes[:, 0]
    # The paper's rule as written groups the three strangers (same active units) ...
    assert [10, 62, 63] in [g.tolist() for g in dedup_match.group(dedup_match.hash_codes(base))]
    # ... verification keeps them apart and finds the copy and the shifted copy.
    for search in dedup_match.SEARCHES:
        groups, stats = dedup_match.verified_groups(codes, max_distance=0.04, search=search)
        assert [g.tolist() for g in groups] == [[3, 60], [7, 61]], search
        assert stats["candidate_pairs"] >= 2 and stats["verified_pairs"] == 2
    assert sum(stats["hash_bands"]) == 128 and min(stats["hash_bands"]) >= 8
    # Per-unit median thresholds: every unit's bit is 1 for about half the images.
    bits = base.astype(np.float32) > dedup_match.unit_thresholds(codes)
    assert np.all(np.abs(bits.mean(0) - 0.5) <= 1 / 64 + 1e-9)


def test_hash_collisions_and_components():
    keys = np.zeros((4, 2, 1), np.uint64)
    keys[:, 0, 0] = [5, 6, 5, 7]   # 0 and 2 share a bucket
    keys[:, 1, 0] = [9, 7, 9, 9]   # 1's probe meets 3; 0's and 2's probes meet no image
    pairs = dedup_match.candidate_pairs(keys)
    assert pairs.tolist() == [[0, 0, 2], [1, 1, 3], [2, 0, 0]]
    groups = dedup_match.components(6, np.array([[4, 1], [1, 3], [0, 5]]))
    assert [g.tolist() for g in groups] == [[0, 5], [1, 3, 4]]
    assert dedup_match.components(3, np.zeros((0, 2), np.int64)) == []


def test_shift_images_moves_content_and_replicates_the_edge():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    right = dedup.shift_images(x, 0, 1).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(right[:, 1:], x[0, :, :3, 0])
    np.testing.assert_array_equal(right[:, 0], x[0, :, 0, 0])
    up = dedup.shift_images(x, -1, 0).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(up[:3], x[0, 1:, :, 0])
    np.testing.assert_array_equal(up[3], x[0, 3, :, 0])


def _planted_folder(root, distinct=40, copies=6):
    """distinct smooth 32x32 images (the hash's size: a pixel here is a pixel there), and
    exact / slightly noisy / one-pixel-shifted PNG copies of the first ones."""
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(distinct):
        (root / f"img_{i:03d}.png").write_bytes(encode_image(smooth_image(32, 32, i), "PNG"))
    for i in range(copies):
        image = smooth_image(32, 32, i)
        (root / f"zcopy_{i:03d}.png").write_bytes(encode_image(image, "PNG"))
        noisy = np.clip(image + rng.normal(0, 1, image.shape), 0, 255).astype(np.uint8)
        (root / f"znoisy_{i:03d}.png").write_bytes(encode_image(noisy, "PNG"))
        shifted = np.concatenate([image[:, :1], image[:, :-1]], 1)  # right, edge repeated
        (root / f"zshift_{i:03d}.png").write_bytes(encode_image(shifted, "PNG"))
    return str(root)


def test_binary_finds_planted_copies_and_groups_no_distinct_images(tmp_path):
    data = _planted_folder(tmp_path / "images")
    workdir = str(tmp_path / "dedup")
    result = run_binary(DEDUP, "--dataset=folder", f"--data_dir={data}",
                        f"--workdir={workdir}", "--epochs=20", "--batch_size=16")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(workdir, "dedup.json")) as f:
        report = json.load(f)
    assert report["num_images"] == 58 and report["ids_are"] == "paths relative to the folder"
    groups = [set(g) for g in report["groups"]]
    for i in range(6):  # every exact and shifted copy is grouped with its original
        assert any({f"img_{i:03d}.png", f"zcopy_{i:03d}.png", f"zshift_{i:03d}.png"} <= g
                   for g in groups), (i, groups)
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
    assert kept.num_examples == 58 - len(listed)
    assert not set(kept.ids()) & set(listed)


@pytest.mark.parametrize("flags,message", [
    (["--dataset=folder", "--data_dir=/no/such/dir"], "not a directory"),
    (["--dataset=lsun", "--data_dir=/no/such/dir"], "is not a directory"),
    (["--dataset=fashion_mnist", "--epochs=0"], "epochs must be >= 1"),
    (["--dataset=fashion_mnist", "--max_distance=-1"], "max_distance must be >= 0"),
])
def test_binary_bad_input_is_one_clear_line(tmp_path, flags, message):
    result = run_binary(DEDUP, f"--workdir={tmp_path}/w", "--allow_download=false", *flags)
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


def test_images_at_by_random_access_and_by_streaming():
    images = np.arange(6, dtype=np.uint8).reshape(6, 1, 1, 1) * np.full((1, 8, 8, 3), 40,
                                                                        np.uint8)
    source = source_lib.array_source("toy", "train", images)
    streaming = source_lib.Source(name="toy", split="train", num_examples=6,
                                  records=source.records, load=source.load)
    for s in (source, streaming):
        got = dedup.images_at(s, [4, 1, 4], preprocess="pad")
        assert got.shape == (3, 32, 32, 3)
        np.testing.assert_allclose(got[:, 16, 16, 0], np.array([160, 40, 160]) / 127.5 - 1,
                                   atol=1e-6)
