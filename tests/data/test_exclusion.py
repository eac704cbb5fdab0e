"""--exclude_list: exactly the listed records leave the training stream."""
import numpy as np
import pytest

from testutil import encode_image, make_lsun_lmdb, smooth_image
from dcgan_keras.data import datasets, exclusion, lsun, order, pipeline, source as source_lib


def test_exclude_list_removes_exactly_the_listed_records(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for i in range(10):
        (root / f"{i}.png").write_bytes(encode_image(smooth_image(20, 20, i), "PNG"))
    listed = tmp_path / "exclude.txt"
    listed.write_text("# from dedup\n3.png\n\n7.png\nnot/there.png\n")
    assert exclusion.read_list(str(listed)) == ["3.png", "7.png", "not/there.png"]
    full = datasets.get_source("folder", "train", str(root))
    kept = datasets.get_source("folder", "train", str(root), exclude_list=str(listed))
    assert kept.num_examples == 8 and kept.ids() == [i for i in full.ids()
                                                      if i not in ("3.png", "7.png")]
    # One epoch of the training stream: every kept record once, no excluded one.
    images, _ = pipeline.load_numpy(kept, 20, 3, preprocess_mode="pad")
    everything, _ = pipeline.load_numpy(full, 20, 3, preprocess_mode="pad")
    np.testing.assert_array_equal(images, np.delete(everything, [3, 7], axis=0))
    epoch = [r.decode() for r, _ in order.record_stream(kept, 4).take(8)
             .as_numpy_iterator()]
    assert sorted(epoch) == sorted(str(root / i) for i in kept.ids())


def test_exclude_list_on_lmdb_keys_and_idx_indices(tmp_path, idx_dir):
    root = tmp_path / "lsun"
    _, keys, _ = make_lsun_lmdb(str(root), num=8)
    listed = tmp_path / "keys.txt"
    listed.write_text("\n".join(keys[2:5]) + "\n")
    kept = datasets.get_source("lsun", "train", str(root), exclude_list=str(listed))
    assert kept.ids() == keys[:2] + keys[5:]
    epoch = [int(r) for r, _ in order.record_stream(kept, 1).take(5)
             .as_numpy_iterator()]
    full = lsun.lsun_source(str(root))
    got = sorted(full.ids()[i] for i in epoch)  # records stay indices into the full table
    assert got == sorted(keys[:2] + keys[5:])
    (tmp_path / "idx.txt").write_text("0\n63\n")
    fmnist = datasets.get_source("fashion_mnist", "train", idx_dir, allow_download=False,
                                 exclude_list=str(tmp_path / "idx.txt"))
    assert fmnist.num_examples == 62 and fmnist.ids()[0] == "1"
    lsun.close_all()


def test_bad_exclusion_lists(tmp_path, idx_dir):
    (tmp_path / "unknown.txt").write_text("nope.png\nalso_nope\n")
    kw = dict(allow_download=False)
    with pytest.raises(ValueError, match="names no record of dataset 'fashion_mnist'"):
        datasets.get_source("fashion_mnist", "train", idx_dir,
                            exclude_list=str(tmp_path / "unknown.txt"), **kw)
    with pytest.raises(FileNotFoundError, match="no such file"):
        datasets.get_source("fashion_mnist", "train", idx_dir,
                            exclude_list=str(tmp_path / "missing.txt"), **kw)
    (tmp_path / "all.txt").write_text("\n".join(str(i) for i in range(64)))
    with pytest.raises(ValueError, match="excludes all 64 records"):
        datasets.get_source("fashion_mnist", "train", idx_dir,
                            exclude_list=str(tmp_path / "all.txt"), **kw)
    source = source_lib.array_source("toy", "train", np.zeros((4, 2, 2, 1), np.uint8))
    streaming = source_lib.Source(name="cifar10", split="train", num_examples=4,
                                  records=source.records, load=source.load)
    with pytest.raises(ValueError, match="has no record ids"):
        exclusion.exclude(streaming, ["1"])


def test_an_empty_exclusion_list_leaves_every_record(tmp_path, idx_dir):
    """De-duplication that finds nothing writes an empty list; training on it must work."""
    (tmp_path / "empty.txt").write_text("# dcgan_keras dedup: no groups\n")
    full = datasets.get_source("fashion_mnist", "train", idx_dir, allow_download=False)
    kept = datasets.get_source("fashion_mnist", "train", idx_dir, allow_download=False,
                               exclude_list=str(tmp_path / "empty.txt"))
    assert kept.num_examples == full.num_examples and kept.ids() == full.ids()


def test_a_data_dir_with_a_tilde_is_the_home_directory(tmp_path, monkeypatch):
    """`--data_dir=~/faces`: the shell leaves a ~ after '=' unexpanded."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "faces").mkdir()
    for i in range(3):
        (tmp_path / "faces" / f"{i}.png").write_bytes(encode_image(smooth_image(20, 20, i), "PNG"))
    assert datasets.get_source("folder", "train", "~/faces").num_examples == 3
