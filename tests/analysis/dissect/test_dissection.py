"""Dissection and intervention: IoU, IQR and quantiles against hand/NumPy values, edits
touch only what they name, and a planted unit is found, ablated, inserted where the concept
is absent and picked by the ACE optimisation."""
import numpy as np
import pytest

from dcgan_keras.analysis import nethook
from dcgan_keras.analysis.dissect import ace, dissection, intervention, iqr, segmenters
from dcgan_keras.data import shapes
from testutil import toy_generator

SIZE, GRID, UNITS = 16, 4, 4


def _toy_generator(planted=True):
    return toy_generator(SIZE, GRID, UNITS, planted)


def _z(n, seed=0):
    return np.random.default_rng(seed).standard_normal([n, 8]).astype(np.float32)


SEGMENTER = segmenters.load("shapes")
CIRCLE = shapes.CONCEPTS.index("circle")


def test_iou_of_hand_made_masks():
    # Unit 0: the left half of two 4x4 images; unit 1: nothing. Concept 1: the top half of
    # image 0, concept 0 the rest. Unit 0 & concept 1 = 4 pixels, union 16 + 8 - 4 = 20.
    masks = np.zeros([2, 4, 4, 2], bool)
    masks[:, :, :2, 0] = True
    labels = np.zeros([2, 4, 4], np.int64)
    labels[0, :2] = 1
    counts = dissection.iou_counts(masks, labels, 2)
    table = dissection.iou(*counts)
    np.testing.assert_allclose(table[0], [12 / (16 + 24 - 12), 4 / 20])
    np.testing.assert_array_equal(table[1], [0.0, 0.0])  # an empty unit: IoU 0


@pytest.mark.parametrize("q,batch", [(0.005, 7), (0.1, 50), (0.5, 1), (0.9, 400)])
def test_streaming_quantile_equals_numpys(q, batch):
    x = np.random.default_rng(1).standard_normal([1000, 5]).astype(np.float32)
    x[:, 4] = np.round(x[:, 4])  # ties
    stream = dissection.TopQuantile(q, len(x), 5)
    for i in range(0, len(x), batch):
        stream.update(x[i:i + batch])
    assert len(stream.top) <= int(np.ceil(999 * q)) + 1  # never all the values
    exact = np.quantile(x.astype(np.float64), 1 - q, axis=0)
    np.testing.assert_allclose(stream.result(), exact, rtol=1e-6, atol=1e-12)
    with pytest.raises(ValueError, match="saw 10 values per channel, expected 1000"):
        short = dissection.TopQuantile(q, 1000, 5)
        short.update(x[:10])
        short.result()


def test_ablation_zeroes_exactly_the_chosen_units():
    acts = np.random.default_rng(2).uniform(0.1, 2.0, [3, GRID, GRID, 6]).astype(np.float32)
    edited = np.asarray(intervention.ablation([4, 1])(acts))
    np.testing.assert_array_equal(edited[..., [1, 4]], 0.0)
    np.testing.assert_array_equal(edited[..., [0, 2, 3, 5]], acts[..., [0, 2, 3, 5]])


def test_insertion_changes_only_the_region():
    acts = np.random.default_rng(3).uniform(0.1, 2.0, [3, GRID, GRID, 6]).astype(np.float32)
    cells = intervention.region_cells((4, 0, 12, 8), GRID, SIZE)  # columns 1-2, rows 0-1
    expected = np.zeros([GRID, GRID], np.float32)
    expected[0:2, 1:3] = 1.0
    np.testing.assert_array_equal(cells, expected)
    values = np.arange(6, dtype=np.float32) * 10
    edited = np.asarray(intervention.insertion([5, 2], values, cells)(acts))
    changed = edited != acts
    assert not changed[:, ~expected.astype(bool)].any()  # nothing outside the region
    assert not changed[..., [0, 1, 3, 4]].any()  # nor in another unit
    np.testing.assert_array_equal(edited[:, 0:2, 1:3, 2], 20.0)  # each at its own level
    np.testing.assert_array_equal(edited[:, 0:2, 1:3, 5], 50.0)
    with pytest.raises(ValueError, match="covers no cell of the 4x4 layer"):
        intervention.region_cells((0, 0, 1, 1), GRID, SIZE)


