"""The one configuration object of a training run; written to workdir/config.json.

Defaults are the paper's recipe (sections 3-4): Adam lr 2e-4, beta1 0.5, batch 128, z of
100 dims from U(-1, 1), weights N(0, 0.02), 64x64 RGB, 128 filters at the highest
resolution. docs/design.md#the-papers-recipe lists each with its test.
"""
import dataclasses
import json
import os
import re

from dcgan_keras import losses
from dcgan_keras.data import datasets, preprocessing
from dcgan_keras.evolution import batching as egan_batching
from dcgan_keras.evolution import mutations as egan_mutations
from dcgan_keras.models import adam, architecture, latent
from dcgan_keras.utils import files

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
MIXED_PRECISION = ("none", "bfloat16", "float16", "auto")
JIT_COMPILE = ("false", "true", "auto")
CACHE_IMAGES = ("false", "true", "auto")
ON_NAN = ("stop", "rollback")
ADAM_EPSILON_ON = adam.ADAM_EPSILON_ON
# Fields that fix what the checkpoints mean; a resumed run must keep them.
ARCHITECTURE_FIELDS = ("dataset", "lsun_category", "image_size", "channels", "z_dim", "base_width",
                       "d_base_width", "preprocess", "generator_loss", "seed",
                       "z_distribution")
Z_DISTRIBUTIONS = latent.Z_DISTRIBUTIONS
TRAINERS = ("dcgan", "egan")
# E-GAN: the population's shape is part of what the checkpoints mean.
EGAN_ARCHITECTURE_FIELDS = ("trainer", "egan_mutations", "egan_parents")


