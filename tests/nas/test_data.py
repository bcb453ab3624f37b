"""Tests for nas.data: image sources, seeded batches, normalization."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    Batch,
    ImageSet,
    load_batch,
    load_images,
    make_batch,
)
from nas.errors import DataError


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    return load_images("digits")


def _reference_normalize(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """Plain-numpy oracle: NHWC uint8 -> normalized NCHW float32."""
    x = images.astype(np.float64) / 255.0
    x = (x - np.asarray(mean)) / np.asarray(std)
    return x.transpose(0, 3, 1, 2).astype(np.float32)


# --- digits -------------------------------------------------------------------------------------


def test_digits_batch_shape_dtype_labels(digits: ImageSet) -> None:
    batch = make_batch(digits, 64)
    assert isinstance(batch, Batch)
    assert batch.images.shape == (64, 3, 32, 32)
    assert batch.images.dtype == torch.float32
    assert batch.labels.dtype == torch.int64
    assert batch.size == 64
    assert torch.isfinite(batch.images).all()
    assert int(batch.labels.min()) >= 0 and int(batch.labels.max()) <= 9
    assert batch.num_classes == 10 and batch.source == "digits" and batch.seed == 0


def test_digits_set_matches_sklearn_and_is_grayscale_rgb(digits: ImageSet) -> None:
    from sklearn.datasets import load_digits

    ref = load_digits()
    assert digits.images.shape == (1797, 32, 32, 3) and digits.images.dtype == np.uint8
    np.testing.assert_array_equal(digits.labels, ref.target)
    # three identical channels; the 0..16 scale reaches the full 0..255 range
    assert (digits.images[..., 0] == digits.images[..., 2]).all()
    assert digits.images.min() == 0 and digits.images.max() == 255
    # bilinear upsampling preserves a constant image region: a blank 8x8 digit border stays 0
    assert (digits.images[:, 0, 0, :] == 0).mean() > 0.9


def test_digits_whole_set_is_standardized(digits: ImageSet) -> None:
    whole = make_batch(digits, len(digits)).images.numpy().astype(np.float64)
    np.testing.assert_allclose(whole.mean(axis=(0, 2, 3)), np.zeros(3), atol=1e-4)
    np.testing.assert_allclose(whole.std(axis=(0, 2, 3)), np.ones(3), atol=1e-4)


def test_seeded_draw_matches_reference_oracle(digits: ImageSet) -> None:
    batch = make_batch(digits, 32, seed=7)
    idx = np.random.default_rng(7).choice(len(digits), size=32, replace=False)
    np.testing.assert_array_equal(batch.labels.numpy(), digits.labels[idx])
    expected = _reference_normalize(digits.images[idx], digits.mean, digits.std)
    np.testing.assert_allclose(batch.images.numpy(), expected, atol=1e-5)


def test_same_seed_same_batch_different_seed_different(digits: ImageSet) -> None:
    a = make_batch(digits, 64, seed=3)
    b = load_batch("digits", 64, seed=3)  # a fresh load: nothing is cached
    c = make_batch(digits, 64, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


def test_full_size_batch_is_a_permutation_without_replacement() -> None:
    noise = load_images("synthetic")  # every noise image is distinct
    batch = make_batch(noise, len(noise), seed=1)
    assert torch.unique(batch.images.reshape(len(noise), -1), dim=0).shape[0] == len(noise)
    assert sorted(batch.labels.tolist()) == sorted(noise.labels.tolist())


# --- balanced -----------------------------------------------------------------------------------


def test_balanced_batch_has_equal_class_counts(digits: ImageSet) -> None:
    batch = make_batch(digits, 50, seed=0, balanced=True)
    counts = np.bincount(batch.labels.numpy(), minlength=10)
    assert counts.tolist() == [5] * 10
    # shuffled, not in class blocks
    assert batch.labels.tolist() != sorted(batch.labels.tolist())


def test_balanced_remainder_is_spread_one_each(digits: ImageSet) -> None:
    counts = np.bincount(make_batch(digits, 57, seed=2, balanced=True).labels.numpy(), minlength=10)
    assert counts.sum() == 57
    assert sorted(counts.tolist()) == [5, 5, 5, 6, 6, 6, 6, 6, 6, 6]
    again = np.bincount(make_batch(digits, 57, seed=2, balanced=True).labels.numpy(), minlength=10)
    assert counts.tolist() == again.tolist()


def test_balanced_with_too_few_images_in_a_class_raises() -> None:
    images = np.zeros((11, 4, 4, 3), dtype=np.uint8)
    labels = np.array([0] * 10 + [1], dtype=np.int64)
    small = ImageSet(images=images, labels=labels, class_names=("a", "b"), name="tiny")
    with pytest.raises(DataError, match=r"'b' has 1, needs 3"):
        make_batch(small, 6, balanced=True)
    with pytest.raises(DataError, match=r"larger than the 11 images"):
        make_batch(small, 12)


# --- official CIFAR-10 pickle layout -------------------------------------------------------------


def _write_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    with path.open("wb") as f:
        pickle.dump({b"batch_label": b"fake", b"data": data, b"labels": labels}, f)


def _fake_cifar(root: Path, rng: np.random.Generator) -> tuple[Path, np.ndarray]:
    """A tiny cifar-10-batches-py: 5 train batches and a test batch of 3 images each."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    test = rng.integers(0, 200, size=(3, 3072), dtype=np.uint8)
    # image 1, blue channel (c=2), row h=3, column w=7 in the CHW-flat row
    test[1, 2 * 1024 + 3 * 32 + 7] = 255
    _write_batch(folder / "test_batch", test, [4, 1, 9])
    for i in range(1, 6):
        train = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
        _write_batch(folder / f"data_batch_{i}", train, [i, i, i])
    names = [f"cls{i}".encode() for i in range(10)]
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, f)
    return folder, test


