"""The probe's supervised baseline: a CNN of D's architecture trained on each draw's labels.

Radford et al. 2016, section 5.2 and table 2: with 1,000 SVHN labels, DCGAN features + an
L2-SVM reach 22.48% test error, while "a purely supervised CNN with the same architecture
on the same data", its hyperparameters chosen by "64 hyperparameter random search trials"
on the 10,000 validation images, reaches 28.87%. That is the comparison which shows what
unsupervised pre-training buys. Here, for every draw of the SVM probe (the same labelled
and validation indices):

- the network is D's conv stack (same layers, widths and initialisation: a `Discriminator`
  whose logit is replaced by dropout and a softmax over the classes), trained from scratch
  on exactly the draw's labelled images;
- a random search of `trials` trials samples the learning rate, dropout, weight decay,
  training length and augmentation on/off (SEARCH_SPACE); each trial trains with small
  batches (Adam with decoupled weight decay) and early stopping on the validation
  accuracy, keeping its best epoch's weights;
- the trial with the best validation accuracy (the first among ties) is measured on the
  test set.
"""
import dataclasses
import math
import sys
import time

import keras
import numpy as np

from dcgan_keras.evaluation import svm_probe
from dcgan_keras.models import Discriminator
from dcgan_keras.training import hardware, train_lib

NAME = "supervised_cnn"
DEFAULT_TRIALS = 64  # the paper's
# The random search's space: (low, high) sampled log-uniformly for learning_rate and
# weight_decay, uniformly for dropout, uniformly over the integers for epochs (passes over
# the labelled images, early stopping may end a trial sooner); augment is a coin flip.
SEARCH_SPACE = dict(learning_rate=(1e-4, 3e-3), dropout=(0.0, 0.7),
                    weight_decay=(1e-5, 1e-1), epochs=(10, 40))
PATIENCE = 6  # epochs without a better validation accuracy before a trial stops
SHIFT = 1 / 16  # augmentation: random shifts of up to 1/16 of the side (2 px at 32x32)


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """One trial's settings (see SEARCH_SPACE)."""
    learning_rate: float
    dropout: float
    weight_decay: float
    epochs: int
    augment: bool


@dataclasses.dataclass
class Trial:
    """A trained trial: its settings, its best validation accuracy and that epoch's weights."""
    hyperparameters: Hyperparameters
    val_accuracy: float
    best_epoch: int          # 1-based epoch of the kept weights
    epochs_trained: int      # < hyperparameters.epochs when early stopping ended it
    seconds: float
    weights: list = dataclasses.field(default=None, repr=False)

    def to_json(self):
        return dict(dataclasses.asdict(self.hyperparameters), val_accuracy=self.val_accuracy,
                    best_epoch=self.best_epoch, epochs_trained=self.epochs_trained,
                    seconds=round(self.seconds, 2))


def sample_hyperparameters(rng, space=None):
    """Draws one point of `space` (default SEARCH_SPACE) with the numpy Generator `rng`."""
    space = dict(SEARCH_SPACE, **(space or {}))

    def log_uniform(low, high):
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))

    return Hyperparameters(
        learning_rate=log_uniform(*space["learning_rate"]),
        dropout=float(rng.uniform(*space["dropout"])),
        weight_decay=log_uniform(*space["weight_decay"]),
        epochs=int(rng.integers(space["epochs"][0], space["epochs"][1] + 1)),
        augment=bool(rng.integers(2)))


def build_model(image_size, channels, base_width, num_classes, dropout=0.0, augment=False,
                seed=0):
    """D's architecture with a softmax head: images [B, S, S, C] in [-1, 1] -> [B, classes].

    The conv stack is a `Discriminator`'s (its layers, widths and N(0, 0.02) init) up to
    its `flatten` layer; dropout and a bias-free dense softmax ("probabilities", float32)
    take the logit's place. With `augment`, a RandomTranslation layer (training only)
    shifts the images by up to SHIFT of their side, edges repeated.
    """
    body = Discriminator(image_size=image_size, channels=channels, base_width=base_width,
                         name="discriminator")
    features = keras.Model(body.input, body.get_layer("flatten").output, name="d_body")
    images = keras.Input((image_size, image_size, channels), name="images")
    x = images
    if augment:
        x = keras.layers.RandomTranslation(SHIFT, SHIFT, fill_mode="nearest", seed=seed,
                                           dtype="float32", name="shift")(x)
    x = features(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    probabilities = keras.layers.Dense(
        num_classes, activation="softmax", use_bias=False, dtype="float32",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.02),
        name="probabilities")(x)
    return keras.Model(images, probabilities, name="supervised_cnn")


