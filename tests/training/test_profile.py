"""--profile_steps: a TensorBoard profile of the chosen global steps, and only when asked."""
import argparse
import glob
import importlib.util
import os

import numpy as np
import pytest
from testutil import write_idx

from dcgan_keras import config as config_lib
from dcgan_keras.config import TrainConfig
from dcgan_keras.training import train_lib
from testutil import REPO

_spec = importlib.util.spec_from_file_location(
    "step_profile", os.path.join(REPO, "benchmarks", "step_profile.py"))
step_profile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(step_profile)


def _data(root):
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    write_idx(str(data / "train-images-idx3-ubyte.gz"), rng.integers(0, 256, (64, 28, 28)))
    write_idx(str(data / "train-labels-idx1-ubyte.gz"), np.arange(64) % 10)
    return str(data)


def _config(data, **kw):
    return TrainConfig(dataset="fashion_mnist", data_dir=data, image_size=16, channels=1,
                       base_width=8, z_dim=8, batch_size=16, max_steps=4,
                       allow_download=False, num_sample_images=4, mixed_precision="none",
                       **kw)


def test_profile_steps_write_a_profile_tensorboard_opens(tmp_path):
    data = _data(tmp_path)
    workdir = str(tmp_path / "run")
    result = train_lib.train_and_evaluate(_config(data, profile_steps="2,3"), workdir)
    assert result["step"] == 4
    traces = glob.glob(os.path.join(workdir, "plugins", "profile", "*", "*.xplane.pb"))
    assert len(traces) == 1 and os.path.getsize(traces[0]) > 1000
    # benchmarks/step_profile.py --workdir reads it back into op classes and products.
    summary = step_profile.from_workdir(argparse.Namespace(workdir=workdir, peak_seconds=0.1))
    assert summary["steps"] == [2, 3] and summary["unmatched"] == {}
    assert summary["classes"]["products"] > 0 and summary["classes"]["BatchNorm"] > 0
    layers = {row["layer"] for row in summary["products"]}
    assert {"generator/project", "discriminator/logit"} <= layers, layers
    kinds = {row["kind"] for row in summary["products"]}
    assert kinds == {"forward", "input gradient", "kernel gradient"}
    # Without the flag, none.
    plain = str(tmp_path / "plain")
    train_lib.train_and_evaluate(_config(data), plain)
    assert not os.path.exists(os.path.join(plain, "plugins"))


def test_profile_steps_are_checked():
    assert config_lib.parse_profile_steps("") is None
    assert config_lib.parse_profile_steps("20,25") == (20, 25)
    for bad in ("5", "0,3", "4,2", "a,b", "1,2,3"):
        with pytest.raises(ValueError, match="profile_steps must be 'A,B' with 1 <= A <= B"):
            config_lib.parse_profile_steps(bad)
