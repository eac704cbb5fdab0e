"""Each analyze verb's options: which flags a verb takes, the one-line refusal of the others,
one default per name, and the documented commands give each verb only its own flags."""
import dataclasses
import os
import sys

import pytest

from testutil import REPO

from dcgan_keras.analysis import analyze_lib, options

sys.path.insert(0, os.path.join(REPO, "tools"))
import docs_commands  # noqa: E402

NETWORKS = ["workdir", "export_dir", "checkpoint", "generator_weights"]
COMMON = ["out_dir", "seed"]
# Written out by hand from each run_<verb> of analyze_lib (what it reads), not from options.
EXPECTED = {
    "walk": ["sheet", "num_walks", "steps", "modes", "compare_untrained"],
    "arithmetic": ["sheet", "groups", "z_files", "scales", "classifier"],
    "guided_backprop": ["layer", "units", "top_k", "num_images", "dataset", "data_dir"],
    "forget": ["layer", "sheet", "boxes", "concept", "num_annotated", "num_new", "max_maps"],
    "neighbors": ["sheet", "num_samples", "k", "max_train", "dataset", "data_dir"],
    "dissect": ["layers", "segmenter", "threshold", "quantile", "num_dissect", "num_units",
                "unit_set", "ace_epochs", "num_intervene", "insert_locations", "concept",
                "ignore_concepts", "top_k"],
    "paint": ["layer", "layers", "segmenter", "threshold", "quantile", "num_dissect",
              "num_units", "unit_set", "ignore_concepts", "top_k", "dissection", "host",
              "port"],
    "invert": ["images", "max_images", "starts", "inversion_steps", "learning_rate",
               "feature_weight"],
}


def test_each_verb_takes_its_own_flags():
    assert list(options.VERBS) == list(EXPECTED) == list(analyze_lib.VERBS)
    for verb, own in EXPECTED.items():
        assert list(options.taken(verb)) == NETWORKS + COMMON + own, verb
    assert len(options.all_options()) == 49  # the binary's flags
    assert set(options.all_options()) == {n for own in EXPECTED.values() for n in own} | set(
        NETWORKS + COMMON)


def test_a_name_has_one_default_in_every_verb():
    seen = {}
    for verb, options_class in options.VERBS.items():
        for field in dataclasses.fields(options_class):
            seen.setdefault(field.name, set()).add(repr(field.default))
    assert {name: d for name, d in seen.items() if len(d) > 1} == {}
    defaults = options.defaults()
    assert (defaults["top_k"], defaults["num_units"], defaults["port"]) == (6, 20, 8000)
    assert defaults["modes"] == ("linear", "spherical") and defaults["layer"] is None


def test_the_refusal_names_the_flags_and_what_the_verb_takes():
    line = options.refusal("walk", ["workdir", "out_dir", "layer"])
    assert line == ("analyze walk does not take --layer (it takes --sheet, --num_walks, "
                    "--steps, --modes, --compare_untrained; and, as every verb, --workdir, "
                    "--export_dir, --checkpoint, --generator_weights, --out_dir, --seed)")
    assert "\n" not in line
    assert options.refusal("neighbors", ["port", "sheet", "layers"]).startswith(
        "analyze neighbors does not take --port, --layers (it takes --sheet, ")
    for verb, own in EXPECTED.items():
        assert options.refusal(verb, NETWORKS + COMMON + own) is None
    assert options.refusal("paint", ["layer", "out_dir", "dissection"]) is None
    assert options.refusal("dissect", ["dissection"]).startswith(
        "analyze dissect does not take --dissection")


def test_options_for_a_verb():
    walk = options.for_verb("walk", {"out_dir": "o", "num_walks": 3, "layer": "x",
                                     "port": 1})  # other verbs' options: left out
    assert walk == options.Walk(out_dir="o", num_walks=3)
    assert (walk.steps, walk.seed, walk.compare_untrained) == (10, 0, True)
    with pytest.raises(TypeError, match=r"no analyze verb takes the options \['num_walk'\]"):
        options.for_verb("walk", {"num_walk": 3})
    with pytest.raises(ValueError, match="unknown verb 'stroll'; choose one of walk, "):
        options.for_verb("stroll", {})
    with pytest.raises(ValueError, match="unknown verb 'stroll'"):
        analyze_lib.run("stroll", "out", workdir="w")


def test_documented_analyze_commands_give_each_verb_its_own_flags():
    commands = [c for c in docs_commands.commands() if c.target == "analyze"]
    assert {c.args[0] for c in commands} == set(options.VERBS)
    for c in commands:
        names = [a[2:].split("=")[0] for a in c.args[1:] if a.startswith("--")]
        assert options.refusal(c.args[0], names) is None, f"{c.path}:{c.line}: {c.text}"


def test_the_binary_refuses_a_flag_it_was_given_for_another_verb(capsys):
    from dcgan_keras.binaries import common
    args = ["--workdir=/no/such/run", "--out_dir=/tmp/out", "--layer=no_such_layer",
            "--port=8000"]
    with common.binary_flags("analyze", args) as analyze:
        assert analyze.given_flags() == ["layer", "out_dir", "port", "workdir"]
        assert sorted(common.binary_flag_names()) == sorted(options.all_options())
        for name, default in options.defaults().items():  # the flags' defaults are theirs
            expected = list(default) if isinstance(default, tuple) else default
            assert analyze.FLAGS[name].default == expected, name
        with pytest.raises(SystemExit) as exit_:
            analyze.main(["analyze", "walk"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "error: analyze walk does not take --layer, --port (it takes --sheet, --num_walks, "
        "--steps, --modes, --compare_untrained; and, as every verb, --workdir, --export_dir, "
        "--checkpoint, --generator_weights, --out_dir, --seed)\n")


def test_an_option_the_run_would_ignore_is_refused():
    values = options.defaults()
    assert options.ignored("dissect", ["quantile"], values) == (
        "analyze dissect would ignore --quantile: it is the --threshold=quantile rule's "
        "fraction, and --threshold is not quantile; leave it out")
    assert options.ignored("dissect", ["quantile"], dict(values, threshold="quantile")) is None
    assert options.ignored("paint", ["quantile"], values).startswith(
        "analyze paint would ignore --quantile")
    assert "--unit_set is not ace" in options.ignored("dissect", ["ace_epochs"], values)
    assert options.ignored("dissect", ["ace_epochs"], dict(values, unit_set="ace")) is None
    assert options.ignored("dissect", ["insert_locations"], values) is None
    assert "--num_intervene=0" in options.ignored("dissect", ["insert_locations"],
                                                  dict(values, num_intervene=0))
    finished = dict(values, dissection="/some/dissection")
    for name in ("layers", "threshold", "num_dissect", "ignore_concepts", "top_k"):
        assert options.ignored("paint", [name], values) is None
        assert options.ignored("paint", [name], finished) == (
            f"analyze paint would ignore --{name}: --dissection names a finished dissection, "
            "whose own settings are used; leave it out")
    # What paint takes from the finished dissection's user is still taken.
    assert options.ignored("paint", ["num_units", "unit_set", "layer"], finished) is None


def test_the_binary_refuses_an_option_it_would_ignore(capsys):
    from dcgan_keras.binaries import common
    args = ["--workdir=/no/such/run", "--out_dir=/tmp/out", "--ace_epochs=3"]
    with common.binary_flags("analyze", args) as analyze:
        with pytest.raises(SystemExit) as exit_:
            analyze.main(["analyze", "dissect"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "error: analyze dissect would ignore --ace_epochs: it sets the ACE optimisation of "
        "--unit_set=ace, and --unit_set is not ace; leave it out\n")