def train_trial(x_train, y_train, x_val, y_val, hyperparameters, *, image_size, channels,
                base_width, num_classes, seed, batch_size=32, patience=PATIENCE,
                eval_batch_size=500, early_stopping_images=0):
    """Trains one trial from scratch; returns a `Trial` holding its best epoch's weights.

    Early stopping watches the accuracy on the validation images after every epoch (on
    their first `early_stopping_images` when > 0, to save time), and the kept weights are
    then scored on all of them. Every run with the same arguments gives the same result
    (Keras' global seeds are set from `seed` first).
    """
    hp = hyperparameters
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    model = build_model(image_size, channels, base_width, num_classes, hp.dropout,
                        hp.augment, seed)
    optimizer = keras.optimizers.AdamW(learning_rate=hp.learning_rate,
                                       weight_decay=hp.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta"])  # BatchNorm's
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                         patience=patience, restore_best_weights=True)
    watched = slice(0, early_stopping_images or None)
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=hp.epochs,
                        validation_data=(x_val[watched], y_val[watched]),
                        validation_batch_size=eval_batch_size, shuffle=True,
                        callbacks=[stop], verbose=0)
    val = history.history["val_accuracy"]
    best = int(np.argmax(val))  # the epoch EarlyStopping restored (first maximum)
    accuracy = float(val[best])
    if early_stopping_images and early_stopping_images < len(x_val):
        accuracy = accuracy_of(model, x_val, y_val, eval_batch_size)
    return Trial(hp, accuracy, best + 1, len(val), time.perf_counter() - start,
                 model.get_weights())


def accuracy_of(model, images, labels, batch_size=500):
    """Fraction of `images` whose most probable class (a column index) is `labels`."""
    probabilities = model.predict(images, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(probabilities, 1) == labels))


def random_search(hyperparameters, train, log=None):
    """Trains every setting with `train(hp, index) -> Trial`; returns (best index, trials).

    The best trial is the one with the highest validation accuracy, the first among ties.
    Only the best trial's weights are kept (the others' are dropped as the search goes).
    """
    trials, best = [], None
    for index, hp in enumerate(hyperparameters):
        trial = train(hp, index)
        if best is None or trial.val_accuracy > trials[best].val_accuracy:
            if best is not None:
                trials[best].weights = None
            best = index
        else:
            trial.weights = None
        trials.append(trial)
        if log:
            log(index, trial)
    return best, trials


