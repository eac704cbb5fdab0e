"""The helpers of benchmarks/paint_effect.py that choose the strokes and sum up their
effect (the benchmark itself runs on a trained model, outside the tests)."""
import importlib.util
import os

import numpy as np

from testutil import REPO

_spec = importlib.util.spec_from_file_location(
    "paint_effect", os.path.join(REPO, "benchmarks", "paint_effect.py"))
paint_effect = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paint_effect)


def test_remove_stroke_is_every_cell_the_object_touches():
    pixels = np.zeros([8, 8], bool)
    pixels[1, 1] = pixels[5, 6] = True  # cells (0, 0) and (2, 3) of a 4x4 grid of 2x2
    stroke = paint_effect.cells_touched(pixels, 4)
    expected = np.zeros([8, 8], bool)
    expected[0:2, 0:2] = expected[4:6, 6:8] = True
    np.testing.assert_array_equal(stroke, expected)
    assert paint_effect.cells_touched(pixels, 8).sum() == 2  # cells of one pixel


def test_add_stroke_is_an_empty_cell_aligned_square():
    labels = np.zeros([16, 16], int)
    labels[:, :12] = 2  # only the right 4 columns are background
    rng = np.random.default_rng(0)
    for _ in range(10):
        x0, y0, x1, y1 = paint_effect.empty_square(labels, 4, 3, rng)  # cells of 4 px
        assert (x1 - x0, y1 - y0) == (4, 4) and x0 == 12 and y0 % 4 == 0
        assert not labels[y0:y1, x0:x1].any()
    assert paint_effect.empty_square(labels, 4, 5, rng) is None  # 2 cells wide: none empty
    boxes = {tuple(paint_effect.empty_square(np.zeros([16, 16], int), 4, 8, rng))
             for _ in range(50)}
    assert len(boxes) == 9  # every 2x2-cell place of a 4x4 grid is drawn


def test_summary_of_shares():
    s = paint_effect.summarise([0.5, 0.4, 0.6], [0.0, 0.5, 0.1], "remove")
    assert s["n"] == 3 and np.isclose(s["before"], 0.5) and np.isclose(s["after"], 0.2)
    assert np.isclose(s["change"], -0.3)
    assert np.isclose(s["ci95"], 1.959964 * np.std([-0.5, 0.1, -0.5], ddof=1) / np.sqrt(3))
    assert np.isclose(s["moved_right_way"], 2 / 3)
    assert np.isclose(paint_effect.summarise([0.0, 0.0], [0.3, 0.0], "add")["moved_right_way"],
                      0.5)