@dataclasses.dataclass
class TrainConfig:
    """Every knob of a run. See the train binary's flags for the meaning of each."""
    dataset: str = "lsun"
    data_dir: str = ""
    lsun_category: str = "bedroom"  # dataset=lsun: the scene category's LMDB
    exclude_list: str = ""  # ids of records to leave out (e.g. from binaries.dedup)
    image_size: int = 64
    channels: int = 3
    preprocess: str = "crop_resize"
    batch_size: int = 128
    epochs: int = 25
    max_steps: int = 0  # 0: epochs decide
    z_dim: int = 100
    z_distribution: str = latent.PAPER  # U(-1, 1); "normal": N(0, 1) (PyTorch's example)
    base_width: int = architecture.PAPER_BASE_WIDTH
    d_base_width: int = 0  # 0: same as base_width
    learning_rate: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    adam_epsilon: float = 1e-8  # the paper's code and PyTorch (Keras' default is 1e-7)
    adam_epsilon_on: str = "v_hat"  # the paper's code and PyTorch; "v": Keras / Torch7
    generator_loss: str = "nonsaturating"
    seed: int = 0
    strategy: str = "default"
    tpu: str = ""
    sync_batchnorm: bool = False
    mixed_precision: str = "auto"
    jit_compile: str = "auto"
    steps_per_execution: int = 1
    deterministic: bool = False
    log_every: int = 50
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    num_sample_images: int = 64
    allow_download: bool = True
    cache_images: str = "auto"  # decode + preprocess the split once, train from memory
    eval_every_epochs: int = 0  # 0: no evaluation during training
    eval_num_samples: int = 5000
    eval_feature_net: str = ""  # "inception" or a domain classifier (train_classifier)
    eval_reference_split: str = "test"
    ema_decay: float = 0.0  # 0: no EMA generator
    on_nan: str = "stop"  # a non-finite loss: "stop", or "rollback" to the last checkpoint
    max_rollbacks: int = 3  # with on_nan=rollback, each halving the learning rate
    trainer: str = "dcgan"  # or "egan": Evolutionary GAN (dcgan_keras.evolution)
    d_steps: int = 1  # dcgan: D updates per G update, each on batch_size / d_steps images
    instance_noise: float = 0.0  # dcgan: sigma of noise on D's inputs, annealed to 0
    instance_noise_steps: int = 0  # the step it reaches 0 (0: the run's last step)
    profile_steps: str = ""  # "A,B": a TensorBoard profile of global steps A..B
    # E-GAN's own defaults (evolution/egan.py; tests/test_config_defaults.py keeps them
    # equal): n_D = 3 and the fitness batch from both author codebases' image runs, mu = 1
    # parent (the paper), gamma from the authors' CIFAR-10 code.
    egan_mutations: str = ",".join(egan_mutations.DEFAULT_MUTATIONS)
    egan_parents: int = 1
    egan_d_steps: int = 3
    egan_gamma: float = 0.004
    egan_fd_sign: str = "minus"  # the paper and both codebases; "plus": a superseded release
    egan_fitness_batch: int = 256

    def validate(self):
        """Raises ValueError naming the bad field, the value and what is expected."""
        if self.dataset not in datasets.DATASET_NAMES:
            raise ValueError(f"dataset must be one of {', '.join(datasets.DATASET_NAMES)}, "
                             f"got {self.dataset!r}")
        if self.dataset == "folder" and not self.data_dir:
            raise ValueError("dataset=folder needs data_dir=<a directory of images>")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.lsun_category):
            raise ValueError(f"lsun_category must be an LSUN category name such as bedroom "
                             f"or church_outdoor, got {self.lsun_category!r}")
        architecture.validate(self.image_size, self.channels, self.z_dim, self.base_width)
        latent.check(self.z_distribution)
        if self.preprocess not in preprocessing.PREPROCESS_MODES:
            raise ValueError(f"preprocess must be one of {preprocessing.PREPROCESS_MODES}, "
                             f"got {self.preprocess!r}")
        if self.generator_loss not in losses.GENERATOR_LOSSES:
            raise ValueError(f"generator_loss must be one of {sorted(losses.GENERATOR_LOSSES)}"
                             f", got {self.generator_loss!r}")
        for name in ("batch_size", "epochs", "log_every", "checkpoint_every",
                     "keep_checkpoints", "steps_per_execution", "num_sample_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_every_epochs and not self.eval_feature_net:
            raise ValueError("eval_every_epochs needs eval_feature_net: 'inception' (with "
                             "local weights) or a classifier from "
                             "python -m dcgan_keras.binaries.train_classifier")
        if self.eval_every_epochs and self.eval_num_samples < 2:
            raise ValueError(f"eval_num_samples must be >= 2, got {self.eval_num_samples}")
        if self.eval_reference_split not in datasets.SPLITS:
            raise ValueError(f"eval_reference_split must be one of {datasets.SPLITS}, got "
                             f"{self.eval_reference_split!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in ("max_steps", "d_base_width", "eval_every_epochs", "max_rollbacks"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("learning_rate", "adam_epsilon"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        choices = {"strategy": STRATEGIES, "mixed_precision": MIXED_PRECISION,
                   "jit_compile": JIT_COMPILE, "cache_images": CACHE_IMAGES,
                   "adam_epsilon_on": ADAM_EPSILON_ON, "on_nan": ON_NAN}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        return self.validate_egan()

    def validate_egan(self):
        """The --trainer and --egan_* checks (ValueError naming the field)."""
        if self.trainer not in TRAINERS:
            raise ValueError(f"trainer must be one of {TRAINERS}, got {self.trainer!r}")
        egan_mutations.parse_mutations(self.egan_mutations)
        for name in ("egan_parents", "egan_d_steps", "egan_fitness_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.egan_gamma >= 0:
            raise ValueError(f"egan_gamma must be >= 0, got {self.egan_gamma}")
        if self.egan_fd_sign not in egan_mutations.FD_SIGNS:
            raise ValueError(f"egan_fd_sign must be one of {sorted(egan_mutations.FD_SIGNS)}, "
                             f"got {self.egan_fd_sign!r}")
        if self.d_steps < 1:
            raise ValueError(f"d_steps must be >= 1, got {self.d_steps}")
        parse_profile_steps(self.profile_steps)
        if not self.instance_noise >= 0 or self.instance_noise_steps < 0:
            raise ValueError(f"instance_noise and instance_noise_steps must be >= 0, got "
                             f"{self.instance_noise} and {self.instance_noise_steps}")
        if self.trainer == "egan" and self.instance_noise:
            raise ValueError("instance_noise is the DCGAN trainer's (--trainer=dcgan)")
        if self.trainer == "egan":
            if self.d_steps != 1:
                raise ValueError(f"d_steps={self.d_steps} is the DCGAN trainer's; an E-GAN "
                                 "generation's D steps are egan_d_steps")
            egan_batching.check_batch_size(self.batch_size, self.egan_d_steps,
                                           self.egan_parents)
        elif self.batch_size % self.d_steps:
            nearby = self.batch_size // self.d_steps * self.d_steps or self.d_steps
            raise ValueError(f"batch_size={self.batch_size} does not split into d_steps="
                             f"{self.d_steps} D steps of equal size; use a multiple of "
                             f"{self.d_steps}, e.g. {nearby}")
        return self

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config fields {unknown}; known: {sorted(known)}")
        return cls(**values)


def parse_profile_steps(text):
    """"A,B" -> (A, B), the first and last global step to profile (1 <= A <= B); "" -> None."""
    if not text:
        return None
    try:
        first, last = (int(v) for v in text.split(","))
    except ValueError:
        first = last = 0
    if not 1 <= first <= last:
        raise ValueError(f"profile_steps must be 'A,B' with 1 <= A <= B (global steps), got "
                         f"{text!r}")
    return first, last


def config_path(workdir):
    return os.path.join(workdir, "config.json")


def load(workdir):
    """The TrainConfig a workdir was trained with (every binary needs only --workdir)."""
    path = config_path(workdir)
    if not files.exists(path):
        raise FileNotFoundError(f"{path} does not exist: {workdir!r} is not a training "
                                "workdir (train one with python -m dcgan_keras.binaries.train)")
    try:
        values = files.read_json(path)
        if not isinstance(values, dict):
            raise ValueError(f"a JSON object was expected, got {type(values).__name__}")
        # a run from before the prior was a choice drew z from N(0, 1): it resumes so
        values.setdefault("z_distribution", latent.LEGACY)
        return TrainConfig.from_dict(values).validate()
    except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path} is corrupt ({str(e).splitlines()[0]}); restore it from a "
                         "copy, or train in a new --workdir") from None


