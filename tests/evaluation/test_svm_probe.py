"""Tests for the linear-SVM representation-learning probe."""

import json
from collections import OrderedDict

import numpy as np
import pytest

from sklearn.svm import LinearSVC

from dcgan_keras.evaluation.svm_probe import (
    MethodResult, format_table, l2svm_newton, raw_pixels, result_to_json, run_probe,
    sample_draw, span_basis)

C_GRID = (0.001, 0.01, 0.1, 1.0)


def _quadrant_data(n_per_class, seed, size=8, classes=4):
    """Class c lights up quadrant c of a noisy image: linearly separable from pixels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    rng.shuffle(labels)
    images = rng.normal(0.0, 0.5, (len(labels), size, size, 1)).astype(np.float32)
    h = size // 2
    for i, c in enumerate(labels):
        r, col = divmod(int(c), 2)
        images[i, r * h:(r + 1) * h, col * h:(col + 1) * h] += 1.0
    return np.clip(images, -1, 1), labels


@pytest.fixture(scope="module")
def data():
    train_x, train_y = _quadrant_data(60, seed=0)
    test_x, test_y = _quadrant_data(50, seed=1)
    return train_x, train_y, test_x, test_y


def _noise_fn(seed=0):
    rng = np.random.default_rng(seed)
    return lambda images: rng.standard_normal((len(images), 16))


def _run(data, fns, **kw):
    args = dict(labels_per_class=5, val_size=40, draws=3, c_grid=C_GRID, seed=0,
                batch_size=64, progress=False)
    args.update(kw)
    return run_probe(fns, *data, **args)


@pytest.fixture(scope="module")
def result(data):
    fns = OrderedDict([("raw_pixels", raw_pixels), ("noise", _noise_fn()),
                       ("raw_again", lambda x: raw_pixels(x))])
    return _run(data, fns)


def test_raw_pixels_separate_and_noise_is_at_chance(result):
    assert list(result.methods) == ["raw_pixels", "noise", "raw_again"]
    assert result.methods["raw_pixels"].mean_accuracy > 0.9
    assert result.methods["noise"].mean_accuracy < 0.45  # chance is 0.25
    assert result.methods["raw_pixels"].feature_dim == 64
    assert result.methods["noise"].feature_dim == 16


def test_chosen_c_in_grid_and_lists_per_draw(result):
    for m in result.methods.values():
        assert len(m.test_accuracies) == len(m.chosen_c) == len(m.val_accuracy_grid) == 3
        assert set(m.chosen_c) <= set(C_GRID)
        for c, val, grid in zip(m.chosen_c, m.val_accuracies, m.val_accuracy_grid):
            assert val == max(grid)
            assert c == C_GRID[int(np.argmax(grid))]  # first (smallest) C among ties


def test_same_draws_for_all_methods(data):
    seen = {}

    def recorder(name):
        def fn(images):
            seen.setdefault(name, []).append(images.copy())
            return raw_pixels(images)
        return fn

    res = _run(data, OrderedDict([("a", recorder("a")), ("b", recorder("b"))]))
    assert len(seen["a"]) == len(seen["b"])
    for x, y in zip(seen["a"], seen["b"]):
        np.testing.assert_array_equal(x, y)
        assert len(x) <= 64  # batch_size respected
    # Features are computed once per image: the union of all draws' train images + test.
    union = np.unique(np.concatenate([np.r_[d.labelled, d.validation] for d in res.draws]))
    assert sum(len(x) for x in seen["a"]) == len(union) + len(data[2])
    # Identical features -> identical per-draw outcomes, so the splits were identical.
    assert res.methods["a"].test_accuracies == res.methods["b"].test_accuracies
    assert res.methods["a"].chosen_c == res.methods["b"].chosen_c


def test_draws_reproducible_from_seed(data, result):
    train_y = data[1]
    for d, draw in enumerate(result.draws):
        ref = sample_draw(train_y, 5, 40, seed=d)
        assert draw.seed == d
        np.testing.assert_array_equal(draw.labelled, ref.labelled)
        np.testing.assert_array_equal(draw.validation, ref.validation)
    again = _run(data, OrderedDict([("raw_pixels", raw_pixels)]))
    assert again.methods["raw_pixels"].test_accuracies == \
        result.methods["raw_pixels"].test_accuracies
    other = _run(data, OrderedDict([("raw_pixels", raw_pixels)]), seed=100)
    assert not np.array_equal(other.draws[0].labelled, result.draws[0].labelled)
    assert not np.array_equal(result.draws[0].labelled, result.draws[1].labelled)


def test_parallel_and_solver_choice_do_not_change_the_protocol(data, result):
    ref = _run(data, {"raw_pixels": raw_pixels}, solver="liblinear").methods["raw_pixels"]
    par = _run(data, {"raw_pixels": raw_pixels}, n_jobs=2,
               solver="liblinear").methods["raw_pixels"]
    assert par.test_accuracies == ref.test_accuracies and par.chosen_c == ref.chosen_c
    # 20 labelled samples vs 64 dims: the automatic choice is the dual; the primal solves
    # the same convex problem, so the outcome barely moves.
    primal = _run(data, {"raw_pixels": raw_pixels}, dual=False,
                  solver="liblinear").methods["raw_pixels"]
    assert abs(primal.mean_accuracy - ref.mean_accuracy) < 0.05
    # The exact Newton solver finds the optimum liblinear approximates: same outcome.
    newton = result.methods["raw_pixels"]
    assert newton.chosen_c == ref.chosen_c
    np.testing.assert_allclose(newton.test_accuracies, ref.test_accuracies, atol=0.011)
    np.testing.assert_allclose(newton.val_accuracy_grid, ref.val_accuracy_grid, atol=0.03)
    assert result.config["solver"] == "newton" and "max_iter" not in result.config
    unsorted = _run(data, {"raw_pixels": raw_pixels}, c_grid=C_GRID[::-1] + (1.0,))
    assert unsorted.config["c_grid"] == list(C_GRID)
    assert unsorted.methods["raw_pixels"].chosen_c == ref.chosen_c


def test_labelled_and_validation_disjoint_and_balanced():
    labels = np.repeat(np.arange(3), [20, 30, 40])
    draw = sample_draw(labels, labels_per_class=7, val_size=50, seed=5)
    assert np.intersect1d(draw.labelled, draw.validation).size == 0
    assert len(draw.labelled) == 21 and len(np.unique(draw.labelled)) == 21
    assert len(draw.validation) == 50 and len(np.unique(draw.validation)) == 50
    np.testing.assert_array_equal(np.bincount(labels[draw.labelled]), [7, 7, 7])


def test_mean_and_ci_from_per_draw_list(result):
    for m in result.methods.values():
        acc = np.array(m.test_accuracies)
        assert m.mean_accuracy == pytest.approx(acc.mean())
        assert m.ci95 == pytest.approx(1.96 * acc.std())
        assert m.error_rate == pytest.approx(1 - acc.mean())
    m = MethodResult("x", 1, [0.8, 0.9, 1.0], [1.0] * 3, [0.0] * 3, [[0.0]] * 3, [True] * 3)
    assert m.mean_accuracy == pytest.approx(0.9)
    assert m.ci95 == pytest.approx(1.96 * np.sqrt(2 / 300))


def test_format_table_and_json(result):
    table = format_table(result)
    lines = table.splitlines()
    assert len(lines) == 3 + 3
    raw = result.methods["raw_pixels"]
    assert "raw_pixels" in lines[3] and f"{100 * raw.mean_accuracy:.2f}" in lines[3]
    assert f"{100 * raw.error_rate:.2f}" in lines[3] and " 64 " in lines[3]
    for col in ("accuracy", "1.96", "error", "dims", "C"):
        assert col in lines[1]
    js = json.loads(json.dumps(result_to_json(result)))
    assert js["methods"]["noise"]["test_accuracies"] == result.methods["noise"].test_accuracies
    assert js["config"]["c_grid"] == list(C_GRID)
    assert "labelled" not in js["draws"][0]
    full = json.loads(json.dumps(result_to_json(result, include_indices=True)))
    assert full["draws"][1]["validation"] == result.draws[1].validation.tolist()


def test_input_validation(data):
    tx, ty, vx, vy = data
    fns = {"raw": raw_pixels}
    cases = [
        (dict(labels_per_class=61), "labels_per_class"),
        (dict(val_size=221), "val_size"),
        (dict(test_images=vx[:, :4]), "different shapes"),
        (dict(train_labels=ty[:-1]), "labels"),
        (dict(test_labels=vy.astype(float)), "integer"),
        (dict(test_labels=vy + 10), "do not occur"),
        (dict(draws=0), "draws"),
        (dict(c_grid=()), "c_grid"),
        (dict(feature_fns={}), "non-empty"),
        (dict(feature_fns={"bad": lambda x: np.ones((1, 3))}), "returned shape"),
        (dict(feature_fns={"nan": lambda x: np.full((len(x), 3), np.nan)}), "NaN"),
    ]
    for override, message in cases:
        args = dict(feature_fns=fns, train_images=tx, train_labels=ty, test_images=vx,
                    test_labels=vy, labels_per_class=5, val_size=40, draws=1,
                    c_grid=C_GRID, progress=False)
        args.update(override)
        with pytest.raises(ValueError, match=message):
            run_probe(**args)
    with pytest.raises(TypeError, match="callable"):
        run_probe({"x": 3}, tx, ty, vx, vy, labels_per_class=5, val_size=40, progress=False)


def test_span_basis_is_orthonormal_and_spans_the_rows():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 3)) @ rng.normal(size=(3, 40))  # 5 rows of rank 3
    basis = span_basis(x)
    assert basis.shape == (40, 3)
    np.testing.assert_allclose(basis.T @ basis, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(x @ basis @ basis.T, x, atol=1e-10)  # rows unchanged
    with pytest.raises(ValueError, match="all zero"):
        span_basis(np.zeros((4, 6)))


@pytest.mark.parametrize("c", [1e-4, 1e-2, 1.0, 30.0])
def test_newton_l2svm_matches_liblinear_in_the_span(c):
    """Projected onto the span of the rows (plus liblinear's bias feature), the exact
    Newton solution is LinearSVC's solution: same weights, bias and decision values."""
    rng = np.random.default_rng(7)
    n, d = 50, 300  # more features than samples, the probe's regime
    x = rng.normal(size=(n, d))
    labels = rng.integers(0, 2, n)
    x[:, 0] += 1.5 * labels  # partly separable; many margin violations remain at small C
    y = np.where(labels == 1, 1.0, -1.0)
    ref = LinearSVC(C=c, loss="squared_hinge", dual=True, tol=1e-12,
                    max_iter=1_000_000).fit(x, y)
    xb = np.c_[x, np.ones(n)]
    basis = span_basis(xb)
    w, converged = l2svm_newton(xb @ basis, y, c)
    assert converged
    w = basis @ w
    np.testing.assert_allclose(w[:-1], ref.coef_[0], atol=1e-7)
    np.testing.assert_allclose(w[-1], ref.intercept_[0], atol=1e-7)
    np.testing.assert_allclose(xb @ w, ref.decision_function(x), atol=1e-6)
    # Warm start (the probe's ascending C grid) converges to the same point.
    w_warm, _ = l2svm_newton(xb @ basis, y, c, w0=np.full(basis.shape[1], 0.3))
    np.testing.assert_allclose(basis @ w_warm, w, atol=1e-8)


def test_unknown_solver_is_refused(data):
    with pytest.raises(ValueError, match="solver must be one of"):
        _run(data, {"raw_pixels": raw_pixels}, solver="sgd")


def test_scaling_none_keeps_the_raw_feature_scale(data):
    """200 pure-noise dims 1e3x louder than the pixels: unscaled, the SVM separates the few
    labelled images through the noise almost for free and predicts near chance; standardised,
    the pixels weigh as much as the noise again."""
    rng = np.random.default_rng(0)

    def with_loud_noise(images):
        return np.c_[raw_pixels(images), 1e3 * rng.standard_normal((len(images), 200))]

    standard = _run(data, {"f": with_loud_noise}).methods["f"]
    none = _run(data, {"f": with_loud_noise}, scaling="none")
    assert none.config["scaling"] == "none"
    assert none.methods["f"].mean_accuracy < 0.45  # chance is 0.25
    assert standard.mean_accuracy > none.methods["f"].mean_accuracy + 0.2
    with pytest.raises(ValueError, match="scaling must be one of"):
        _run(data, {"f": raw_pixels}, scaling="minmax")


def test_the_supervised_cnn_baseline_is_asked_for_by_name():
    """The default probe runs the cheap baselines; the supervised CNN (minutes a draw) is
    one --baselines away, and the binary's default is the library's."""
    import inspect
    from absl import flags
    from dcgan_keras.binaries import common
    from dcgan_keras.evaluation import probe_eval
    default = inspect.signature(probe_eval.evaluate).parameters["baselines"].default
    assert set(default) == {"raw_pixels", "kmeans", "random_d"}
    assert set(probe_eval.BASELINES) == set(default) | {"supervised_cnn"}
    with common.binary_flags("evaluate", ["--eval=svm_probe"]):
        assert flags.FLAGS.baselines == list(default)
    with common.binary_flags("evaluate", ["--eval=svm_probe",
                                          "--baselines=raw_pixels,supervised_cnn"]):
        assert flags.FLAGS.baselines == ["raw_pixels", "supervised_cnn"]
