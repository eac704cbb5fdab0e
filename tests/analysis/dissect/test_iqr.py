"""GAN Dissection's IQR threshold against brute-force NumPy, its exclusions, why a fixed
quantile cannot pass a large concept, and the ACE optimisation on a planted unit."""
import numpy as np
import pytest
import tensorflow as tf

from dcgan_keras.analysis import nethook
from dcgan_keras.analysis.dissect import ace, dissection, intervention, iqr, segmenters
from dcgan_keras.data import shapes
from dcgan_keras.utils import charts
from testutil import toy_generator


def _brute_tables(values, labels, levels, k):
    """active [c, L, K] by loops: pixels of concept j where unit u is above level l."""
    c, n = levels.shape
    active = np.zeros([c, n, k], np.int64)
    for u in range(c):
        for li in range(n):
            on = values[:, u] > levels[u, li]
            for j in range(k):
                active[u, li, j] = np.sum(on & (labels == j))
    return active


def _entropy_terms(p):
    return sum(x * np.log(x) for x in p if x > 0)


def _brute_iqr(tp, fp, fn, tn):
    """IQR of one 2x2 table of fractions, written out."""
    cells = [[tp, fp], [fn, tn]]
    rows = [tp + fp, fn + tn]
    cols = [tp + fn, fp + tn]
    mi = sum(cells[i][j] * np.log(cells[i][j] / (rows[i] * cols[j]))
             for i in range(2) for j in range(2) if cells[i][j] > 0)
    je = -_entropy_terms([tp, fp, fn, tn])
    return max(mi, 0.0) / je if je > 0 else 0.0


def test_level_counts_equal_brute_force():
    rng = np.random.default_rng(0)
    values = rng.normal(size=[500, 3]).astype(np.float32)
    values[:, 2] = np.round(values[:, 2])  # ties with the levels
    labels = rng.integers(0, 4, size=500)
    levels = np.sort(rng.normal(size=[3, 7]), axis=1)[:, ::-1].astype(np.float32)
    levels[2] = [1, 1, 0, 0, -1, -1, -2]  # levels equal to values
    counts = iqr.LevelCounts(levels, 4)
    for i in range(0, 500, 123):  # in batches
        counts.update(values[i:i + 123], labels[i:i + 123])
    active, concept, total = counts.tables()
    np.testing.assert_array_equal(active, _brute_tables(values, labels, levels, 4))
    np.testing.assert_array_equal(concept, np.bincount(labels, minlength=4))
    assert total == 500


def test_information_of_2x2_tables():
    # Independent unit and concept: no information. Identical: I = H = the entropy.
    mi, je = iqr.information(np.array(0.06), np.array(0.14), np.array(0.24), np.array(0.56))
    assert mi == pytest.approx(0.0, abs=1e-12)
    assert je == pytest.approx(-_entropy_terms([0.06, 0.14, 0.24, 0.56]))
    mi, je = iqr.information(np.array(0.3), np.array(0.0), np.array(0.0), np.array(0.7))
    assert mi == pytest.approx(je) and mi == pytest.approx(-_entropy_terms([0.3, 0.7]))
    for table in ([0.1, 0.05, 0.02, 0.83], [0.2, 0.3, 0.1, 0.4]):
        mi, je = iqr.information(*map(np.array, table))
        assert mi / je == pytest.approx(_brute_iqr(*table))


def test_choose_takes_the_best_usable_level_of_each_unit_and_concept():
    rng = np.random.default_rng(1)
    n = 4000
    labels = rng.integers(0, 3, size=n)
    values = np.stack([
        (labels == 1) * 2.0 + rng.normal(0, 0.3, n),  # draws concept 1
        rng.normal(0, 1, n),  # draws nothing
        -((labels == 2) * 2.0) - 1 + rng.normal(0, 0.1, n),  # concept 2, but always < 0
    ], axis=1).astype(np.float32)
    sample = iqr.LevelSample(n, 3, max_values=n)
    sample.update(values)
    levels = sample.levels()
    np.testing.assert_allclose(levels[:, 0], np.quantile(values, 0.999, axis=0), rtol=1e-5)
    counts = iqr.LevelCounts(levels, 3)
    counts.update(values, labels)
    chosen = iqr.choose(levels, *counts.tables())
    # Brute force: every usable level's IQR from its own 2x2 table.
    for u in range(3):
        for k in range(3):
            best, best_level = 0.0, None
            for li, level in enumerate(levels[u]):
                on, is_k = values[:, u] > level, labels == k
                tp, fp = np.mean(on & is_k), np.mean(on & ~is_k)
                fn, tn = np.mean(~on & is_k), np.mean(~on & ~is_k)
                if tp + tn <= 0.8 or level <= 0 or iqr.FRACTIONS[li] >= 1:
                    continue
                value = _brute_iqr(tp, fp, fn, tn)
                if value > best:
                    best, best_level = value, level
            assert chosen["iqr"][u, k] == pytest.approx(best, abs=1e-9), (u, k)
            if best_level is not None:
                assert chosen["level"][u, k] == pytest.approx(best_level)
    assert chosen["iou"][0, 1] > 0.95 and chosen["iqr"][0, 1] > 0.7
    assert chosen["interpretable"][0, 1]
    assert not chosen["interpretable"][1].any()  # noise is interpretable for nothing
    # Unit 2 tracks concept 2 perfectly, but only below 0: no level is usable.
    assert chosen["iqr"][2, 2] == 0.0 and not chosen["interpretable"][2, 2]