@pytest.mark.parametrize("as_parent", [False, True], ids=["folder", "parent"])
def test_official_layout_decodes_chw_to_nhwc(tmp_path: Path, as_parent: bool) -> None:
    folder, raw = _fake_cifar(tmp_path, np.random.default_rng(0))
    ims = load_images("cifar10", data_dir=tmp_path if as_parent else folder)
    assert ims.name == "cifar10-test"
    assert ims.images.shape == (3, 32, 32, 3)
    assert ims.labels.tolist() == [4, 1, 9]
    assert ims.class_names == tuple(f"cls{i}" for i in range(10))
    assert ims.images[1, 3, 7, 2] == 255
    assert ims.images[1, 7, 3, 2] == raw[1, 2 * 1024 + 7 * 32 + 3]  # the transposed spot is untouched
    # every pixel: NHWC[n, h, w, c] == flat[n, c*1024 + h*32 + w]
    n, h, w, c = np.meshgrid(np.arange(3), np.arange(32), np.arange(32), np.arange(3), indexing="ij")
    np.testing.assert_array_equal(ims.images, raw[n, c * 1024 + h * 32 + w])
    assert ims.mean == CIFAR10_MEAN and ims.std == CIFAR10_STD


def test_official_layout_train_split_concatenates_batches(tmp_path: Path) -> None:
    _fake_cifar(tmp_path, np.random.default_rng(1))
    train = load_images("cifar10", data_dir=tmp_path, split="train")
    assert train.name == "cifar10-train"
    assert train.labels.tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]


def test_official_layout_missing_batch_and_corrupt_pickle(tmp_path: Path) -> None:
    folder, _ = _fake_cifar(tmp_path, np.random.default_rng(2))
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        load_images("cifar10", data_dir=tmp_path, split="train")
    (folder / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match=r"test_batch.*not a readable pickle"):
        load_images("cifar10", data_dir=tmp_path)


# --- npz ----------------------------------------------------------------------------------------


def test_npz_real_eembc_file(data_dir: Path) -> None:
    path = data_dir / "cifar10" / "cifar10_test_eembc200.npz"
    ims = load_images(f"npz:{path}")
    with np.load(path) as z:
        np.testing.assert_array_equal(ims.labels, z["labels"])
        np.testing.assert_array_equal(ims.images, z["images"])
        assert ims.class_names == tuple(z["class_names"].tolist())
    assert len(ims) == 200 and ims.images.shape == (200, 32, 32, 3)
    assert ims.mean == CIFAR10_MEAN and ims.std == CIFAR10_STD
    batch = make_batch(ims, 16, seed=5)
    idx = np.random.default_rng(5).choice(200, size=16, replace=False)
    np.testing.assert_allclose(
        batch.images.numpy(), _reference_normalize(ims.images[idx], CIFAR10_MEAN, CIFAR10_STD), atol=1e-5
    )


def test_npz_nchw_is_converted(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "nchw.npz"
    np.savez(path, images=nhwc.transpose(0, 3, 1, 2), labels=np.array([0, 1, 2, 1]))
    ims = load_images(f"npz:{path}")
    np.testing.assert_array_equal(ims.images, nhwc)
    assert ims.class_names == ("0", "1", "2")


def test_npz_truncated_raises_with_path(tmp_path: Path) -> None:
    good = tmp_path / "good.npz"
    np.savez(good, images=np.zeros((8, 32, 32, 3), np.uint8), labels=np.zeros(8, np.int64))
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError) as exc:
        load_images(f"npz:{bad}")
    assert str(bad) in str(exc.value)


