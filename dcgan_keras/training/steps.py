"""The count every callback of a run works in: the model's own step (`DCGAN.step`).

`DCGAN.step` is part of every checkpoint, while `fit`'s epoch and batch indices restart
at every `fit` call: counting in the model's step, a resumed run (or `fit` called again)
goes on numbering samples, scalars and checkpoints where it stopped. Given
`steps_per_epoch` (the data's epoch), epoch-end work is named by the data epoch
`step // steps_per_epoch`; without it, by `fit`'s epoch.
"""
import keras


def crossed(before, after, every):
    """Whether a multiple of `every` (> 0) lies in (before, after]."""
    return every > 0 and after // every > before // every


def model_step(model):
    """The model's global training step (`DCGAN.step`) as a Python int."""
    return int(model.step.numpy())


class StepCallback(keras.callbacks.Callback):
    """Shared: the global step, and the name of an epoch end (data epoch or fit's)."""

    def __init__(self, steps_per_epoch=None):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch

    def epoch_end_name(self, fit_epoch):
        """'epoch_0003' at a data-epoch end (or fit's epoch 3), else 'step_00001234'."""
        step = model_step(self.model)
        if self.steps_per_epoch is None:
            return f"epoch_{fit_epoch + 1:04d}"
        if step % self.steps_per_epoch == 0:
            return f"epoch_{step // self.steps_per_epoch:04d}"
        return f"step_{step:08d}"
