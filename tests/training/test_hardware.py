"""The `auto` choices of mixed precision and XLA, and what a run logs of them."""
import logging

import tensorflow as tf

from dcgan_keras.config import TrainConfig
from dcgan_keras.models import native_ops
from dcgan_keras.training import hardware, train_lib
from testutil import make_idx_dataset


def _patch(monkeypatch, gpus, flags):
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: ["gpu"] * gpus if kind == "GPU" else [])
    monkeypatch.setattr(hardware, "cpu_flags", lambda: set(flags))


def test_auto_on_gpu_is_float16_with_xla(monkeypatch):
    _patch(monkeypatch, 2, [])
    choice = hardware.resolve("auto", "auto")
    assert (choice.mixed_precision, choice.jit_compile) == ("float16", True)
    assert "2 GPU" in choice.reason


def test_auto_on_bf16_cpu_is_bfloat16_without_xla(monkeypatch):
    _patch(monkeypatch, 0, ["avx512f", "amx_bf16"])
    assert (hardware.resolve("auto", "auto").mixed_precision,
            hardware.resolve("auto", "auto").jit_compile) == ("bfloat16", False)
    _patch(monkeypatch, 0, ["avx2"])
    assert hardware.resolve("auto", "auto").mixed_precision == "none"


def test_explicit_values_win(monkeypatch):
    _patch(monkeypatch, 1, [])
    choice = hardware.resolve("none", "false")
    assert (choice.mixed_precision, choice.jit_compile) == ("none", False)
    assert hardware.resolve("bfloat16", "true").jit_compile is True


def test_a_bfloat16_run_logs_whether_the_fused_batch_norm_op_runs(tmp_path, caplog):
    data = make_idx_dataset(str(tmp_path / "data"))
    config = TrainConfig(dataset="fashion_mnist", data_dir=data, image_size=16, channels=1,
                         base_width=4, z_dim=8, batch_size=16, max_steps=1,
                         mixed_precision="bfloat16", jit_compile="false", allow_download=False)
    # absl's logger: an earlier test in the same worker may have set its level to WARNING
    with caplog.at_level(logging.INFO, logger="absl"):
        train_lib.train_and_evaluate(config, str(tmp_path / "run"))
    lines = [r.getMessage() for r in caplog.records
             if r.getMessage().startswith("native bfloat16 ops")]
    state = native_ops.error() or "on (models/native_ops.py)"
    assert lines == [f"native bfloat16 ops (batch norm + activation, im2col, col2im, LeakyReLU "
                     f"gradient, kernel casts): {state}"]