def test_reusable_edit_does_what_the_channel_edit_does():
    acts = np.random.default_rng(4).uniform(0.1, 2.0, [3, GRID, GRID, 6]).astype(np.float32)
    edit = intervention.ReusableEdit([GRID, GRID, 6])
    cells = intervention.region_cells((4, 0, 12, 8), GRID, SIZE)
    for channel_edit in (intervention.ablation([4, 1]),
                         intervention.insertion([5, 2], np.arange(6) * 10.0, cells)):
        np.testing.assert_allclose(np.asarray(edit.load(channel_edit)(acts)),
                                   np.asarray(channel_edit(acts)), rtol=1e-6)


def test_causal_effect_is_zero_when_the_output_cannot_change():
    split = nethook.SplitGenerator(_toy_generator(planted=False), "feat")
    for edit in (intervention.ablation([0, 1, 2, 3]),
                 intervention.insertion([0], np.full([UNITS], 9.0), np.ones([GRID, GRID]))):
        effect = intervention.causal_effect(split, SEGMENTER, _z(20), edit, CIRCLE)
        assert effect["ace"] == 0.0 and effect["ci95"] == 0.0
        np.testing.assert_array_equal(effect["effects"], 0.0)


def test_planted_unit_is_found_ablated_and_inserted(tmp_path):
    g = _toy_generator()
    result = dissection.run(g, SEGMENTER, str(tmp_path), _z(60), ["feat"], num_units=1,
                            num_examples=3, intervene_z=_z(40, seed=1), concept="circle")
    layer = result["layers"]["feat"]
    assert result["threshold"] == "iqr" and result["best_layer"] == "feat"
    assert layer["best_units"]["circle"]["units"] == [0]
    # Unit 0 alone paints red: its IQR threshold draws the circles almost exactly...
    assert layer["best_units"]["circle"]["iou"][0] > 0.9
    assert layer["best_units"]["circle"]["iqr"][0] > 0.5
    # ...and units that draw nothing are interpretable for nothing.
    assert layer["interpretable"] == {"circle": 1, "square": 0, "triangle": 0}
    assert layer["best_concept"] == ["circle", None, None, None]
    assert layer["interpretable_units"] == 1
    # The conditional mean: unit 0's mean over the cells, weighted by circle coverage.
    split = nethook.SplitGenerator(g, "feat")
    acts = split.activations(_z(60))
    labels = SEGMENTER(g(_z(60)).numpy())
    weight = intervention.cell_presence(labels, CIRCLE, GRID)
    expected = (acts * weight[..., None]).sum((0, 1, 2)) / weight.sum()
    np.testing.assert_allclose(layer["conditional_mean"]["circle"], expected, rtol=1e-4)
    i = result["intervention"]["concepts"]["circle"]
    assert i["units"]["iou"] == [0] and len(i["units"]["random"]) == 1
    assert i["units"]["random"] != [0] and "ace" not in i["units"]
    # Ablation is measured on the samples that show circles, and only there.
    shows = (SEGMENTER(g(_z(40, seed=1)).numpy()) == CIRCLE).any(axis=(1, 2))
    assert i["samples_with_concept"] == shows.sum() < 40
    ablation = i["ablation"]
    assert ablation["iou"]["samples"] == shows.sum()
    # Unit 0 is the only painter: zeroing it removes every circle pixel, a random unit none.
    assert ablation["iou"]["share_after"] == 0.0 and ablation["iou"]["removed"] == 1.0
    assert ablation["iou"]["ace"] == pytest.approx(-ablation["iou"]["share_before"])
    assert ablation["random"]["ace"] == 0.0 and ablation["random"]["removed"] == 0.0
    shares = ablation["iou"]["all_shares"]  # the circle's pixels became background
    assert shares["circle"] == [pytest.approx(ablation["iou"]["share_before"]), 0.0]
    assert shares["background"][1] == 1.0 and shares["square"] == [0.0, 0.0]
    # The colour control: the toy's circles are all red, so red (and only red) goes.
    assert ablation["iou"]["hue_removed"][0] == 1.0
    assert ablation["iou"]["hue_removed"][1:] == [0.0] * 5
    # Insertion at one cell where there was no circle makes one there, every time.
    insertion = i["insertion"]
    assert insertion["iou"]["tries"] > 100 and insertion["iou"]["rate"] == 1.0
    assert insertion["iou"]["gain"] > 0.1
    assert insertion["random"]["rate"] == 0.0 and insertion["random"]["gain"] == 0.0
    tries_at = np.asarray(insertion["iou"]["tries_at"])
    assert tries_at.shape == (GRID, GRID) and tries_at.sum() == insertion["iou"]["tries"]
    for name in ("dissect_feat_circle.png", "ablation_circle_iou.png",
                 "insertion_circle_iou.png", "insertion_rate_circle_iou.png",
                 "interpretable_units.png", "dissect.json"):
        assert (tmp_path / name).exists(), name