def test_a_large_concept_passes_iqr_but_never_a_fixed_quantile():
    rng = np.random.default_rng(2)
    n = 20000
    labels = (rng.random(n) < 0.4).astype(int)  # the concept covers 40% of the pixels
    values = (labels * 3.0 + rng.normal(0, 0.2, n)).astype(np.float32)[:, None]
    q = 0.005
    level = np.quantile(values, 1 - q)
    table = dissection.iou(*dissection.iou_counts((values > level)[None, :, None, :],
                                                  labels[None, :, None], 2))
    assert table[0, 1] <= q / 0.4 + 1e-9  # IoU <= q / a, whatever the unit does
    sample = iqr.LevelSample(n, 1, max_values=5000, seed=3)
    for i in range(0, n, 999):
        sample.update(values[i:i + 999])
    assert sample.kept == 5000
    counts = iqr.LevelCounts(sample.levels(), 2)
    counts.update(values, labels)
    chosen = iqr.choose(sample.levels(), *counts.tables())
    # The candidate fractions are 7% apart (log-spaced), so the best level is near 0.4.
    assert chosen["iou"][0, 1] > 0.95 and chosen["interpretable"][0, 1]
    assert chosen["fraction"][0, 1] == pytest.approx(0.4, rel=0.08)
    # A concept on fewer than 0.1% of the pixels is not trusted.
    rare = np.zeros(n, int)
    rare[:10] = 1
    counts = iqr.LevelCounts(sample.levels(), 2)
    counts.update(values, rare)
    assert iqr.choose(sample.levels(), *counts.tables())["iqr"][0, 1] == 0.0


def test_level_sample_refuses_a_wrong_count():
    sample = iqr.LevelSample(100, 2)
    sample.update(np.zeros([10, 2]))
    with pytest.raises(ValueError, match="saw 10 values per unit, expected 100"):
        sample.levels()


def test_quantile_threshold_is_network_dissections_rule(tmp_path):
    g = toy_generator(16, 4, 4, True)
    z = np.random.default_rng(0).standard_normal([30, 8]).astype(np.float32)
    split = nethook.SplitGenerator(g, "feat")
    labels = segmenters.load("shapes")(g(z).numpy())
    d = dissection.dissect_layer(split, z, labels, 4, "quantile", q=0.1, batch_size=7)
    up = dissection.upsample(split.activations(z), 16).reshape(-1, 4)
    expected = np.quantile(up.astype(np.float64), 0.9, axis=0)
    for k in range(4):  # the same threshold for every concept
        np.testing.assert_allclose(d["thresholds"][:, k], expected, rtol=1e-5)
    onehot = np.eye(4)[labels.reshape(-1)]
    on = up > d["thresholds"][:, 0]
    inter = on.T.astype(float) @ onehot
    union = on.sum(0)[:, None] + onehot.sum(0)[None] - inter
    np.testing.assert_allclose(d["iou"], np.where(union > 0, inter / np.maximum(union, 1), 0))
    assert (d["fraction"] == 0.1).all()
    with pytest.raises(ValueError, match="threshold must be one of iqr, quantile"):
        dissection.dissect_layer(split, z, labels, 4, "top")


def test_hue_histogram_bins_pixels_by_colour():
    pixels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0.5, 0.5, 0.5],
                       [0.1, 0.0, 0.0]], np.float32)  # red, green, blue, yellow, grey, dark
    shares = intervention.hue_histogram(pixels[None, None] * 2 - 1)
    np.testing.assert_allclose(shares * 6, [1, 1, 1, 0, 1, 0, 2])  # bins: R Y G C B M grey


