"""Every Keras callback of a DCGAN run, in one place for `fit`: samples, EMA, checkpoints,
FID/KID with the best checkpoint, TensorBoard scalars and a progress line, the NaN guard
and the SIGTERM/SIGINT handler.

Each works on its own with `fit`:

    gan.fit(images, epochs=5, callbacks=[
        callbacks.EMAGenerator(0.999),
        callbacks.SampleGrid("run/samples", summary_writer="run"),
        callbacks.Checkpoint("run/checkpoints", batch_size=128),
        callbacks.TrainLogger(batch_size=128, summary_writer="run")])

They live in `monitoring` (what a run shows) and `reliability` (what keeps it safe), and
count in the model's own step, not in `fit`'s epochs and batches (see `steps`).
"""
from dcgan_keras.training.monitoring import EMAGenerator, SampleGrid, SampleQuality, TrainLogger
from dcgan_keras.training.reliability import (Checkpoint, GracefulStop, NonFiniteError,
                                              NonFiniteGuard)
from dcgan_keras.training.steps import model_step

__all__ = ["Checkpoint", "EMAGenerator", "GracefulStop", "NonFiniteError", "NonFiniteGuard",
           "SampleGrid", "SampleQuality", "TrainLogger", "model_step"]
