"""Forgetting: box targets, the regression recovers a planted box, box files are checked."""
import json

import numpy as np
import pytest

from dcgan_keras.analysis.dissect import forget


def test_regression_recovers_a_planted_box_from_synthetic_activations():
    rng = np.random.default_rng(0)
    n, grid, c = 40, 8, 12
    boxes = {i: [(8, 8, 24, 20)] for i in range(n)}  # image 32: cells 2..5 x 2..4
    targets = np.stack([forget.cell_targets(boxes[i], grid, 32) for i in range(n)])
    expected = np.zeros([grid, grid], bool)
    expected[2:5, 2:6] = True  # rows (y) 8..20 -> cells 2..4, cols (x) 8..24 -> 2..5
    np.testing.assert_array_equal(targets[0], expected)
    acts = rng.uniform(0, 1, [n, grid, grid, c]).astype(np.float32)
    acts[..., :3] += 2.0 * targets[..., None]  # channels 0-2 fire inside the box
    acts[..., 3:5] += 2.0 * (~targets)[..., None]  # channels 3-4 fire outside
    model, accuracy = forget.fit_regression(acts, targets)
    assert accuracy > 0.98
    assert set(range(3)) <= set(forget.positive_channels(model).tolist())
    assert not {3, 4} & set(forget.positive_channels(model).tolist())
    assert forget.inside_score(model, acts[:, 2:5, 2:6]) > 0.9


def test_boxes_from_masks():
    masks = np.zeros([2, 16, 16], bool)
    masks[0, 2:5, 3:9] = True
    masks[0, 10:12, 10:16] = True
    boxes = forget.boxes_from_masks(masks)
    assert boxes == {0: [(3, 2, 9, 5), (10, 10, 16, 12)], 1: []}


def test_box_files_are_checked(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"0": [[1, 2, 5, 6]], "3": []}))
    assert forget.load_boxes(str(good), 4, 16) == {0: [(1, 2, 5, 6)], 3: []}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(forget.BoxFileError, match="does not parse"):
        forget.load_boxes(str(bad), 4, 16)
    bad.write_text(json.dumps({"0": [[5, 2, 1, 6]]}))
    with pytest.raises(forget.BoxFileError, match=r"is not \[x0, y0, x1, y1\]"):
        forget.load_boxes(str(bad), 4, 16)
    with pytest.raises(IndexError, match="sample index 4 out of range"):
        bad.write_text(json.dumps({"4": []}))
        forget.load_boxes(str(bad), 4, 16)


def test_positive_channels_all_or_the_largest():
    class Fitted:  # the one attribute positive_channels reads
        coef_ = np.array([[0.5, -1.0, 2.0, 0.0, 1.0]])
    assert forget.positive_channels(Fitted()).tolist() == [0, 2, 4]
    assert forget.positive_channels(Fitted(), max_maps=2).tolist() == [2, 4]