def save(config, workdir):
    """Writes config.json atomically."""
    files.write_bytes(config_path(workdir), config.to_json())


def resume_config(saved, given):
    """The config that resumes a workdir trained with `saved`: its values, with the
    options the user `given` explicitly ({field: value}, e.g. the flags on the command
    line) on top.

    Returns:
        (config, changes): changes is {field: (saved value, new value)} of the given
        options that differ (learning rate, epochs, logging, ...).
    Raises:
        ValueError: a given architecture or data option differs from the workdir's.
    """
    values = dataclasses.asdict(saved)
    unknown = sorted(set(given) - set(values))
    if unknown:
        raise ValueError(f"unknown config fields {unknown}")
    changes = {k: (values[k], v) for k, v in given.items() if values[k] != v}
    config = TrainConfig(**{**values, **given})
    check_resumable(saved, config)
    return config, changes


def check_resumable(saved, config):
    """Raises ValueError if `config` cannot resume checkpoints trained with `saved`."""
    diffs = [f"{name}: workdir has {getattr(saved, name)!r}, flags say {getattr(config, name)!r}"
             for name in ARCHITECTURE_FIELDS + EGAN_ARCHITECTURE_FIELDS
             if getattr(saved, name) != getattr(config, name)]
    if bool(saved.ema_decay) != bool(config.ema_decay):  # the checkpoints hold an EMA G or not
        diffs.append(f"ema_decay: workdir has {saved.ema_decay!r}, flags say "
                     f"{config.ema_decay!r} (an EMA generator is in its checkpoints or not)")
    if diffs:
        raise ValueError("this workdir was trained with a different model or data, so it "
                         "cannot be resumed with these flags (" + "; ".join(diffs) +
                         "). Use the workdir's values or a new --workdir.")
