"""Shared fixtures of the exporter tests: tiny models with non-trivial weights, one export,
and the outputs of that export computed in a fresh Python process (TensorFlow + NumPy only).
"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from testutil import make_idx_dataset

from dcgan_keras.exporters import export_lib
from dcgan_keras.models import Discriminator, Generator

IMAGE_SIZE, CHANNELS, Z_DIM, BASE_WIDTH = 16, 1, 8, 8

# Runs in a fresh interpreter: dcgan_keras (and so every custom object) cannot be imported,
# so the export must stand on TensorFlow alone.
FRESH_LOADER = textwrap.dedent(r"""
    import importlib.abc, json, os, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "dcgan_keras":
                raise ImportError("the export must load without dcgan_keras")
    sys.meta_path.insert(0, Block())
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import warnings; warnings.simplefilter("ignore")
    import numpy as np
    import tensorflow as tf

    export_dir, inputs_path, out_path = sys.argv[1:4]
    inputs = np.load(inputs_path)
    z, images = inputs["z"], inputs["images"]
    out, errors = {}, {}

    g = tf.saved_model.load(os.path.join(export_dir, "generator"))
    out["g_signatures"] = np.array(sorted(g.signatures))
    out["g_float"] = g.signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    out["g_uint8"] = g.signatures["generate_uint8"](z=tf.constant(z))["images"].numpy()
    sample = g.signatures["sample"]
    for name, num, seed in [("s4_3", 4, 3), ("s4_3b", 4, 3), ("s6_3", 6, 3), ("s4_4", 4, 4)]:
        r = sample(num=tf.constant(num, tf.int32), seed=tf.constant(seed, tf.int64))
        out[name + "_images"], out[name + "_z"] = r["images"].numpy(), r["z"].numpy()

    d = tf.saved_model.load(os.path.join(export_dir, "discriminator"))
    out["d_signatures"] = np.array(sorted(d.signatures))
    out["d_features"] = d.signatures["features"](images=tf.constant(images))["features"].numpy()
    r = d.signatures["serving_default"](images=tf.constant(images))
    out["d_logits"], out["d_probability"] = r["logits"].numpy(), r["probability"].numpy()

    for q, name in [("float32", "generator.tflite"), ("float16", "generator_float16.tflite"),
                    ("int8", "generator_int8.tflite")]:
        interpreter = tf.lite.Interpreter(model_path=os.path.join(export_dir, name))
        runner = interpreter.get_signature_runner("serving_default")
        out["tflite_" + q] = runner(z=z)["images"]
        for case, value in [("shape", np.zeros([2, z.shape[1] + 1], np.float32)),
                            ("dtype", z.astype(np.float64))]:
            try:
                runner(z=value)
                errors[f"tflite_{q}_runner_{case}"] = None
            except Exception as e:
                errors[f"tflite_{q}_runner_{case}"] = f"{type(e).__name__}: {e}"
        # The low-level API: the input tensor keeps its shape until resized.
        interpreter = tf.lite.Interpreter(model_path=os.path.join(export_dir, name))
        interpreter.allocate_tensors()
        index = interpreter.get_input_details()[0]["index"]
        try:
            interpreter.set_tensor(index, np.zeros([1, z.shape[1] + 1], np.float32))
            errors[f"tflite_{q}_set_tensor_shape"] = None
        except Exception as e:
            errors[f"tflite_{q}_set_tensor_shape"] = f"{type(e).__name__}: {e}"

    bad = {"g_shape": lambda: g.signatures["serving_default"](z=tf.zeros([2, z.shape[1] + 1])),
           "g_rank": lambda: g.signatures["serving_default"](z=tf.zeros([z.shape[1]])),
           "g_dtype": lambda: g.signatures["serving_default"](
               z=tf.zeros([2, z.shape[1]], tf.float64)),
           "sample_dtype": lambda: sample(num=tf.constant(2.0), seed=tf.constant(1, tf.int64)),
           "sample_negative": lambda: sample(num=tf.constant(-1), seed=tf.constant(1, tf.int64)),
           "d_shape": lambda: d.signatures["features"](
               images=tf.zeros([2] + [2 * s for s in images.shape[1:3]] + [images.shape[3]])),
           "d_channels": lambda: d.signatures["serving_default"](
               images=tf.zeros(list(images.shape[:3]) + [images.shape[3] + 2]))}
    for name, call in bad.items():
        try:
            call()
            errors[name] = None
        except Exception as e:
            errors[name] = f"{type(e).__name__}: {e}"
    np.savez(out_path, **out)
    with open(out_path + ".json", "w") as f:
        json.dump({"errors": errors, "modules": sorted(m for m in sys.modules
                                                       if m.split(".")[0] == "dcgan_keras")}, f)