def check_options(trials, early_stopping_images=0):
    """Raises ValueError for a bad trial count or early-stopping subset size."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if early_stopping_images < 0:
        raise ValueError(f"early_stopping_images must be >= 0 (0: all validation images), "
                         f"got {early_stopping_images}")


def run_on_draws(draws, train_images, train_labels, test_images, test_labels, *, base_width,
                 trials=DEFAULT_TRIALS, seed=0, batch_size=32, early_stopping_images=0,
                 eval_batch_size=500, precision="auto", search_space=None, progress=True,
                 train=train_trial):
    """The supervised baseline on the probe's draws; returns a svm_probe.MethodResult.

    Args:
        draws: the probe's `svm_probe.Draw`s (labelled and validation indices).
        train_images, train_labels: the training pool the draws index.
        test_images, test_labels: where the chosen trial of each draw is measured.
        base_width: D's first conv width (the architecture of the probed D).
        trials: random-search trials per draw (64 in the paper).
        seed: base seed; draw d's search draws its settings from (seed, d.seed).
        batch_size: training mini-batch.
        early_stopping_images: > 0: early stopping watches this many of the validation
            images (a random subset) instead of all of them; trials are still ranked
            on all of them.
        eval_batch_size: images per validation/test batch.
        precision: "auto" (bfloat16 on CPUs with bfloat16 units, float16 on GPUs),
            "none", "bfloat16" or "float16": the mixed precision of the trials.
        search_space: ranges that replace SEARCH_SPACE's (e.g. {"epochs": (5, 10)}).
        progress: one line per trial on stderr.
        train: the trial trainer (`train_trial`'s signature); tests pass their own.

    Returns:
        A MethodResult named "supervised_cnn": val_accuracy_grid holds each draw's trial
        validation accuracies, `extra` the trials' settings and the chosen ones.
    """
    check_options(trials, early_stopping_images)
    precision = hardware.resolve(precision).mixed_precision
    classes = np.unique(train_labels)
    image_size, channels = train_images.shape[1], train_images.shape[3]
    arch = dict(image_size=image_size, channels=channels, base_width=base_width,
                num_classes=len(classes))
    result = svm_probe.MethodResult(NAME, 0, [], [], [], [], [])
    result.extra = dict(trials_per_draw=trials, precision=precision, chosen=[], trials=[],
                        search_seconds=[])
    start = time.perf_counter()
    # Every draw's search settings up front (each draw's rng then shuffles its validation
    # images, as before), so that the first trial's time gives the whole search's.
    plans = []
    for draw in draws:
        rng = np.random.default_rng([seed, draw.seed])
        plans.append((rng, [sample_hyperparameters(rng, search_space) for _ in range(trials)]))
    planned_epochs = sum(hp.epochs for _, settings in plans for hp in settings)
    if progress:
        print(f"[{NAME}] {len(draws)} draws x {trials} trials = {len(draws) * trials} CNNs "
              f"to train ({planned_epochs} epochs at most); an estimate of the time follows "
              "the first", file=sys.stderr, flush=True)
    for d, (draw, (rng, settings)) in enumerate(zip(draws, plans)):
        # Only the draw's labelled images (and its validation images, for the search);
        # the validation images in random order, so a prefix is a random subset.
        validation = rng.permutation(draw.validation)
        x_lab, x_val = train_images[draw.labelled], train_images[validation]
        y_lab = np.searchsorted(classes, train_labels[draw.labelled])
        y_val = np.searchsorted(classes, train_labels[validation])
        t0 = time.perf_counter()

        def run_trial(hp, index, draw=draw):
            with train_lib.dtype_policy(train_lib.POLICIES[precision]):
                return train(x_lab, y_lab, x_val, y_val, hp, seed=draw.seed * 1000 + index,
                             batch_size=batch_size, eval_batch_size=eval_batch_size,
                             early_stopping_images=early_stopping_images, **arch)

        def log(index, trial, d=d):
            if not progress:
                return
            done = d * trials + index + 1
            eta = (time.perf_counter() - start) / done * (len(draws) * trials - done)
            hp = trial.hyperparameters
            if done == 1:
                estimate = time_estimate(trial.seconds, trial.epochs_trained, planned_epochs)
                print(f"[{NAME}] {estimate}", file=sys.stderr, flush=True)
            print(f"[{NAME}] draw {d + 1}/{len(draws)} trial {index + 1}/{trials}: "
                  f"lr={hp.learning_rate:.2g} dropout={hp.dropout:.2f} "
                  f"wd={hp.weight_decay:.2g} epochs={hp.epochs} augment={hp.augment} -> "
                  f"val={trial.val_accuracy:.4f} (best epoch {trial.best_epoch}/"
                  f"{trial.epochs_trained}) {trial.seconds:.0f}s | ETA {eta / 60:.0f} min",
                  file=sys.stderr, flush=True)

        best, done = random_search(settings, run_trial, log)
        with train_lib.dtype_policy(train_lib.POLICIES[precision]):
            model = build_model(**arch)
        model.set_weights(done[best].weights)
        test_accuracy = accuracy_of(model, test_images, np.searchsorted(classes, test_labels),
                                    eval_batch_size)
        result.feature_dim = int(model.get_layer("dropout").input.shape[-1])
        result.test_accuracies.append(test_accuracy)
        result.val_accuracies.append(done[best].val_accuracy)
        result.val_accuracy_grid.append([t.val_accuracy for t in done])
        result.converged.append(True)
        result.extra["chosen"].append(dict(trial=best, **done[best].to_json()))
        result.extra["trials"].append([t.to_json() for t in done])
        result.extra["search_seconds"].append(round(time.perf_counter() - t0, 1))
        if progress:
            print(f"[{NAME}] draw {d + 1}/{len(draws)}: trial {best + 1} chosen, "
                  f"val={done[best].val_accuracy:.4f} test={test_accuracy:.4f}",
                  file=sys.stderr, flush=True)
    result.svm_seconds = time.perf_counter() - start
    return result


def time_estimate(seconds, epochs_trained, planned_epochs):
    """The line that says how long the whole search will take, from its first trial.

    Args:
        seconds: the first trial's time (its set-up, epochs and evaluations).
        epochs_trained: the epochs it trained.
        planned_epochs: the epochs of every trial of every draw, if none stops early.
    Returns:
        e.g. "estimated time: at most 84 min (the first trial: 7.9 s for 12 epochs); ..."
    """
    total = seconds / max(epochs_trained, 1) * planned_epochs
    return (f"estimated time: at most {total / 60:.0f} min (the first trial: {seconds:.1f} s "
            f"for {epochs_trained} epochs; early stopping ends most trials sooner); "
            "--trials, --draws or --baselines without supervised_cnn shorten it")


def describe(result):
    """One line under the probe's table: the search behind the supervised CNN's row."""
    extra = result.extra
    chosen = extra["chosen"]
    return (f"{NAME}: D's architecture + softmax trained on each draw's labelled images; "
            f"random search of {extra['trials_per_draw']} trials per draw on the "
            f"validation images ({extra['precision']} precision), "
            f"{sum(extra['search_seconds']) / 60:.1f} min; chosen per draw: "
            f"lr {_span([c['learning_rate'] for c in chosen])}, "
            f"dropout {_span([c['dropout'] for c in chosen])}, "
            f"wd {_span([c['weight_decay'] for c in chosen])}, "
            f"best epoch {_span([c['best_epoch'] for c in chosen])}, "
            f"augment {sum(c['augment'] for c in chosen)}/{len(chosen)}")


def _span(values):
    return f"{min(values):.2g}" if min(values) == max(values) else \
        f"{min(values):.2g}-{max(values):.2g}"