def test_grouped_bars_are_as_tall_as_their_values():
    image = charts.grouped_bars(["a", "b"], ["x", "y"], [[4, 2], [0, 1]], title="t")
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    # Bars of 220 - 16 pixels at the peak (4), and one pixel (the base) at 0.
    for s, values in ((0, [4, 0]), (1, [2, 1])):
        colour = np.all(image == charts.PALETTE[s], axis=-1)
        colour[:34] = False  # the legend's swatches
        heights = {int(colour[:, x].sum()) for x in np.flatnonzero(colour.any(0))}
        assert heights == {round(204 * v / 4) + 1 for v in values}, heights


def soft_red(images):
    """A differentiable toy segmenter (the shapes concepts): circle where red dominates."""
    images = tf.convert_to_tensor(images, tf.float32)
    r, gb = images[..., 0], tf.reduce_max(images[..., 1:], axis=-1)
    circle = tf.sigmoid(8.0 * (r - gb) - 4.0)
    zeros = tf.zeros_like(circle)
    return tf.stack([1.0 - circle, circle, zeros, zeros], axis=-1)


def _soft_segmenter():
    def segment(images):
        return np.asarray(tf.argmax(soft_red(images), axis=-1))
    seg = segmenters.Segmenter(segment, shapes.CONCEPTS, "float", "soft_red")
    seg.probabilities = soft_red
    return seg


def test_ace_optimisation_finds_the_planted_unit_from_a_wrong_start():
    g = toy_generator(16, 4, 4, True)
    split = nethook.SplitGenerator(g, "feat")
    z = np.random.default_rng(5).standard_normal([64, 8]).astype(np.float32)
    seg = _soft_segmenter()
    means = np.array([3.0, 1.0, 1.0, 1.0], np.float32)
    result = ace.optimise(split, seg, z, 1, init=[0.1, 0.1, 1.0, 0.1], values=means,
                          epochs=25, batch_size=8)
    alpha = result["alpha"]
    assert ace.top_units(alpha, 1) == [0]
    assert alpha[0] > 0.5 and alpha[2] < 0.9 and alpha.min() >= 0 and alpha.max() <= 1
    assert result["loss"][-1] < result["loss"][0]
    assert result["present"] > 0 and result["absent"] > 0
    with pytest.raises(ValueError, match="need a differentiable segmenter"):
        ace.optimise(split, segmenters.load("shapes"), z, 1, [1, 0, 0, 0], means)


def test_dissect_with_ace_sets_reports_all_three(tmp_path):
    g = toy_generator(16, 4, 4, True)
    z = np.random.default_rng(6).standard_normal([48, 8]).astype(np.float32)
    seg = _soft_segmenter()
    result = dissection.run(g, seg, str(tmp_path), z, ["feat"], units="ace", num_units=1,
                            num_examples=2, intervene_z=z[:24], concept="circle",
                            ace_epochs=2)
    layer = result["layers"]["feat"]
    assert layer["ace_units"]["circle"]["units"] == [0]
    assert len(layer["ace_units"]["circle"]["alpha"]) == 4
    sets = result["intervention"]["concepts"]["circle"]["units"]
    assert list(sets) == ["iou", "ace", "random"] and sets["ace"] == [0]
    assert sets["random"] != [0]
    removed = result["intervention"]["concepts"]["circle"]["ablation"]
    assert removed["ace"]["removed"] == 1.0 and removed["random"]["removed"] == 0.0
    with pytest.raises(ValueError, match="--unit_set=ace needs a differentiable segmenter"):
        dissection.run(g, segmenters.load("shapes"), str(tmp_path), z, ["feat"], units="ace")


def test_lines_puts_each_point_where_its_values_say():
    image = charts.lines({"a": ([0, 10], [1, 100]), "b": ([5], [float("nan")])},
                         title="t", xlabel="x", ylabel="y", width=200, height=100, log_y=True)
    assert image.shape == (100 + 44 + 34, 200 + 56 + 16, 3) and image.dtype == np.uint8
    colour = np.all(image == charts.PALETTE[0], axis=-1)
    colour[:34] = False  # the legend's swatch
    # (0, 1) at the bottom-left corner, (10, 100) at the top-right; log10 is linear between.
    assert colour[144, 56] and colour[44, 256]
    assert colour[94, 156]  # (5, 10): half way up in log scale
    assert not np.all(image == charts.PALETTE[1], axis=-1)[34:].any()  # b had no finite point
    with pytest.raises(ValueError, match="at least one finite point"):
        charts.lines({"a": ([1], [float("nan")])})
