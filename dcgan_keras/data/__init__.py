"""Datasets and the paper's preprocessing.

The names a user needs, from their modules: `get_source` (datasets.py) gives a
`Source` (source.py) by name; `train_dataset`, `eval_dataset` and `load_numpy`
(pipeline.py) read it.
"""
from dcgan_keras.data.datasets import DATASET_NAMES, get_source
from dcgan_keras.data.errors import MissingDataError
from dcgan_keras.data.pipeline import eval_dataset, load_numpy, train_dataset
from dcgan_keras.data.preprocessing import preprocess
from dcgan_keras.data.source import Source, array_source
from dcgan_keras.utils.images import to_uint8

__all__ = ["DATASET_NAMES", "MissingDataError", "Source", "array_source", "eval_dataset",
           "get_source", "load_numpy", "preprocess", "to_uint8", "train_dataset"]
