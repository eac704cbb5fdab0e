"""The prior of z (models/latent.py): the paper's U(-1, 1) by default, N(0, 1) on request,
one choice that the train step, E-GAN, the grids, the exports and the analyses all use,
and N(0, 1) kept for runs, exports and .keras files from before the choice existed."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from testutil import make_idx_dataset
from dcgan_keras import config as config_lib
from dcgan_keras import workdir as workdir_lib
from dcgan_keras.analysis.latent import interpolation
from dcgan_keras.config import TrainConfig
from dcgan_keras.evolution import build_egan
from dcgan_keras.exporters import export_lib
from dcgan_keras.models import Generator, build_dcgan, latent
from dcgan_keras.training import train_lib

TINY = dict(image_size=16, channels=1, z_dim=8, base_width=4)


def _moments_say(z, distribution):
    """z (many draws) has the prior's range and first two moments."""
    z = np.asarray(z, np.float64)
    if distribution == "uniform":  # U(-1, 1): mean 0, variance 1/3, E z^4 = 1/5
        assert z.min() >= -1 and z.max() <= 1 and z.min() < -0.99 and z.max() > 0.99
        assert abs(z.mean()) < 0.02 and abs(z.var() - 1 / 3) < 0.01
        assert abs(np.mean(z ** 4) - 1 / 5) < 0.01
    else:  # N(0, 1): mean 0, variance 1, E z^4 = 3
        assert np.abs(z).max() > 3
        assert abs(z.mean()) < 0.03 and abs(z.var() - 1) < 0.04
        assert abs(np.mean(z ** 4) - 3) < 0.2


def test_the_paper_s_prior_is_the_default():
    assert TrainConfig().z_distribution == latent.PAPER == "uniform"
    assert Generator(**TINY).z_distribution == "uniform"
    assert build_dcgan(**TINY).z_distribution == "uniform"
    with pytest.raises(ValueError, match="z_distribution must be one of uniform, normal, "
                                         "got 'gaussian'"):
        TrainConfig(z_distribution="gaussian").validate()


@pytest.mark.parametrize("distribution", ["uniform", "normal"])
def test_the_train_step_and_egan_draw_from_the_chosen_prior(distribution):
    gan = build_dcgan(**TINY, z_distribution=distribution)
    _moments_say(gan.noise(20000), distribution)
    egan = build_egan(**TINY, z_distribution=distribution, parents=2)
    _moments_say(egan.noise(20000, stream=1), distribution)
    # every copy of G (the EMA G, E-GAN's parents and child) carries the prior
    assert {p.z_distribution for p in egan.parents + [egan.child]} == {distribution}


@pytest.mark.parametrize("distribution", ["uniform", "normal"])
def test_numpy_and_stateless_draws(distribution):
    _moments_say(latent.numpy(np.random.default_rng(0), (20000, 4), distribution),
                 distribution)
    _moments_say(latent.stateless([20000, 4], [1, 2], distribution), distribution)


def test_a_generator_keeps_its_prior_through_its_config():
    g = Generator(**TINY, z_distribution="normal")
    assert Generator.from_config(g.get_config()).z_distribution == "normal"
    old = {k: v for k, v in Generator(**TINY).get_config().items() if k != "z_distribution"}
    assert Generator.from_config(old).z_distribution == "normal"  # a .keras file of old


def test_config_json_records_it_and_an_old_workdir_resumes_on_normal(tmp_path):
    data = make_idx_dataset(str(tmp_path / "data"))
    config = TrainConfig(dataset="fashion_mnist", data_dir=data, allow_download=False,
                         max_steps=1, mixed_precision="none", **TINY, batch_size=16)
    workdir = str(tmp_path / "run")
    train_lib.train_and_evaluate(config, workdir)
    saved = json.load(open(os.path.join(workdir, "config.json")))
    assert saved["z_distribution"] == "uniform"
    assert workdir_lib.restore_models(workdir)[0].z_distribution == "uniform"
    # A workdir written before the choice: no key, trained on N(0, 1). It keeps N(0, 1)
    # when restored and when resumed (and another prior is refused on resume).
    del saved["z_distribution"]
    json.dump(saved, open(os.path.join(workdir, "config.json"), "w"))
    assert config_lib.load(workdir).z_distribution == "normal"
    assert workdir_lib.restore_models(workdir)[0].z_distribution == "normal"
    resumed, changes = config_lib.resume_config(config_lib.load(workdir), {"max_steps": 2})
    assert resumed.z_distribution == "normal" and "z_distribution" not in changes
    with pytest.raises(ValueError, match="z_distribution: workdir has 'normal', flags say "
                                         "'uniform'"):
        config_lib.resume_config(config_lib.load(workdir), {"z_distribution": "uniform"})
    result = train_lib.train_and_evaluate(resumed, workdir)
    assert result["step"] == 2 and result["gan"].z_distribution == "normal"


@pytest.mark.parametrize("distribution", ["uniform", "normal"])
def test_the_exported_sample_signature_draws_from_the_run_s_prior(distribution, tmp_path):
    g = Generator(**TINY, z_distribution=distribution)
    d = build_dcgan(**TINY).discriminator
    path = str(tmp_path / "export")
    export_lib.export_models(g, d, path, step=1, dataset="fashion_mnist",
                             preprocess="crop_resize", checkpoint="ckpt-1", quantizations=[])
    assert json.load(open(os.path.join(path, "metadata.json")))["z_distribution"] == \
        distribution
    sample = tf.saved_model.load(os.path.join(path, "generator")).signatures["sample"]
    z = sample(num=tf.constant(4000), seed=tf.constant(5, tf.int64))["z"].numpy()
    _moments_say(z, distribution)
    seed = tf.constant([5, 0], tf.int64)
    reference = (tf.random.stateless_uniform([4000, 8], seed, minval=-1.0, maxval=1.0)
                 if distribution == "uniform" else tf.random.stateless_normal([4000, 8], seed))
    np.testing.assert_array_equal(z, reference.numpy())
    assert workdir_lib.networks_from_export(path).generator.z_distribution == distribution
    # an export from before the prior was recorded is read as N(0, 1)
    meta = json.load(open(os.path.join(path, "metadata.json")))
    del meta["z_distribution"]
    assert workdir_lib.export_z_distribution(path, meta) == "normal"


def test_walks_on_the_uniform_prior_lerp_stays_in_the_cube_slerp_leaves_it():
    lin = interpolation.random_walks(50, 9, 64, seed=0, mode="linear")
    sph = interpolation.random_walks(50, 9, 64, seed=0, mode="spherical")
    np.testing.assert_allclose(lin[:, [0, -1]], sph[:, [0, -1]], atol=1e-5)
    assert np.abs(lin[:, [0, -1]]).max() <= 1  # the ends are draws of U(-1, 1)
    assert np.abs(lin).max() <= 1  # the cube is convex
    assert np.abs(sph).max() > 1.05  # the great circle leaves it
    # lerp's middle is shorter than its ends; slerp keeps the norm (within the ends')
    mid = lambda w: np.linalg.norm(w[:, 4], axis=1) / np.linalg.norm(w[:, 0], axis=1)  # noqa: E731
    assert np.mean(mid(lin)) < 0.8 and abs(np.mean(mid(sph)) - 1) < 0.1
    normal = interpolation.random_walks(50, 9, 64, seed=0, distribution="normal")
    assert np.abs(normal[:, [0, -1]]).max() > 2
