"""Datasets prepared by tensorflow-datasets (CelebA, ImageNet 32/64, CIFAR-10, SVHN, ...).

Records are the encoded images in tfds' prepared order (decoded only after ordering and
skipping); they stream (no random access), see `order`.
"""
import tensorflow as tf

from dcgan_keras.data import preprocessing
from dcgan_keras.data.errors import missing_data
from dcgan_keras.data.source import Source

# name -> (tensorflow-datasets name, name of its test split, label feature or None)
# (LSUN is read from its LMDB files: tfds' lsun builder needs tensorflow-io, which has no
# build for our TensorFlow; see `lsun`.)
TFDS_DATASETS = {
    "celeb_a": ("celeb_a", "test", None),
    "imagenet32": ("imagenet_resized/32x32", "validation", "label"),
    "imagenet64": ("imagenet_resized/64x64", "validation", "label"),
    "cifar10": ("cifar10", "test", "label"),
    "svhn": ("svhn_cropped", "test", "label"),
    "mnist": ("mnist", "test", "label"),
    "fashion_mnist": ("fashion_mnist", "test", "label"),
}
MAX_BYTES_SHUFFLE_BUFFER = 10_000  # encoded images held for shuffling tfds streams


def how_to_prepare(name):
    """How to provide tfds dataset `name` on a machine without it (for MissingDataError)."""
    return (f"prepare it with tensorflow-datasets on a machine with internet "
            f"(`tfds build {TFDS_DATASETS[name][0]}` or run once with downloads "
            f"allowed) and pass --data_dir=<its tensorflow_datasets dir>")


def tfds_source(name, split, data_dir=None, allow_download=True):
    """A tensorflow-datasets dataset as encoded-image records (decoded after shuffling)."""
    # Imported here, not at the top: importing tensorflow_datasets defines an absl flag
    # (--tfds_debug_list_dir) in every binary and costs start-up time; only these
    # datasets need it.
    import tensorflow_datasets as tfds  # noqa: PLC0415
    tfds_name, test_split, label_key = TFDS_DATASETS[name]
    tfds_split = "train" if split == "train" else test_split
    try:
        ds, info = tfds.load(tfds_name, split=tfds_split, data_dir=data_dir, with_info=True,
                             shuffle_files=False, download=allow_download,
                             decoders={"image": tfds.decode.SkipDecoding()})
    except Exception as e:  # DatasetNotFoundError, download errors, ...
        raise missing_data(name, split, f"tensorflow-datasets: {type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''}",
                           [how_to_prepare(name)]) from e
    split_info = info.splits[tfds_split] if tfds_split in info.splits else None
    num_examples = split_info.num_examples if split_info else int(ds.reduce(0, lambda c, _: c + 1))
    num_classes = info.features[label_key].num_classes if label_key else None

    def records():
        return ds.map(lambda ex: (ex["image"],
                                  tf.cast(ex[label_key], tf.int64) if label_key
                                  else tf.constant(-1, tf.int64)))

    return Source(name=name, split=split, num_examples=num_examples, records=records,
                  load=lambda encoded: preprocessing.decode(encoded, 3),
                  load_at_least=lambda encoded, side: preprocessing.decode(encoded, 3, side),
                  num_classes=num_classes, max_shuffle_buffer=MAX_BYTES_SHUFFLE_BUFFER)
