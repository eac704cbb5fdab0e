"""benchmarks/egan_toys.py: the authors' mixtures, the mode-coverage and quality scores on
hand-made samples, and one tiny run of the whole script in this process."""
import importlib.util
import json
import os

import numpy as np
import pytest

from testutil import REPO
from dcgan_keras import losses
from dcgan_keras.evolution import mutations

_spec = importlib.util.spec_from_file_location(
    "egan_toys", os.path.join(REPO, "benchmarks", "egan_toys.py"))
egan_toys = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(egan_toys)

RING, GRID = egan_toys.MIXTURES["8"], egan_toys.MIXTURES["25"]


def _same_points(a, b):
    key = lambda p: np.lexsort(np.round(p, 6).T)  # noqa: E731
    np.testing.assert_allclose(a[key(a)], b[key(b)], atol=1e-12)


def test_the_mixtures_are_the_authors():
    # dataset/datasets.py toy_dataset of WANG-Chaoyue/EvolutionaryGAN, written out.
    r = 1.0 / np.sqrt(2)
    ring = 2.0 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (r, r), (r, -r), (-r, r),
                           (-r, -r)]) / 1.414
    _same_points(RING.centres, ring)
    assert RING.std == 0.02 / 1.414
    grid = np.array([(2.0 * x, 2.0 * y) for x in range(-2, 3) for y in range(-2, 3)]) / 2.828
    _same_points(GRID.centres, grid)
    assert GRID.std == 0.05 / 2.828


@pytest.mark.parametrize("mixture", [RING, GRID])
def test_real_batches_are_the_mixture_and_a_function_of_seed_and_index(mixture):
    points = egan_toys.real_batch(mixture, 3, 7, 20_000).numpy()
    distance = np.linalg.norm(points[:, None] - mixture.centres[None], axis=-1)
    nearest = distance.argmin(1)
    residual = points - mixture.centres[nearest]
    assert abs(residual.std() / mixture.std - 1) < 0.03
    share = np.bincount(nearest, minlength=len(mixture.centres)) / len(points)
    assert np.abs(share - 1 / len(mixture.centres)).max() < 0.01
    np.testing.assert_array_equal(egan_toys.real_batch(mixture, 3, 7, 64).numpy(), points[:64])
    assert not np.allclose(egan_toys.real_batch(mixture, 3, 8, 64).numpy(), points[:64])


def test_samples_at_seven_of_eight_centres_cover_seven_modes():
    samples = np.repeat(RING.centres[:7], 1000, axis=0)
    stats = egan_toys.mode_stats(samples, RING)
    assert stats["modes"] == 7 and stats["high_quality"] == 1.0
    assert stats["counts"] == [1000] * 7 + [0]


def test_far_points_are_neither_quality_nor_modes():
    far = np.full((500, 2), 10.0)
    assert egan_toys.mode_stats(far, GRID) == {"modes": 0, "high_quality": 0.0,
                                               "counts": [0] * 25}
    half = np.concatenate([far, np.repeat(GRID.centres[:1], 500, axis=0)])
    assert egan_toys.mode_stats(half, GRID)["high_quality"] == 0.5
    broken = np.full((10, 2), np.nan)
    assert egan_toys.mode_stats(broken, RING)["high_quality"] == 0.0


def test_the_three_sd_radius_and_the_count_threshold():
    centre, sd = RING.centres[0], RING.std
    direction = np.array([0.6, 0.8])  # a unit vector
    inside, outside = centre + 2.99 * sd * direction, centre + 3.01 * sd * direction
    stats = egan_toys.mode_stats(np.stack([inside, outside]), RING, min_count=1)
    assert stats["counts"][0] == 1 and stats["high_quality"] == 0.5 and stats["modes"] == 1
    n = egan_toys.MIN_COUNT
    samples = np.concatenate([np.repeat(RING.centres[:1], n, axis=0),
                              np.repeat(RING.centres[1:2], n - 1, axis=0)])
    assert egan_toys.mode_stats(samples, RING)["modes"] == 1


