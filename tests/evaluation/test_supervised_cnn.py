"""Tests for the probe's supervised baseline: a CNN of D's architecture per draw."""
import dataclasses

import numpy as np
import pytest

from dcgan_keras.evaluation import supervised_cnn
from dcgan_keras.evaluation.supervised_cnn import (
    Hyperparameters, Trial, accuracy_of, build_model, random_search, run_on_draws,
    sample_hyperparameters, train_trial)
from dcgan_keras.evaluation.svm_probe import sample_draw

ARCH = dict(image_size=16, channels=1, base_width=4)
SHORT = {"epochs": (3, 6)}  # short trials where only the search's mechanics matter


def _quadrant_data(n_per_class, seed, classes=4, size=16):
    """Class c lights up quadrant c of a noisy image: trivially separable."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    rng.shuffle(labels)
    images = rng.normal(-0.5, 0.3, (len(labels), size, size, 1)).astype(np.float32)
    h = size // 2
    for i, c in enumerate(labels):
        r, col = divmod(int(c), 2)
        images[i, r * h:(r + 1) * h, col * h:(col + 1) * h] += 1.2
    return np.clip(images, -1, 1), labels.astype(np.int64)


@pytest.fixture(scope="module")
def data():
    train_x, train_y = _quadrant_data(40, seed=0)
    test_x, test_y = _quadrant_data(25, seed=1)
    return train_x, train_y, test_x, test_y


@pytest.fixture(scope="module")
def noise():
    """Random images and labels: every accuracy depends on every detail of training."""
    rng = np.random.default_rng(2)
    return (rng.uniform(-1, 1, (160, 16, 16, 1)).astype(np.float32), rng.integers(0, 4, 160),
            rng.uniform(-1, 1, (100, 16, 16, 1)).astype(np.float32), rng.integers(0, 4, 100))


def _draws(labels, n=2, labels_per_class=8, val_size=24):
    return [sample_draw(labels, labels_per_class, val_size, seed) for seed in range(n)]


def _run(data, draws, **kw):
    args = dict(base_width=ARCH["base_width"], trials=2, seed=0, batch_size=16,
                precision="none", progress=False, search_space=SHORT)
    args.update(kw)
    return run_on_draws(draws, *data, **args)


def test_model_is_d_with_a_softmax_head():
    model = build_model(num_classes=5, dropout=0.25, **ARCH)
    body = model.get_layer("d_body")
    # D's layers up to flatten (16x16: widths 4, 8 -> 4x4x8), then dropout + softmax.
    assert [layer.name for layer in body.layers] == [
        "images", "block1_conv", "block1_lrelu", "block2_conv", "block2_bn",
        "block2_lrelu", "flatten"]
    assert body.output.shape[-1] == 4 * 4 * 8
    assert model.get_layer("dropout").rate == 0.25
    assert not model.get_layer("probabilities").use_bias
    probabilities = np.asarray(model(np.zeros((3, 16, 16, 1), np.float32)))
    assert probabilities.shape == (3, 5)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    assert "shift" in [layer.name for layer in build_model(num_classes=5, augment=True,
                                                             **ARCH).layers]


def test_hyperparameters_cover_the_search_space():
    rng = np.random.default_rng(0)
    samples = [sample_hyperparameters(rng) for _ in range(200)]
    for field in ("learning_rate", "dropout", "weight_decay", "epochs"):
        low, high = supervised_cnn.SEARCH_SPACE[field]
        values = [getattr(s, field) for s in samples]
        assert low <= min(values) and max(values) <= high
        assert len(set(values)) > 10  # varied
    assert 50 < sum(s.augment for s in samples) < 150
    short = [sample_hyperparameters(rng, {"epochs": (2, 3)}).epochs for _ in range(50)]
    assert set(short) == {2, 3}


def test_search_picks_the_best_validation_trial():
    accuracies = [0.5, 0.9, 0.7, 0.9, 0.2]
    logged = []

    def train(hp, index):
        return Trial(hp, accuracies[index], 1, 1, 0.0, weights=[np.full(2, index)])

    hps = [Hyperparameters(1e-3, 0.1, 1e-4, 10, False)] * len(accuracies)
    best, trials = random_search(hps, train, log=lambda i, t: logged.append(i))
    assert best == 1  # the highest; the first of the two 0.9s
    assert [t.val_accuracy for t in trials] == accuracies and logged == [0, 1, 2, 3, 4]
    assert trials[1].weights[0][0] == 1
    assert all(t.weights is None for i, t in enumerate(trials) if i != 1)  # not hoarded


def test_the_chosen_trial_is_the_one_measured_on_test(data):
    """run_on_draws scores the weights of the best validation trial on the test set."""
    models = [build_model(num_classes=4, seed=i, **ARCH) for i in range(3)]
    accuracies = [0.3, 0.8, 0.6]

    def train(x_train, y_train, x_val, y_val, hp, *, seed, **unused):
        index = seed % 1000
        return Trial(hp, accuracies[index], 1, 1, 0.0, weights=models[index].get_weights())

    draws = _draws(data[1], n=1)
    result = _run(data, draws, trials=3, train=train)
    test_x, test_y = data[2], data[3]
    assert result.test_accuracies == [accuracy_of(models[1], test_x, test_y)]
    assert result.val_accuracies == [0.8]
    assert result.val_accuracy_grid == [accuracies]
    assert result.extra["chosen"][0]["trial"] == 1


def test_sees_only_the_labelled_images_of_its_draw(noise):
    data = noise
    train_x, train_y, test_x, test_y = data
    draws = _draws(train_y)
    seen = []

    def recording(x_train, y_train, x_val, y_val, hp, **kw):
        seen.append((x_train.copy(), y_train.copy(), x_val.copy(), y_val.copy()))
        return train_trial(x_train, y_train, x_val, y_val, hp, **kw)

    clean = _run(data, draws, trials=1, train=recording)
    for draw, (x_train, y_train, x_val, y_val) in zip(draws, seen):
        np.testing.assert_array_equal(x_train, train_x[draw.labelled])
        np.testing.assert_array_equal(y_train, train_y[draw.labelled])
        # The validation images (any order) are exactly the draw's, with their labels.
        order = np.lexsort(x_val.reshape(len(x_val), -1).T)
        expected = train_x[draw.validation]
        expected_order = np.lexsort(expected.reshape(len(expected), -1).T)
        np.testing.assert_array_equal(x_val[order], expected[expected_order])
        np.testing.assert_array_equal(y_val[order], train_y[draw.validation][expected_order])
    # Every image and label outside the draws poisoned: nothing changes.
    used = np.unique(np.concatenate([np.r_[d.labelled, d.validation] for d in draws]))
    unused = np.setdiff1d(np.arange(len(train_y)), used)
    poisoned_x, poisoned_y = train_x.copy(), train_y.copy()
    poisoned_x[unused] = np.nan
    poisoned_y[unused] = 3  # a real class: a leak would change the training
    poisoned = _run((poisoned_x, poisoned_y, test_x, test_y), draws, trials=1)
    assert poisoned.test_accuracies == clean.test_accuracies
    assert poisoned.val_accuracy_grid == clean.val_accuracy_grid


def test_near_perfect_on_a_separable_problem(data):
    train_x, train_y = data[0], data[1]
    result = _run(data, _draws(train_y, n=1, labels_per_class=16, val_size=48), trials=2,
                  search_space=None)  # the real search space
    assert result.test_accuracies[0] >= 0.97
    assert result.val_accuracies[0] >= 0.97
    assert result.feature_dim == 4 * 4 * 8


def test_deterministic_for_a_seed(noise):
    draws = _draws(noise[1], n=1)
    first, second = (_run(noise, draws, seed=5) for _ in range(2))
    assert first.test_accuracies == second.test_accuracies
    assert first.val_accuracy_grid == second.val_accuracy_grid
    settings = [{k: v for k, v in t.items() if k != "seconds"} for t in first.extra["trials"][0]]
    assert settings == [{k: v for k, v in t.items() if k != "seconds"}
                        for t in second.extra["trials"][0]]
    other = _run(noise, draws, seed=6, trials=1, train=lambda *a, **k: _stub_trial(a[4]))
    assert other.extra["trials"][0][0]["learning_rate"] != settings[0]["learning_rate"]


def test_a_trial_is_deterministic_for_its_seed(noise):
    x, y = noise[0], noise[1]
    hp = Hyperparameters(1e-3, 0.5, 1e-2, 2, True)  # dropout and augmentation both random
    args = dict(batch_size=16, num_classes=4, **ARCH)
    a, b, c = (train_trial(x[:64], y[:64], x[64:], y[64:], hp, seed=s, **args)
               for s in (1, 1, 2))
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a.weights, c.weights))


def _stub_trial(hp):
    return Trial(hp, 0.5, 1, 1, 0.0, weights=build_model(num_classes=4, **ARCH).get_weights())


def test_bad_options_are_refused(data):
    with pytest.raises(ValueError, match="trials must be >= 1, got 0"):
        _run(data, _draws(data[1], n=1), trials=0)
    with pytest.raises(ValueError, match="early_stopping_images must be >= 0"):
        _run(data, _draws(data[1], n=1), early_stopping_images=-1)


def test_early_stopping_subset_still_ranks_on_all_validation_images(data):
    train_x, train_y = data[0], data[1]
    draw = _draws(train_y, n=1)[0]
    hp = Hyperparameters(3e-3, 0.0, 1e-4, 3, False)
    args = dict(seed=0, batch_size=16, num_classes=4, **ARCH)
    x_val, y_val = train_x[draw.validation], train_y[draw.validation]
    trial = train_trial(train_x[draw.labelled], train_y[draw.labelled], x_val, y_val, hp,
                        early_stopping_images=8, **args)
    model = build_model(num_classes=4, **ARCH)
    model.set_weights(trial.weights)
    assert trial.val_accuracy == accuracy_of(model, x_val, y_val)
    assert 1 <= trial.best_epoch <= trial.epochs_trained <= 3
    assert dataclasses.asdict(trial.hyperparameters) == dataclasses.asdict(hp)


def test_the_time_estimate_comes_before_the_long_part(data, capsys):
    """Before the second of its trainings the search says how long all of them will take:
    the first trial's time per epoch times every planned epoch."""
    weights = build_model(num_classes=4, seed=0, **ARCH).get_weights()

    def train(x_train, y_train, x_val, y_val, hp, *, seed, **unused):
        return Trial(hp, 0.5, 1, 3, 6.0, weights=weights)  # 3 epochs in 6 s: 2 s an epoch

    draws = _draws(data[1], n=2)
    _run(data, draws, trials=5, train=train, progress=True)
    planned = 0
    for draw in draws:  # the settings each draw's search draws (seed 0)
        rng = np.random.default_rng([0, draw.seed])
        planned += sum(sample_hyperparameters(rng, SHORT).epochs for _ in range(5))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"[supervised_cnn] 2 draws x 5 trials = 10 CNNs to train "
                               f"({planned} epochs at most)")
    estimates = [i for i, line in enumerate(lines) if "estimated time" in line]
    assert estimates == [1]  # once, before the first trial's own line
    assert f"at most {2 * planned / 60:.0f} min" in lines[1]
    assert "trial 1/5" in lines[2]


def test_time_estimate_scales_the_first_trial_to_every_planned_epoch():
    line = supervised_cnn.time_estimate(seconds=12.0, epochs_trained=4, planned_epochs=1200)
    assert line.startswith("estimated time: at most 60 min (the first trial: 12.0 s for 4")
