"""The `auto` choices of mixed precision and XLA."""
import tensorflow as tf

from dcgan_keras.training import hardware


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