def test_unit_examples_outline_the_units_region():
    split = nethook.SplitGenerator(_toy_generator(), "feat")
    z = _z(10)
    peaks = split.activations(z).max(axis=(1, 2))
    thresholds = np.full([UNITS], 0.5, np.float32)
    grid = dissection.unit_examples(split, z, peaks, [0], thresholds, 2)
    assert grid.shape == (2, SIZE, SIZE, 3)
    yellow = (grid == [1.0, 1.0, -1.0]).all(-1)
    assert yellow.any()  # the outline is drawn
    best = np.argsort(-peaks[:, 0])[:2]
    plain = split.generate(z[best])
    np.testing.assert_array_equal(grid[~yellow], plain[~yellow])  # and nothing else


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown concept 'tree'; the segmenter's: background"):
        dissection.run(_toy_generator(), SEGMENTER, str(tmp_path), _z(4), ["feat"],
                       concept="tree")
    with pytest.raises(ValueError, match="every concept of the segmenter .* is ignored"):
        dissection.run(_toy_generator(), SEGMENTER, str(tmp_path), _z(4), ["feat"],
                       ignore=shapes.CONCEPTS)
    with pytest.raises(ValueError, match="at least one sample and one unit, got 4 samples and "
                       "0 units"):
        dissection.run(_toy_generator(), SEGMENTER, str(tmp_path), _z(4), ["feat"],
                       num_units=0)


def test_a_cell_is_in_a_region_when_half_of_it_is():
    """The one region rule (paint's and dissect's): a box off the cell boundaries."""
    # 16x16 image, 4x4 layer (cells of 4x4 pixels), box x, y in [2, 7): cell (0, 0) is
    # 2x2 = 4/16 covered, cells (0, 1) and (1, 0) 2x3 = 6/16, cell (1, 1) 3x3 = 9/16.
    expected = np.zeros([GRID, GRID], np.float32)
    expected[1, 1] = 1.0
    np.testing.assert_array_equal(intervention.region_cells((2, 2, 7, 7), GRID, SIZE), expected)
    mask = intervention.box_mask((2, 2, 7, 7), SIZE)
    assert mask.sum() == 25 and mask[2:7, 2:7].all()
    np.testing.assert_array_equal(intervention.region_cells(mask, GRID), expected)
    with pytest.raises(ValueError, match="does not tile"):
        intervention.region_cells(mask, 3)


def test_an_effect_over_no_samples_is_zero_not_an_error():
    split = nethook.SplitGenerator(_toy_generator(), "feat")
    effect = intervention.causal_effect(split, SEGMENTER, _z(0), intervention.ablation([0]),
                                        CIRCLE)
    assert effect["samples"] == 0 and effect["ace"] == 0.0 and effect["removed"] == 0.0
    assert effect["images"] is None
