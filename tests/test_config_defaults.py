"""config.py owns its defaults as literals; those it shares with a model must stay equal
to the model's own, and config must not reach into the trainers for them."""
import ast
import inspect
import os

import pytest

from testutil import REPO
from dcgan_keras import config as config_lib
from dcgan_keras.evolution import egan, mutations
from dcgan_keras.models import adam

CONFIG = config_lib.TrainConfig()
EGAN_DEFAULTS = inspect.signature(egan.EGAN.__init__).parameters


@pytest.mark.parametrize("field, constant, argument", [
    ("egan_parents", egan.PARENTS, "parents"),
    ("egan_d_steps", egan.D_STEPS, "d_steps"),
    ("egan_gamma", egan.GAMMA, "gamma"),
    ("egan_fitness_batch", egan.FITNESS_BATCH, "fitness_batch"),
    ("egan_fd_sign", "minus", "fd_sign"),
])
def test_egan_flag_defaults_are_the_models_defaults(field, constant, argument):
    assert getattr(CONFIG, field) == constant == EGAN_DEFAULTS[argument].default


def test_egan_mutations_default_is_the_models_default():
    assert (mutations.parse_mutations(CONFIG.egan_mutations)
            == mutations.DEFAULT_MUTATIONS == EGAN_DEFAULTS["mutations"].default)


def test_adam_defaults_are_the_papers_optimizer():
    opt = adam.default_optimizer()
    assert (CONFIG.learning_rate, CONFIG.beta1, CONFIG.adam_epsilon, CONFIG.adam_epsilon_on) \
        == (pytest.approx(float(opt.learning_rate)), opt.beta_1, opt.epsilon, opt.epsilon_on)
    assert config_lib.ADAM_EPSILON_ON == adam.ADAM_EPSILON_ON


def test_config_imports_no_trainer_and_no_framework_directly():
    """Not the Keras models that play the game (models/dcgan.py, evolution/egan.py), nor
    Keras or TensorFlow themselves: config only names and validates choices."""
    path = os.path.join(REPO, "dcgan_keras", "config.py")
    imported = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            imported |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    assert not imported & {"dcgan_keras.models.dcgan", "dcgan_keras.evolution.egan",
                           "keras", "tensorflow"}
    assert not [name for name in imported if name.startswith(("keras.", "tensorflow."))]
