"""Where the paper's Adam takes its fused update, and that the choice is kept by copies.
(Its maths against references: tests/models/test_dcgan.py.)"""
import keras
import numpy as np
import tensorflow as tf

from dcgan_keras.config import TrainConfig
from dcgan_keras.models import adam
from dcgan_keras.training import train_lib


def test_the_fused_update_applies_to_float32_variables_outside_a_strategy():
    var = keras.Variable(np.zeros(3, np.float32))
    assert adam.Adam().uses_fused_update(var.value)
    assert not adam.Adam(fused=False).uses_fused_update(var.value)
    assert not adam.Adam(amsgrad=True).uses_fused_update(var.value)
    assert not adam.Adam().uses_fused_update(tf.Variable(np.zeros(3, np.float16)))
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    with tf.distribute.MirroredStrategy(devices).scope():
        assert not adam.Adam().uses_fused_update(var.value)


def test_fused_is_serialized_and_float16_runs_keep_keras_update():
    opt = adam.Adam(fused=False)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(again) is adam.Adam and again.fused is False
    for precision, fused in (("none", True), ("bfloat16", True), ("float16", False)):
        for opt in train_lib.make_optimizers(TrainConfig(), precision):
            assert getattr(opt, "inner_optimizer", opt).fused is fused, precision
