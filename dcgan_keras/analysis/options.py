"""The options of each `analyze` verb: one dataclass per verb, and which flags a verb takes.

Every verb takes the networks' source (`SOURCE`: a workdir or an export) and the fields of
its dataclass; the dataclasses' defaults are the binary's flag defaults (a name that two
verbs share has one default). The binary refuses a flag that the user set and the verb
does not take (`refusal`), rather than ignore it:

    analyze walk --workdir=W --out_dir=O --layer=block1_relu
    error: analyze walk does not take --layer (it takes --num_walks, --steps, ...)
"""
import dataclasses
from typing import Optional, Sequence

# Where the networks come from (workdir.load_networks); every verb takes these.
SOURCE = ("workdir", "export_dir", "checkpoint", "generator_weights")


@dataclasses.dataclass(frozen=True)
class Common:
    """What every verb takes besides the networks: where its outputs go and its seed."""
    out_dir: Optional[str] = None
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Walk(Common):
    sheet: Optional[str] = None
    num_walks: int = 8
    steps: int = 10
    modes: Sequence[str] = ("linear", "spherical")
    compare_untrained: bool = True


@dataclasses.dataclass(frozen=True)
class Arithmetic(Common):
    sheet: Optional[str] = None
    groups: Optional[str] = None
    z_files: Optional[Sequence[str]] = None
    scales: Sequence[str] = ("-1", "-0.5", "0", "0.5", "1", "1.5", "2")
    classifier: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class GuidedBackprop(Common):
    layer: Optional[str] = None
    units: Sequence[str] = ("0", "1", "2", "3", "4", "5")
    top_k: int = 6
    num_images: int = 2000
    dataset: Optional[str] = None
    data_dir: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Forget(Common):
    layer: Optional[str] = None
    sheet: Optional[str] = None
    boxes: Optional[str] = None
    concept: Optional[str] = None
    num_annotated: int = 150
    num_new: int = 64
    max_maps: int = 0


@dataclasses.dataclass(frozen=True)
class Neighbors(Common):
    sheet: Optional[str] = None
    num_samples: int = 16
    k: int = 5
    max_train: int = 0
    dataset: Optional[str] = None
    data_dir: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Dissect(Common):
    layers: Optional[Sequence[str]] = None
    segmenter: str = "shapes"
    threshold: str = "iqr"
    quantile: float = 0.005
    num_dissect: int = 1000
    num_units: int = 20
    unit_set: str = "iou"
    ace_epochs: int = 5
    num_intervene: int = 500
    insert_locations: int = 8
    concept: Optional[str] = None
    ignore_concepts: Sequence[str] = ("background",)
    top_k: int = 6


@dataclasses.dataclass(frozen=True)
class Paint(Common):
    layer: Optional[str] = None
    layers: Optional[Sequence[str]] = None
    segmenter: str = "shapes"
    threshold: str = "iqr"
    quantile: float = 0.005
    num_dissect: int = 1000
    num_units: int = 20
    unit_set: str = "iou"
    ignore_concepts: Sequence[str] = ("background",)
    top_k: int = 6
    dissection: Optional[str] = None
    host: str = "127.0.0.1"
    port: int = 8000


@dataclasses.dataclass(frozen=True)
class Invert(Common):
    images: Optional[str] = None
    max_images: int = 0
    starts: int = 4
    inversion_steps: int = 300
    learning_rate: float = 0.05
    feature_weight: float = 1.0


# verb -> its options, in the order the binary's docstring shows the verbs.
VERBS = {"walk": Walk, "arithmetic": Arithmetic, "guided_backprop": GuidedBackprop,
         "forget": Forget, "neighbors": Neighbors, "dissect": Dissect, "paint": Paint,
         "invert": Invert}


def _fields(options_class):
    return tuple(f.name for f in dataclasses.fields(options_class))


def check_verb(verb):
    """Raises ValueError unless `verb` is a verb."""
    if verb not in VERBS:
        raise ValueError(f"unknown verb {verb!r}; choose one of {', '.join(VERBS)}")


def taken(verb):
    """The option (= flag) names that `verb` takes: the networks' source, then its own."""
    check_verb(verb)
    return SOURCE + _fields(VERBS[verb])


def all_options():
    """Every option name of some verb (the binary's flags)."""
    return tuple(dict.fromkeys(name for verb in VERBS for name in taken(verb)))


def defaults():
    """{option name: default} over every verb's dataclass (one default per name)."""
    found = {}
    for options_class in VERBS.values():
        for field in dataclasses.fields(options_class):
            found.setdefault(field.name, field.default)
    return found


def for_verb(verb, values):
    """The verb's options dataclass from a mapping of option values.

    Names of other verbs' options are left out (the binary has them all, and refuses the
    ones a user set: `refusal`); a name that no verb takes is a TypeError.
    """
    check_verb(verb)
    unknown = sorted(set(values) - set(all_options()))
    if unknown:
        raise TypeError(f"no analyze verb takes the options {unknown}")
    own = set(_fields(VERBS[verb]))
    return VERBS[verb](**{k: v for k, v in values.items() if k in own})


def refusal(verb, names):
    """The one-line error for options `names` (flags the user set) that `verb` does not
    take, or None when it takes them all."""
    refused = [name for name in names if name not in taken(verb)]
    if not refused:
        return None
    own = [n for n in _fields(VERBS[verb]) if n not in _fields(Common)]
    common = list(SOURCE) + list(_fields(Common))
    return (f"analyze {verb} does not take {', '.join('--' + n for n in refused)} (it takes "
            f"{', '.join('--' + n for n in own)}; and, as every verb, "
            f"{', '.join('--' + n for n in common)})")


# (verbs, option, when it would be ignored (given every option's value), why): an option
# the user set that the run would ignore is refused, as `refusal` refuses another verb's.
_IGNORED = (
    (("dissect", "paint"), "quantile", lambda v: v["threshold"] != "quantile",
     "it is the --threshold=quantile rule's fraction, and --threshold is not quantile"),
    (("dissect",), "ace_epochs", lambda v: v["unit_set"] != "ace",
     "it sets the ACE optimisation of --unit_set=ace, and --unit_set is not ace"),
    (("dissect",), "insert_locations", lambda v: v["num_intervene"] == 0,
     "insertion runs on the --num_intervene samples, and --num_intervene=0"),
) + tuple(
    (("paint",), name, lambda v: bool(v["dissection"]),
     "--dissection names a finished dissection, whose own settings are used")
    for name in ("layers", "threshold", "quantile", "num_dissect", "ignore_concepts",
                 "top_k"))


def ignored(verb, names, values):
    """The one-line error for an option the user set (`names`) that this run would ignore
    because of another option's value (`values`: every option's value), or None."""
    for verbs, name, when, why in _IGNORED:
        if verb in verbs and name in names and when(values):
            return f"analyze {verb} would ignore --{name}: {why}; leave it out"
    return None
