"""TFLite generators (converted from the SavedModel) run in a fresh process and match G.

Tolerances: max |difference| of [-1, 1] pixels against the Keras generator.
                 these tiny nets      trained 32x32 Fashion-MNIST G      asserted here
    float32      ~6e-7                1.5e-6 (mean 8e-8)                 1e-4
    float16      ~2e-3                1.7e-3 (mean 7e-5)                 2e-2 (mean 2e-3)
    int8 (dyn.)  ~4e-2                8.5e-2 (mean 3e-3, p99 2.5e-2)     0.1 (mean 2e-2)
In uint8 terms the trained float16 model differs by at most 1 level, int8 by up to 11
(mean 0.4).
"""
import os

import numpy as np
import pytest

from dcgan_keras.exporters import tflite

TOLERANCES = {"float32": (1e-4, 1e-5), "float16": (2e-2, 2e-3), "int8": (0.1, 2e-2)}


@pytest.mark.parametrize("quantization", tflite.QUANTIZATIONS)
def test_tflite_matches_keras(fresh, models, inputs, quantization):
    out, errors, _ = fresh
    expected = models[0](inputs["z"], training=False).numpy()
    got = out["tflite_" + quantization]
    assert got.shape == expected.shape and got.dtype == np.float32
    max_tol, mean_tol = TOLERANCES[quantization]
    diff = np.abs(got - expected)
    print(f"{quantization}: max {diff.max():.2e} mean {diff.mean():.2e}")
    assert diff.max() <= max_tol and diff.mean() <= mean_tol
    # The interpreter refuses wrong inputs; the dtype and set_tensor errors name what it
    # expects, the signature runner's shape error comes from the XNNPACK delegate.
    assert errors[f"tflite_{quantization}_runner_shape"] is not None
    assert "expected type FLOAT32" in errors[f"tflite_{quantization}_runner_dtype"]
    assert "Got 9 but expected 8" in errors[f"tflite_{quantization}_set_tensor_shape"]


def test_quantized_files_are_smaller(export_dir):
    sizes = {q: os.path.getsize(os.path.join(export_dir, tflite.FILENAMES[q]))
             for q in tflite.QUANTIZATIONS}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]


def test_unknown_quantization_is_refused(export_dir):
    with pytest.raises(ValueError, match="quantization must be one of"):
        tflite.convert(os.path.join(export_dir, "generator"), "int4")