def test_real_samples_cover_every_mode_at_the_gaussian_share():
    # P(|x - mu| <= 3 sd) for a 2-D isotropic Gaussian: 1 - exp(-9 / 2).
    expected = 1 - np.exp(-4.5)
    for mixture in (RING, GRID):
        points = egan_toys.real_batch(mixture, 0, 0, egan_toys.NUM_SAMPLES).numpy()
        stats = egan_toys.mode_stats(points, mixture)
        assert stats["modes"] == len(mixture.centres)
        assert abs(stats["high_quality"] - expected) < 0.004


def test_the_plain_gans_train_the_mutations_objectives():
    """Each single-objective method is DCGAN with the G loss of that mutation (up to the
    paper's constant factor, which Adam does not see)."""
    logits = np.linspace(-4, 4, 9).astype("float32")
    for method, loss in egan_toys.METHODS.items():
        if loss is None:
            continue
        ratio = (mutations.MUTATIONS[method](logits).numpy()
                 / losses.GENERATOR_LOSSES[loss](logits).numpy())
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)
        assert ratio[0] > 0


def test_a_tiny_run_writes_the_table_json_and_picture_and_is_reused(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--seeds=0", "--mixtures=25",
            "--methods=egan,least_squares", "--updates=4", "--checkpoints=2", "--width=16",
            "--batch=16", "--fitness_batch=32", "--plot_points=100", "--no-jit",
            "--steps_per_execution=1"]
    results = egan_toys.main(argv)
    with open(tmp_path / "egan_toys.json") as f:
        assert json.load(f)["updates"] == results["updates"] == 4
    for method in ("egan", "least_squares"):
        record = results["runs"]["25"][method][0]
        assert [c["update"] for c in record["checkpoints"]] == [2, 4]
        assert 0 <= record["modes"] <= 25 and 0 <= record["high_quality"] <= 1
        assert sum(record["counts"]) == round(record["high_quality"] * egan_toys.NUM_SAMPLES)
    egan = results["runs"]["25"]["egan"][0]
    assert sum(egan["wins"].values()) == 4 and 0 <= egan["diversity_decided"] <= 4
    assert egan["diversity_share"] == egan["diversity_decided"] / 4
    image = egan_toys.image_utils.read_png(str(tmp_path / "egan_toys_25.png"))
    assert image.shape == (16 + 2 * (160 + 4), 96 + 2 * (160 + 4), 3)
    assert (image[..., 1] > image[..., 0]).any()  # green samples drawn
    table = (tmp_path / "egan_toys.md").read_text()
    assert "| 25 | egan |" in table and "| 25 | real data | 25 | 0.98" in table
    capsys.readouterr()
    again = egan_toys.main(argv)
    assert capsys.readouterr().out.count("reused") == 2
    assert again["runs"]["25"]["egan"][0] == egan


def test_the_time_budget_sets_the_updates_once(tmp_path, monkeypatch):
    args = egan_toys.parse_args(["--minutes_per_run=1", "--checkpoints=7"])
    monkeypatch.setattr(egan_toys, "seconds_per_generation", lambda _: 0.011)
    updates, why = egan_toys.choose_updates(args, str(tmp_path))
    # 60 s / 11 ms = 5454.5 generations, down to a multiple of the 7 checkpoints: 779 x 7.
    assert updates == 5453 and "ms per generation" in why
    monkeypatch.setattr(egan_toys, "seconds_per_generation", lambda _: 1e-6)
    assert egan_toys.choose_updates(args, str(tmp_path))[0] == updates  # kept: a restart
    args.minutes_per_run = 2  # another budget: measured again, capped at the authors'
    updates, why = egan_toys.choose_updates(args, str(tmp_path))
    assert updates == egan_toys.AUTHORS_UPDATES - egan_toys.AUTHORS_UPDATES % 7
    assert "authors'" in why
    args.updates = 30
    assert egan_toys.choose_updates(args, str(tmp_path)) == (30, "--updates")
