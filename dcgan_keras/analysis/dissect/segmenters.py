"""Pluggable segmenters for dissection: images in, an integer concept map out.

The interface (what `load` returns, and what a user's segmenter provides):

    segmenter(images) -> labels
        images: float32 [N, H, W, C] in [-1, 1] (G's output range), or uint8 [N, H, W, C]
            when the segmenter asks for them (see below);
        labels: integers [N, H, W]; labels[n, i, j] = k means pixel (i, j) of image n
            shows concept k, an index into `segmenter.concepts`.
    segmenter.concepts: the concept names, a tuple of strings.
    segmenter.probabilities: None, or a TensorFlow function images -> softmax
        probabilities float32 [N, H, W, K] (K = len(concepts)), for images a float32
        tensor [N, H, W, C] in [-1, 1]; differentiable w.r.t. the images, so that an
        optimisation can backpropagate through the segmenter.

A segmenter is named by a string:
- "shapes": the colour-rule segmenter of --dataset=shapes (`data/shapes.py`);
- "module:function": a Python callable, imported. Its concept names are the callable's
  `concepts` attribute, or else the module's `CONCEPTS`. It gets [-1, 1] floats, or uint8
  when it has the attribute `input_dtype = "uint8"`; its attribute `probabilities`, if
  any, is the segmenter's `probabilities`;
- a directory: a TensorFlow SavedModel. It is called through its `segment` function if it
  has one, else its "serving_default" signature (one input; output "labels", or its only
  output); uint8 when that input is uint8, [-1, 1] floats otherwise. Its concept names are
  the lines of `concepts.txt` in the directory. Its `probabilities` function, if it has
  one, is the segmenter's `probabilities`. `save` writes such a SavedModel from any
  TensorFlow function of images (learned_segmenter.py trains and saves one).
"""
import importlib
import os

import numpy as np
import tensorflow as tf

from dcgan_keras.data import shapes

CONCEPTS_FILE = "concepts.txt"


class SegmenterError(ValueError):
    """A segmenter that cannot be loaded or does not follow the interface."""


class Segmenter:
    """A callable images -> labels [N, H, W] (int32) with `concepts` (see the module doc).

    Args:
        fn: images -> label maps (NumPy or tensors).
        concepts: concept names; label k names concepts[k].
        input_dtype: "float" ([-1, 1] float32) or "uint8": what `fn` wants.
        name: how it was named (for messages and the JSON).
        probabilities: optional TensorFlow function: [-1, 1] float32 images [N, H, W, C]
            -> float32 [N, H, W, K] softmax probabilities, differentiable.
    """

    def __init__(self, fn, concepts, input_dtype="float", name="", probabilities=None):
        self.fn, self.concepts = fn, tuple(str(c) for c in concepts)
        self.input_dtype, self.name = input_dtype, name
        self.probabilities = probabilities
        if not self.concepts:
            raise SegmenterError(f"segmenter {name!r} names no concepts")

    def __call__(self, images):
        images = np.asarray(images)
        if self.input_dtype == "uint8" and images.dtype != np.uint8:
            images = np.round((np.clip(images, -1, 1) + 1) * 127.5).astype(np.uint8)
        elif self.input_dtype != "uint8" and images.dtype == np.uint8:
            images = images.astype(np.float32) / 127.5 - 1.0
        labels = np.asarray(self.fn(images))
        if labels.shape != images.shape[:3] or not np.issubdtype(labels.dtype, np.integer):
            raise SegmenterError(f"segmenter {self.name!r} must map images {images.shape} to "
                                 f"integer labels {images.shape[:3]}, got {labels.dtype} "
                                 f"{labels.shape}")
        return labels.astype(np.int32)


def _from_callable(spec):
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError) as e:
        raise SegmenterError(f"cannot load segmenter {spec!r} ({e}); expected "
                             "module:function of an importable module") from None
    concepts = getattr(fn, "concepts", None) or getattr(module, "CONCEPTS", None)
    if not concepts:
        raise SegmenterError(f"segmenter {spec!r} has no concept names: give the function a "
                             f"`concepts` attribute or the module a CONCEPTS tuple")
    return Segmenter(fn, concepts, getattr(fn, "input_dtype", "float"), spec,
                     getattr(fn, "probabilities", None))


