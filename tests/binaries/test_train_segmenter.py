"""The train_segmenter binary end to end at tiny settings, and its one-line refusals (the
library is tested in-process: tests/analysis/dissect/test_learned_segmenter.py)."""
import json
import os

import numpy as np
from testutil import run_binary

from dcgan_keras.analysis.dissect import segmenters
from dcgan_keras.data import shapes

BINARY = "dcgan_keras.binaries.train_segmenter"


def test_trains_and_writes_a_segmenter_that_loads(tmp_path):
    result = run_binary(BINARY, "--dataset=shapes_random", "--image_size=16",
                        f"--workdir={tmp_path}/w", "--train_scenes=64", "--test_scenes=16",
                        "--epochs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    path = f"{tmp_path}/w/segmenter"
    assert sorted(os.listdir(path)) == sorted([
        "assets", "concepts.txt", "fingerprint.pb", "saved_model.pb", "segmenter.json",
        "segmenter_test.png", "variables"])
    assert f"--segmenter={path}" in result.stdout
    assert "epoch 1/1: loss" in result.stderr and "held-out IoU background" in result.stderr
    info = json.load(open(f"{path}/segmenter.json"))
    assert (info["dataset"], info["image_size"], info["train_scenes"], info["test_scenes"],
            info["epochs"]) == ("shapes_random", 16, 64, 16, 1)
    assert set(info["test_iou"]) == set(shapes.CONCEPTS)
    for concept in shapes.CONCEPTS:  # the printed value is the saved one
        assert f"{concept:>12s} held-out IoU {info['test_iou'][concept]:.4f}" in result.stdout
    seg = segmenters.load(path)
    assert seg.concepts == shapes.CONCEPTS and seg.probabilities is not None
    images, _ = shapes.render_batch(range(3), 16, "test", "random")
    labels = seg(images)
    assert labels.shape == (3, 16, 16) and labels.min() >= 0 and labels.max() < 4
    np.testing.assert_array_equal(np.argmax(seg.probabilities(
        images.astype(np.float32) / 127.5 - 1.0).numpy(), -1), labels)


def test_bad_input_is_one_clear_line(tmp_path):
    for flags, message in [
            (["--dataset=mnist"], "dataset must be one of shapes, shapes_random"),
            (["--image_size=20"], "image_size must be a multiple of 8 and >= 16"),
            (["--epochs=0"], "epochs must be >= 1, got 0")]:
        result = run_binary(BINARY, f"--workdir={tmp_path}/w", *flags)
        assert result.returncode == 2, result.stderr[-2000:]
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
        assert result.stderr.startswith("error: ") and message in result.stderr
