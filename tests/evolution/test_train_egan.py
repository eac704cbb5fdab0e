"""`train --trainer=egan` end to end: TensorBoard fitness and wins, samples, checkpoints with
the population, resume, and an export of the selected generator that loads like a DCGAN's."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from testutil import make_idx_dataset, run_binary
from dcgan_keras import config as config_lib
from dcgan_keras.exporters import export_lib
from dcgan_keras.workdir import restore_models

TRAIN = "dcgan_keras.binaries.train"


def _flags(workdir, data_dir, **overrides):
    flags = dict(workdir=workdir, dataset="fashion_mnist", data_dir=data_dir, image_size=16,
                 channels=1, base_width=4, z_dim=8, batch_size=12, max_steps=3, log_every=1,
                 checkpoint_every=100, num_sample_images=4, allow_download="false",
                 mixed_precision="none", trainer="egan", egan_parents=2,
                 egan_fitness_batch=16)
    flags.update(overrides)
    return [f"--{k}={v}" for k, v in flags.items()]


def _scalars(workdir):
    tags = {}
    for path in glob.glob(os.path.join(workdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag != "samples":
                    tags.setdefault(value.tag, []).append(
                        (event.step, float(tf.make_ndarray(value.tensor))))
    return {tag: sorted(values) for tag, values in tags.items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("egan")
    # 64 images: 5 generations of 12 (= 2 x egan_d_steps 3 x egan_parents 2) an epoch
    data = make_idx_dataset(str(root / "data"))
    workdir = str(root / "run")
    result = run_binary(TRAIN, *_flags(workdir, data))
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = run_binary(TRAIN, *_flags(workdir, data, max_steps=5))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr and "at step 3" in resumed.stderr
    return workdir


def test_tensorboard_has_each_childs_fitness_its_parts_and_running_counts(trained):
    tags = _scalars(trained)
    children = [f"p{j}_{m}" for j in (0, 1) for m in ("minimax", "heuristic", "least_squares")]
    for child in children:
        for prefix in ("F", "Fq", "Fd"):
            assert [s for s, _ in tags[f"train/{prefix}_{child}"]] == [1, 2, 3, 4, 5]
        # Logged every step (log_every=1), so each value is that generation's own.
        for (_, f), (_, q), (_, d) in zip(*(tags[f"train/{prefix}_{child}"]
                                            for prefix in ("F", "Fq", "Fd"))):
            assert f == pytest.approx(q + config_lib.TrainConfig().egan_gamma * d, abs=1e-5)
    assert {v for _, v in tags["train/selected"]} <= set(range(len(children)))
    decided = [v for _, v in tags["train/diversity_decided"]]
    assert len(decided) == 5 and np.all(np.diff(decided) >= 0) and decided[-1] <= 5
    wins = np.array([[v for _, v in tags[f"train/wins_{m}"]]
                     for m in ("minimax", "heuristic", "least_squares")])
    # Two survivors a generation, counted from the start across the resume.
    np.testing.assert_array_equal(wins.sum(axis=0), [2, 4, 6, 8, 10])
    assert np.all(np.diff(wins, axis=1) >= 0)
    assert os.path.exists(os.path.join(trained, "samples", "epoch_0001.png"))


def test_checkpoint_keeps_the_population_and_the_export_loads_like_a_dcgans(trained):
    path = tf.train.latest_checkpoint(os.path.join(trained, "checkpoints"))
    assert path.endswith("ckpt-5")
    names = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    assert any(n.startswith("egan_parent_1/") for n in names)
    assert "egan_wins/.ATTRIBUTES/VARIABLE_VALUE" in names
    generator, _, step, config = restore_models(trained)
    assert step == 5 and config.trainer == "egan"
    export_dir = os.path.join(trained, "export")
    export_lib.export_from_workdir(trained, export_dir, quantizations=())
    loaded = tf.saved_model.load(os.path.join(export_dir, "generator"))
    z = tf.random.normal([3, 8], seed=1)
    images = loaded.signatures["serving_default"](z=z)
    images = next(iter(images.values())).numpy()
    np.testing.assert_allclose(images, generator(z, training=False).numpy(), atol=1e-5)


def test_bad_egan_flags_exit_with_a_clear_message(tmp_path):
    data = make_idx_dataset(str(tmp_path / "data"))
    result = run_binary(TRAIN, *_flags(str(tmp_path / "run"), data, batch_size=18,
                                       egan_d_steps=2, egan_parents=2))
    assert result.returncode != 0
    assert "multiple of egan_d_steps x egan_parents = 4" in result.stderr
    assert "Use 16 or 20, or 36 to give each D step 18 real images" in result.stderr
    for field, value, message in (("egan_mutations", "sgd", "distinct names"),
                                  ("egan_fd_sign", "up", "egan_fd_sign must be"),
                                  ("trainer", "wgan", "trainer must be"),
                                  ("egan_fitness_batch", 0, "egan_fitness_batch must be")):
        with pytest.raises(ValueError, match=message):
            config_lib.TrainConfig(**{field: value}).validate()


def test_a_workdir_is_not_resumed_with_another_trainer_or_population():
    egan = config_lib.TrainConfig(trainer="egan")
    for other in (config_lib.TrainConfig(), config_lib.TrainConfig(trainer="egan",
                                                                    egan_parents=2)):
        with pytest.raises(ValueError, match="cannot be resumed"):
            config_lib.check_resumable(egan, other)
    config_lib.check_resumable(egan, config_lib.TrainConfig(trainer="egan", egan_gamma=0.1))