""")


def perturb(model, seed):
    """Replaces the DCGAN init (whose outputs are all near 0) by weights that make outputs
    spread over [-1, 1], and BatchNorm moving statistics far from the batch statistics,
    so comparisons are meaningful and inference mode is tested."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        name, shape = v.path.split("/")[-1], tuple(v.shape)
        if name == "kernel":  # He init; a transposed conv's kernel is [k, k, out, in]
            fan_in = (np.prod(shape[:2]) * shape[3] / 4 if "deconv" in v.path
                      else np.prod(shape[:-1]))
            value = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
        elif name == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif name in ("beta", "bias", "moving_mean"):
            value = rng.normal(0, 0.2, shape)
        elif name == "moving_variance":
            value = rng.uniform(0.5, 2.0, shape)
        else:
            raise AssertionError(f"unexpected variable {v.path}")
        v.assign(value.astype(np.float32))
    return model


@pytest.fixture(scope="session")
def models():
    g = perturb(Generator(image_size=IMAGE_SIZE, channels=CHANNELS, z_dim=Z_DIM,
                          base_width=BASE_WIDTH), 0)
    d = perturb(Discriminator(image_size=IMAGE_SIZE, channels=CHANNELS,
                              base_width=BASE_WIDTH), 1)
    return g, d


@pytest.fixture(scope="session")
def export_dir(models, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("export") / "export")
    export_lib.export_models(*models, path, step=7, dataset="fashion_mnist",
                             preprocess="crop_resize", checkpoint="ckpt-7")
    return path


@pytest.fixture(scope="session")
def inputs(models):
    rng = np.random.default_rng(5)
    z = rng.normal(size=(5, Z_DIM)).astype(np.float32)
    images = models[0](z, training=False).numpy()  # generated images: in [-1, 1]
    return {"z": z, "images": images}


@pytest.fixture(scope="session")
def fresh(export_dir, inputs, tmp_path_factory):
    """Outputs of every exported artefact, computed by a process without dcgan_keras."""
    tmp = tmp_path_factory.mktemp("fresh")
    np.savez(tmp / "inputs.npz", **inputs)
    out = str(tmp / "outputs.npz")
    proc = subprocess.run([sys.executable, "-c", FRESH_LOADER, export_dir,
                           str(tmp / "inputs.npz"), out],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out + ".json") as f:
        report = json.load(f)
    return dict(np.load(out)), report["errors"], report["modules"]


@pytest.fixture(scope="session")
def tiny_workdir(tmp_path_factory):
    """A training workdir after 2 steps on tiny fake Fashion-MNIST (16x16, widths 8)."""
    from dcgan_keras.config import TrainConfig
    from dcgan_keras.training import train_lib
    root = tmp_path_factory.mktemp("run")
    config = TrainConfig(dataset="fashion_mnist", data_dir=make_idx_dataset(str(root / "data")),
                         image_size=16, channels=1, base_width=8, z_dim=8, batch_size=16,
                         max_steps=2, allow_download=False, num_sample_images=4, log_every=1)
    workdir = str(root / "workdir")
    train_lib.train_and_evaluate(config, workdir)
    return workdir
