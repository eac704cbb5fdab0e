"""Picks mixed precision and XLA for the hardware at hand (the `auto` flag values)."""
import dataclasses

import tensorflow as tf

from dcgan_keras.utils.cpu import cpu_flags


@dataclasses.dataclass
class Choice:
    mixed_precision: str  # "none", "bfloat16" or "float16"
    jit_compile: bool
    reason: str


def resolve(mixed_precision="auto", jit_compile="auto"):
    """Turns "auto" into a concrete setting.

    GPUs: float16 with loss scaling and XLA. CPUs with AMX or AVX512-BF16: bfloat16, no
    XLA. Other CPUs: float32, no XLA. (Measured on a 2-core AMX Xeon with TF 2.21, 32x32
    batch 128: XLA ran the DCGAN step at under half the speed of the plain graph, whose
    convolutions go to oneDNN.)
    """
    gpus = tf.config.list_physical_devices("GPU")
    flags = cpu_flags()
    if gpus:
        auto_mp, reason = "float16", f"{len(gpus)} GPU(s)"
    elif flags & {"amx_bf16", "avx512_bf16"}:
        auto_mp, reason = "bfloat16", "CPU with " + "/".join(sorted(flags & {"amx_bf16",
                                                                             "avx512_bf16"}))
    else:
        auto_mp, reason = "none", "CPU without bfloat16 units"
    mp = auto_mp if mixed_precision == "auto" else mixed_precision
    jit = bool(gpus) if jit_compile == "auto" else jit_compile in (True, "true")
    return Choice(mp, jit, reason)
