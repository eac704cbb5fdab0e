"""Datasets and the paper's preprocessing."""
from dcgan_keras.data.datasets import (DATASET_NAMES, MissingDataError, Source, array_source,
                                       eval_dataset, get_source, load_numpy, train_dataset)
from dcgan_keras.data.preprocessing import preprocess, to_uint8

__all__ = ["DATASET_NAMES", "MissingDataError", "Source", "array_source", "eval_dataset",
           "get_source", "load_numpy", "preprocess", "to_uint8", "train_dataset"]
