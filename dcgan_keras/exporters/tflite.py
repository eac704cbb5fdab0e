"""TensorFlow Lite generators converted from the exported SavedModel.

The converter reads the SavedModel's `serving_default` signature (z float32
[batch, z_dim] -> images float32 [batch, S, S, C] in [-1, 1]), not the Keras model:
`TFLiteConverter.from_keras_model` does not support Keras 3. The .tflite files keep the
signature's names, so a LiteRT / TensorFlow Lite interpreter runs them as

    interpreter = tf.lite.Interpreter(model_path="generator.tflite")
    images = interpreter.get_signature_runner("serving_default")(z=z)["images"]

Variants (QUANTIZATIONS):
    float32: exact conversion.
    float16: weights stored as float16 (half the size), computed in float32 on CPU.
    int8:    dynamic-range quantisation: int8 weights (a quarter of the size),
             activations quantised on the fly; float input and output.
"""
import os

import tensorflow as tf

from dcgan_keras.utils import files

QUANTIZATIONS = ("float32", "float16", "int8")
FILENAMES = {"float32": "generator.tflite", "float16": "generator_float16.tflite",
             "int8": "generator_int8.tflite"}


def convert(saved_model_dir, quantization="float32", signature_keys=("serving_default",)):
    """Converts signatures of a SavedModel to a TFLite flatbuffer.

    Args:
        saved_model_dir: a SavedModel directory (e.g. export/generator).
        quantization: one of QUANTIZATIONS.
        signature_keys: the SavedModel signatures to convert.
    Returns:
        The .tflite model as bytes.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=list(signature_keys))
    if quantization in ("float16", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def export_tflite(saved_model_dir, output_dir, quantizations=QUANTIZATIONS):
    """Writes one .tflite generator per quantisation into output_dir.

    Returns:
        {quantization: path}.
    """
    paths = {}
    for quantization in quantizations:
        path = os.path.join(output_dir, FILENAMES[quantization])
        model = convert(saved_model_dir, quantization)
        files.write_bytes(path, model)
        paths[quantization] = path
    return paths
