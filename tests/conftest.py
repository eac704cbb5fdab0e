"""Shared test set-up: quiet TensorFlow, two logical CPU devices, tiny data helpers."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Split the CPU into two logical devices (before TensorFlow initialises them) so that
# MirroredStrategy tests have two replicas on a machine without GPUs.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # already initialised by another conftest / plugin
    pass

from testutil import make_idx_dataset  # noqa: E402


@pytest.fixture
def idx_dir(tmp_path):
    return make_idx_dataset(str(tmp_path / "fmnist"))


