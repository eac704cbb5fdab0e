"""FID, KID, IS and precision/recall of a generator against a real image set.

Reference features (dataset, split, size, preprocessing, number of images, feature
network and a fingerprint of its weights) are cached as .npz under
$DCGAN_KERAS_CACHE (default ~/.cache/dcgan_keras), so a training run or a sweep pays
for them once.
"""
import os

import numpy as np
from absl import logging

from dcgan_keras.data import datasets, pipeline, preprocessing
from dcgan_keras.evaluation import metrics
from dcgan_keras.models import latent
from dcgan_keras.utils import files

METRICS = ("fid", "kid", "is", "pr")


def cache_dir():
    return os.environ.get("DCGAN_KERAS_CACHE", os.path.expanduser("~/.cache/dcgan_keras"))


def reference_features(feature_net, dataset, split="test", image_size=32, channels=1,
                       preprocess="crop_resize", num_examples=10000, data_dir=None,
                       allow_download=True, use_cache=True):
    """Features [n, d] of the first `num_examples` real images of a split (cached)."""
    key = (f"{dataset}_{split}_{image_size}x{channels}_{preprocess}"
           f"v{preprocessing.PIXELS_VERSION}_{num_examples}_"
           f"{feature_net.name}_{feature_net.fingerprint}.npz")
    path = os.path.join(cache_dir(), "reference", key)
    if use_cache and os.path.exists(path):
        with np.load(path) as cached:
            return cached["features"]
    source = datasets.get_source(dataset, split, data_dir, allow_download)
    images, _ = pipeline.load_numpy(source, image_size, channels, preprocess,
                                    max_examples=num_examples)
    if len(images) < num_examples:
        logging.warning("%s/%s has only %d images; the reference set is smaller than %d",
                        dataset, split, len(images), num_examples)
    features, _ = feature_net(images)
    if use_cache:
        files.write_npz(path, features=features)
    return features


def generate(generator, num, seed=0, batch_size=500):
    """`num` images of a Keras generator (inference mode) from z drawn with `seed` from
    its prior (`latent.of`)."""
    z_dim = generator.input_shape[-1]
    z = latent.numpy(np.random.default_rng(seed), (num, z_dim), latent.of(generator))
    return np.concatenate([generator(z[i:i + batch_size], training=False).numpy()
                           for i in range(0, num, batch_size)])


def score(fake_features, real_features, fake_probs=None, which=METRICS, kid_subset_size=1000,
          seed=0):
    """The requested metrics of fake vs real features.

    Returns:
        dict with fid; kid and kid_std; is and is_std (needs fake_probs); precision and
        recall (k=3), for the metrics in `which`.
    """
    unknown = sorted(set(which) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {', '.join(METRICS)}")
    out = {}
    if "fid" in which:
        out["fid"] = metrics.fid_from_features(fake_features, real_features)
    if "kid" in which:
        size = min(kid_subset_size, len(fake_features), len(real_features))
        out["kid"], out["kid_std"] = metrics.kernel_inception_distance(
            fake_features, real_features, subset_size=size, seed=seed)
    if "is" in which:
        if fake_probs is None:
            raise ValueError("the Inception Score needs the feature net's probabilities")
        out["is"], out["is_std"] = metrics.inception_score(fake_probs,
                                                           splits=min(10, len(fake_probs)))
    if "pr" in which:
        pr = metrics.precision_recall(real_features, fake_features, k=3)
        out["precision"], out["recall"] = pr.precision, pr.recall
    return out


class Evaluator:
    """Scores generators against one cached reference set (used during training too)."""

    def __init__(self, feature_net, real_features, num_samples=5000, seed=0,
                 which=("fid", "kid")):
        self.feature_net = feature_net
        self.real_features = real_features
        self.num_samples = num_samples
        self.seed = seed
        self.which = which

    def __call__(self, generator):
        images = generate(generator, self.num_samples, self.seed)
        features, probs = self.feature_net(images)
        return score(features, self.real_features, probs, self.which, seed=self.seed)
