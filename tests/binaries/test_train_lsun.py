"""The train binary on LSUN's LMDB layout, with --lsun_category and --exclude_list.

"""
import os

import pytest

from testutil import make_lsun_lmdb, run_binary

TRAIN = "dcgan_keras.binaries.train"



def _flags(workdir, data_dir, **overrides):
    flags = dict(workdir=workdir, dataset="lsun", data_dir=data_dir, image_size=16,
                 channels=3, base_width=4, z_dim=8, batch_size=4, max_steps=3, log_every=1,
                 checkpoint_every=100, num_sample_images=4, allow_download="false",
                 cache_images="false")
    flags.update(overrides)
    return [f"--{k}={v}" for k, v in flags.items()]


@pytest.fixture(scope="module")
def lsun_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("lsun")
    _, keys, _ = make_lsun_lmdb(str(root), num=10, extra={"broken": b"RIFF\x00\x10\x00\x00WEBP"})
    make_lsun_lmdb(str(root), category="church_outdoor", num=6, seed=3)
    return str(root), keys


def test_trains_on_an_lsun_lmdb_and_resumes_from_the_cached_key_list(lsun_dir, tmp_path):
    root, _ = lsun_dir
    workdir = str(tmp_path / "run")
    result = run_binary(TRAIN, *_flags(workdir, root))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lsun: 10 images (1 skipped)" in result.stderr
    assert "trained to step 3" in result.stdout
    assert os.path.exists(os.path.join(workdir, "data_index_keys.npz"))
    again = run_binary(TRAIN, *_flags(workdir, root, max_steps=5))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stderr and "scanned" not in again.stderr


@pytest.mark.parametrize("make,message", [
    ("not_lmdb", "is not an LMDB database"),
    ("empty", "is empty (no entries)"),
    ("nothing", "neither an LMDB directory"),
])
def test_bad_lmdb_input_exits_with_one_clear_line(tmp_path, make, message):
    data = tmp_path / "data"
    if make == "not_lmdb":
        (data / "bedroom_train_lmdb").mkdir(parents=True)
        (data / "bedroom_train_lmdb" / "data.mdb").write_bytes(b"\x01" * 4096)
    elif make == "empty":
        make_lsun_lmdb(str(data), num=0)
    else:
        data.mkdir()
    result = run_binary(TRAIN, *_flags(str(tmp_path / "w"), str(data)))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last


def test_lsun_category_picks_the_category_lmdb(lsun_dir, tmp_path):
    root, _ = lsun_dir
    result = run_binary(TRAIN, *_flags(str(tmp_path / "w"), root,
                                       lsun_category="church_outdoor"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lsun: 6 images (0 skipped)" in result.stderr


def test_exclude_list_removes_exactly_the_listed_records(lsun_dir, tmp_path):
    root, keys = lsun_dir
    listed = tmp_path / "exclude.txt"
    listed.write_text("\n".join(keys[:3]) + "\n")
    result = run_binary(TRAIN, *_flags(str(tmp_path / "w"), root,
                                       exclude_list=str(listed)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--exclude_list: 3 of 10 records left out" in result.stderr
    assert "lsun: 7 images (1 skipped)" in result.stderr
    (tmp_path / "unknown.txt").write_text("no_such_key\n")
    bad = run_binary(TRAIN, *_flags(str(tmp_path / "w2"), root,
                                    exclude_list=str(tmp_path / "unknown.txt")))
    assert bad.returncode == 2
    assert "names no record of dataset 'lsun'" in bad.stderr.strip().splitlines()[-1]