def test_npz_missing_key_raises_with_path_and_key(tmp_path: Path) -> None:
    path = tmp_path / "nolabels.npz"
    np.savez(path, images=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(DataError) as exc:
        load_images(f"npz:{path}")
    assert str(path) in str(exc.value) and "'labels'" in str(exc.value)


def test_npz_not_an_archive_and_missing_file(tmp_path: Path) -> None:
    npy = tmp_path / "single.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(DataError, match=r"single \.npy array"):
        load_images(f"npz:{npy}")
    with pytest.raises(DataError, match="does not exist"):
        load_images(f"npz:{tmp_path / 'absent.npz'}")


# --- cifar10 lookup -----------------------------------------------------------------------------


def test_cifar10_falls_back_to_jpeg_fixture(data_dir: Path) -> None:
    ims = load_images("cifar10", data_dir=data_dir)
    assert len(ims) == 2000 and ims.name == "cifar10-test-jpeg2000"
    assert np.bincount(ims.labels).tolist() == [200] * 10
    assert ims.class_names[0] == "airplane"
    with pytest.raises(DataError, match="official layout"):
        load_images("cifar10", data_dir=data_dir, split="train")


def test_cifar10_not_found_lists_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv("NAS_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(DataError) as exc:
        load_images("cifar10", data_dir=empty)
    msg = str(exc.value)
    assert str(empty) in msg
    assert "NAS_DATA" in msg and "not set" in msg
    assert str(tmp_path / "home" / ".cache" / "nas" / "data") in msg
    assert "cifar-10-python.tar.gz" in msg  # how to provide data


def test_cifar10_uses_nas_data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cifar(tmp_path / "env_root", np.random.default_rng(3))
    monkeypatch.setenv("NAS_DATA", str(tmp_path / "env_root"))
    assert load_images("cifar10").labels.tolist() == [4, 1, 9]


# --- synthetic, unknown, validation -------------------------------------------------------------


def test_synthetic_only_by_name() -> None:
    a = load_images("synthetic")
    b = load_images("synthetic")
    assert a.name == "synthetic" and len(a) == 512 and a.num_classes == 10
    np.testing.assert_array_equal(a.images, b.images)
    batch = load_batch("synthetic", 8)
    assert batch.source == "synthetic"
    # the default source is real data, never noise
    assert load_batch.__defaults__ is not None and load_batch.__defaults__[0] == "digits"


def test_unknown_source_lists_valid_forms() -> None:
    with pytest.raises(DataError) as exc:
        load_images("imagenet")
    msg = str(exc.value)
    for form in ("'imagenet'", "cifar10", "npz:PATH", "digits", "synthetic"):
        assert form in msg


def test_bad_split_and_single_split_sources() -> None:
    with pytest.raises(DataError, match="unknown split 'val'"):
        load_images("digits", split="val")
    with pytest.raises(DataError, match="single split"):
        load_images("synthetic", split="train")


def test_imageset_validates_fields() -> None:
    with pytest.raises(DataError, match=r"'images'.*\(2, 32, 32\)"):
        ImageSet(np.zeros((2, 32, 32), np.uint8), np.zeros(2, np.int64), ("a",), "bad")
    with pytest.raises(DataError, match=r"'labels'.*int32"):
        ImageSet(np.zeros((2, 4, 4, 3), np.uint8), np.zeros(2, np.int32), ("a",), "bad")
    with pytest.raises(DataError, match=r"'labels' must lie in 0..0"):
        ImageSet(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]), ("a",), "bad")
    with pytest.raises(DataError, match="'std'"):
        ImageSet(np.zeros((1, 4, 4, 3), np.uint8), np.zeros(1, np.int64), ("a",), "bad", std=(0.2, 0.0, 0.2))


def test_fit_batch_resizes_to_the_models_input_and_checks_channels() -> None:
    import torch.nn.functional as F

    from nas.data import fit_batch

    batch = load_batch("digits", 4, seed=0)
    assert fit_batch(batch, (1, 3, 32, 32)) is batch  # already fits
    assert fit_batch(batch, (1, 10)) is batch  # not an image input
    big = fit_batch(batch, (1, 3, 48, 40))
    assert tuple(big.images.shape) == (4, 3, 48, 40) and big.labels is batch.labels
    ref = F.interpolate(batch.images, size=(48, 40), mode="bilinear", align_corners=False)
    assert torch.equal(big.images, ref)
    with pytest.raises(DataError, match="takes 1 input channels, the batch has 3"):
        fit_batch(batch, (1, 1, 32, 32))