def _from_saved_model(path):
    concepts_path = os.path.join(path, CONCEPTS_FILE)
    if not tf.io.gfile.exists(concepts_path):
        raise SegmenterError(f"SavedModel segmenter {path} has no {CONCEPTS_FILE} (one "
                             "concept name per line, label 0 first)")
    with tf.io.gfile.GFile(concepts_path) as f:
        concepts = [line.strip() for line in f if line.strip()]
    # The functions below reach the restored ones through `loaded`, so that the loaded
    # object, which owns the variables, lives as long as the segmenter (a restored function
    # alone does not keep them: "a function referencing variables which have been deleted").
    loaded = tf.saved_model.load(path)
    if hasattr(loaded, "segment"):
        spec = loaded.segment.concrete_functions[0].structured_input_signature[0][0]
        dtype, call = spec.dtype, lambda images: loaded.segment(images)
    else:
        if "serving_default" not in loaded.signatures:
            raise SegmenterError(f"SavedModel {path} has neither a `segment` function nor a "
                                 "serving_default signature")
        signature = loaded.signatures["serving_default"]
        (key, spec), = signature.structured_input_signature[1].items()
        dtype = spec.dtype

        def call(images):
            out = loaded.signatures["serving_default"](**{key: images})
            return out["labels"] if "labels" in out else next(iter(out.values()))

    def probabilities(images):
        return loaded.probabilities(tf.convert_to_tensor(images, tf.float32))
    return Segmenter(lambda images: call(tf.constant(images, dtype)).numpy(), concepts,
                     "uint8" if dtype == tf.uint8 else "float", path,
                     probabilities if hasattr(loaded, "probabilities") else None)


def load(spec):
    """The segmenter named by `spec`: "shapes", "module:function" or a SavedModel directory."""
    if spec == "shapes":
        return Segmenter(shapes.segment, shapes.CONCEPTS, "float", "shapes")
    if tf.io.gfile.isdir(spec):
        return _from_saved_model(spec)
    if ":" in spec:
        return _from_callable(spec)
    raise SegmenterError(f"unknown segmenter {spec!r}: give 'shapes', module:function, or a "
                         "SavedModel directory")


def save(fn, concepts, path, image_shape, input_dtype=tf.float32, probabilities=None,
         track=None):
    """Writes a TensorFlow function of images as a SavedModel segmenter that `load` reads.

    Args:
        fn: TensorFlow ops: images [N, H, W, C] of `input_dtype` -> integer labels [N, H, W].
        concepts: the concept names (label 0 first).
        path: the SavedModel directory (created).
        image_shape: [H, W, C] (None for a size the functions accept at any value).
        input_dtype: tf.float32 (images in [-1, 1]) or tf.uint8.
        probabilities: optional TensorFlow ops: float32 images in [-1, 1] -> softmax
            probabilities [N, H, W, len(concepts)]; saved as the module's `probabilities`.
        track: what holds the variables that `fn` and `probabilities` read (a Keras
            model), saved with them.
    """
    module = tf.Module()
    if track is not None:
        module.tracked = track
    module.segment = tf.function(
        lambda images: tf.cast(fn(images), tf.int32),
        input_signature=[tf.TensorSpec([None, *image_shape], input_dtype, name="images")])
    if probabilities is not None:
        module.probabilities = tf.function(
            lambda images: tf.cast(probabilities(images), tf.float32),
            input_signature=[tf.TensorSpec([None, *image_shape], tf.float32, name="images")])
    tf.saved_model.save(module, path, signatures={
        "serving_default": module.segment.get_concrete_function()})
    with tf.io.gfile.GFile(os.path.join(path, CONCEPTS_FILE), "w") as f:
        f.write("".join(f"{c}\n" for c in concepts))
    return path
