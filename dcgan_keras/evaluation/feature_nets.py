"""Feature networks for sample-quality metrics: InceptionV3 or a domain classifier.

A feature net maps images in [-1, 1] (any size, 1 or 3 channels) to features [n, d] (for
FID, KID, precision/recall) and class probabilities [n, k] (for the Inception Score).
Nothing here downloads at run time: without local weights the error says how to get them.
"""
import hashlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

INCEPTION_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/"
                 "inception_v3/" + INCEPTION_WEIGHTS)
CLASSIFIER_FILE = "classifier.keras"
CLASSIFIER_INFO = "classifier.json"


class FeatureNet:
    """Images -> (features, probabilities), in batches, in inference mode.

    Args:
        model: a Keras model with two outputs (features [n, d], probabilities [n, k]).
        image_size, channels: what the model takes; inputs are resized / converted.
        name: an identifier used in cache keys and reports.
    """

    def __init__(self, model, image_size, channels, name):
        self.model = model
        self.image_size = image_size
        self.channels = channels
        self.name = name

        @tf.function(reduce_retracing=True)
        def run(images):
            images = tf.cast(images, tf.float32)
            if images.shape[-1] != self.channels:
                images = (tf.image.grayscale_to_rgb(images) if self.channels == 3
                          else tf.image.rgb_to_grayscale(images))
            if images.shape[1] != self.image_size or images.shape[2] != self.image_size:
                images = tf.image.resize(images, [self.image_size, self.image_size],
                                         method="bilinear", antialias=True)
            features, probs = self.model(images, training=False)
            return tf.cast(features, tf.float32), tf.cast(probs, tf.float32)

        self._run = run

    def __call__(self, images, batch_size=250):
        """Returns (features float64 [n, d], probabilities float64 [n, k])."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"images must be [n, H, W, 1 or 3] in [-1, 1], got {images.shape}")
        feats, probs = [], []
        for start in range(0, len(images), batch_size):
            f, p = self._run(images[start:start + batch_size])
            feats.append(f.numpy())
            probs.append(p.numpy())
        return np.concatenate(feats).astype(np.float64), np.concatenate(probs).astype(np.float64)

    @property
    def fingerprint(self):
        """A short hash of the weights, so cached statistics follow the network."""
        h = hashlib.sha256(self.name.encode())
        for w in self.model.weights[:4] + self.model.weights[-4:]:
            h.update(np.ascontiguousarray(w.numpy()).tobytes()[:4096])
        return h.hexdigest()[:12]


def inception_weights_path(weights=None):
    """The InceptionV3 weights file: `weights`, $DCGAN_KERAS_INCEPTION_WEIGHTS or the Keras cache."""
    candidates = [weights, os.environ.get("DCGAN_KERAS_INCEPTION_WEIGHTS"),
                  os.path.join(os.path.expanduser("~/.keras/models"), INCEPTION_WEIGHTS)]
    for path in candidates:
        if path and os.path.isfile(path):
            return path
    raise FileNotFoundError(
        "InceptionV3 weights not found (looked at: "
        f"{', '.join(p for p in candidates if p)}). Download {INCEPTION_URL} on a machine "
        "with internet and put it in ~/.keras/models/, or pass its path "
        "(--inception_weights=PATH or DCGAN_KERAS_INCEPTION_WEIGHTS). Offline, use a "
        "domain classifier instead: python -m dcgan_keras.binaries.train_classifier "
        "--dataset=NAME --workdir=W, then --feature_net=W. Random weights are never used.")


def inception(weights=None):
    """InceptionV3 (keras.applications): 2048-d pool features and 1000-class softmax.

    Note: published FIDs use the 2015 TF-slim Inception graph; keras.applications'
    ImageNet weights give numbers on a close but not identical scale.
    """
    path = inception_weights_path(weights)
    base = keras.applications.InceptionV3(include_top=True, weights=path)
    pool = base.get_layer("avg_pool").output
    model = keras.Model(base.inputs, [pool, base.output], name="inception_features")
    return FeatureNet(model, 299, 3, "inception_v3")


def classifier(path):
    """A domain classifier trained by `train_classifier` (a workdir or its .keras file)."""
    file = os.path.join(path, CLASSIFIER_FILE) if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise FileNotFoundError(
            f"no classifier at {path!r} (expected a {CLASSIFIER_FILE} file or a workdir "
            "holding one); train it: python -m dcgan_keras.binaries.train_classifier "
            "--dataset=NAME --workdir=W")
    model = keras.models.load_model(file, compile=False)
    feature_model = keras.Model(model.inputs, [model.get_layer("features").output,
                                               model.output])
    _, height, _, channels = model.input_shape
    info_path = os.path.join(os.path.dirname(file), CLASSIFIER_INFO)
    name = "classifier"
    if os.path.exists(info_path):
        with open(info_path) as f:
            name = "classifier_" + json.load(f).get("dataset", "")
    return FeatureNet(feature_model, height, channels, name)


def load(spec, inception_weights=None):
    """`inception` or a classifier path -> FeatureNet."""
    if spec == "inception":
        return inception(inception_weights)
    return classifier(spec)
