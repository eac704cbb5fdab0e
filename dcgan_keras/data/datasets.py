"""Every dataset by name: `get_source(name, split)` returns its `Source`.

Each kind of data has its own module, which builds a `source.Source` (records + a
decoder): `folder` (any image tree), `idx` (MNIST, Fashion-MNIST), `tfds_source`
(tensorflow-datasets), `lsun` (LMDB) and `shapes` (procedural scenes; `shapes_random`
with colours independent of kind). What reads a
Source is `pipeline` (tf.data) and `cache` (--cache_images).
"""
import os

from dcgan_keras.data import exclusion, folder, idx, lsun, shapes, tfds_source

# shapes_random: the shapes scenes with every object's colour drawn independently of its
# kind (data/shapes.py), so only the shape tells the kind.
SHAPES = {"shapes": "family", "shapes_random": "random"}
DATASET_NAMES = ("lsun",) + tuple(tfds_source.TFDS_DATASETS) + ("folder",) + tuple(SHAPES)
SPLITS = ("train", "test")


def get_source(name, split="train", data_dir=None, allow_download=True, index_cache=None,
               lsun_category=lsun.DEFAULT_CATEGORY, exclude_list=None):
    """Returns the Source of dataset `name` (one of DATASET_NAMES) and split.

    mnist and fashion_mnist read local IDX files first (see `idx`) and only then try
    a Keras download; lsun reads LMDB files (see `lsun`).

    Args:
        lsun_category: the LSUN scene category (dataset lsun).
        exclude_list: optional path of a text file of record ids (one a line, e.g. from
            python -m dcgan_keras.binaries.dedup); those records are left out.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if data_dir:  # "--data_dir=~/x": the shell leaves a ~ after "=" as it is
        data_dir = os.path.expanduser(data_dir)
    if name == "folder":
        source = folder.folder_source(data_dir, split, index_cache)
    elif name == "lsun":
        source = lsun.lsun_source(data_dir, split, lsun_category, index_cache)
    elif name in SHAPES:  # procedural scenes with exact masks (data/shapes.py)
        source = shapes.source(split, colors=SHAPES[name])
    elif name in idx.IDX_DATASETS:
        source = idx.idx_source(name, split, data_dir, allow_download)
    else:
        source = tfds_source.tfds_source(name, split, data_dir, allow_download)
    if exclude_list:
        source = exclusion.exclude(source, exclusion.read_list(exclude_list), exclude_list)
    return source
