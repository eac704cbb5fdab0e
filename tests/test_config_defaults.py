"""config.py owns its defaults as literals; those it shares with a model must stay equal
to the model's own, and config must not reach into the trainers for them."""
import ast
import inspect
import os
import re

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


def test_the_recipe_defaults_are_the_papers():
    """The defaults docs/design.md#the-papers-recipe lists, as the paper states them
    (sections 3-4, figure 1); a change of default is a change of that table."""
    assert (CONFIG.batch_size, CONFIG.z_dim, CONFIG.z_distribution) == (128, 100, "uniform")
    assert (CONFIG.learning_rate, CONFIG.beta1) == (2e-4, 0.5)
    assert (CONFIG.image_size, CONFIG.channels, CONFIG.base_width) == (64, 3, 128)
    assert (CONFIG.preprocess, CONFIG.generator_loss) == ("crop_resize", "nonsaturating")
    assert CONFIG.trainer == "dcgan"


def test_the_recipe_table_names_tests_that_exist():
    """Every test the recipe table cites exists: `file.py::test` (a bare file name is found
    under tests/; a bare `::test` is in the file named before it)."""
    text = open(os.path.join(REPO, "docs", "design.md")).read()
    table = text[text.index("## The paper's recipe"):text.index("## One training loop")]
    by_name = {name: os.path.join(root, name) for root, _, names in os.walk(
        os.path.join(REPO, "tests")) for name in names if name.endswith(".py")}
    cited, path = 0, None
    for file_ref, test in re.findall(r"`(?:tests/)?(?:[\w/]*/)?(test_\w+\.py)?::(\w+)`", table):
        path = by_name[file_ref] if file_ref else path
        assert f"def {test}(" in open(path).read(), (path, test)
        cited += 1
    assert cited >= 15
