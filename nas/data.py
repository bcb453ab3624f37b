"""Image batches for zero-cost proxies.

Zero-cost proxies score an untrained network on one small batch of real images. This module
loads an image set (:func:`load_images`), draws a seeded batch from it (:func:`make_batch`), and
normalizes it to the float32 NCHW tensor a network takes. :func:`load_batch` does both.

Sources (the ``source`` string):

- ``"cifar10"``: CIFAR-10 in the official python-pickle layout (``cifar-10-batches-py/``), found
  under ``data_dir``, then ``$NAS_DATA``, then ``~/.cache/nas/data``. Where a root has no official
  layout, its ``cifar10/cifar10_test_jpeg2000.npz`` fixture (2,000 test images) is used instead.
- ``"npz:PATH"``: an ``.npz`` archive with ``images`` (uint8, NHWC or NCHW) and ``labels``, and
  optionally ``class_names``.
- ``"digits"``: scikit-learn's 1,797 handwritten digits, upsampled to 32x32 RGB. Real images that
  need no download; the default.
- ``"synthetic"``: seeded Gaussian noise, for tests that must not depend on any data.

Shapes: :class:`ImageSet` holds ``(N, H, W, 3)`` uint8 images; :class:`Batch` holds ``(B, 3, H, W)``
float32 images normalized per channel with the set's ``mean`` and ``std``.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from numpy.lib.npyio import NpzFile

from nas.errors import DataError

logger = logging.getLogger(__name__)

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "Batch",
    "ImageSet",
    "load_batch",
    "load_images",
    "make_batch",
]

CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

CIFAR10_DIRNAME = "cifar-10-batches-py"
CIFAR10_FIXTURE = Path("cifar10") / "cifar10_test_jpeg2000.npz"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
DEFAULT_CACHE = Path(".cache") / "nas" / "data"  # relative to the home directory
SPLITS = ("test", "train")
VALID_SOURCES = ("cifar10", "npz:PATH", "digits", "synthetic")

SYNTHETIC_SIZE = 512
SYNTHETIC_CLASSES = 10
SYNTHETIC_SEED = 0


# ----------------------------------------------------------------------------------------------
# Containers


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A labelled image set in memory.

    Attributes:
        images: uint8 array of shape ``(N, H, W, 3)``, RGB, channels last.
        labels: int64 array of shape ``(N,)`` with values in ``0 .. len(class_names) - 1``.
        class_names: one name per class; its length is the number of classes.
        name: where the set came from (``"digits"``, ``"cifar10-test"``, ``"npz:/path/x.npz"`` ...).
        mean: per-channel mean of ``images / 255``, used for normalization.
        std: per-channel standard deviation of ``images / 255``, used for normalization.

    The arrays are not copied; treat them as read-only.
    """

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]
    class_names: tuple[str, ...]
    name: str
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD

    def __post_init__(self) -> None:
        img, lab = self.images, self.labels
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 4 or img.shape[3] != 3:
            raise DataError(
                f"ImageSet {self.name!r}: field 'images' must be a uint8 array of shape (N, H, W, 3); "
                f"got {_describe(img)}"
            )
        n = img.shape[0]
        if n == 0:
            raise DataError(f"ImageSet {self.name!r}: field 'images' holds no images (shape {img.shape})")
        if not isinstance(lab, np.ndarray) or lab.dtype != np.int64 or lab.shape != (n,):
            raise DataError(
                f"ImageSet {self.name!r}: field 'labels' must be an int64 array of shape ({n},) to match "
                f"'images' {img.shape}; got {_describe(lab)}"
            )
        names = tuple(self.class_names)
        if not names or not all(isinstance(c, str) for c in names):
            raise DataError(
                f"ImageSet {self.name!r}: field 'class_names' must be a non-empty tuple of str; "
                f"got {self.class_names!r}"
            )
        object.__setattr__(self, "class_names", names)
        lo, hi = int(lab.min()), int(lab.max())
        if lo < 0 or hi >= len(names):
            raise DataError(
                f"ImageSet {self.name!r}: field 'labels' must lie in 0..{len(names) - 1} "
                f"(one per class name); got values in {lo}..{hi}"
            )
        for field, values, low in (("mean", self.mean, 0.0), ("std", self.std, 0.0)):
            vals = tuple(float(v) for v in values)
            ok = len(vals) == 3 and all(np.isfinite(v) and low <= v <= 1.0 for v in vals)
            if not ok or (field == "std" and min(vals) <= 0.0):
                bound = "(0, 1]" if field == "std" else "[0, 1]"
                raise DataError(
                    f"ImageSet {self.name!r}: field {field!r} must be 3 per-channel floats in {bound} "
                    f"(on the 0..1 pixel scale); got {values!r}"
                )
            object.__setattr__(self, field, vals)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        """The number of classes, ``len(class_names)``."""
        return len(self.class_names)


@dataclass(frozen=True, eq=False)
class Batch:
    """One normalized batch, ready for a forward pass.

    Attributes:
        images: float32 tensor of shape ``(B, 3, H, W)``, normalized per channel.
        labels: int64 tensor of shape ``(B,)``.
        num_classes: the number of classes of the set the batch was drawn from.
        source: the :attr:`ImageSet.name` of that set.
        seed: the seed the batch was drawn with.
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    source: str
    seed: int

    def __post_init__(self) -> None:
        x, y = self.images, self.labels
        if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.dim() != 4 or x.shape[1] != 3:
            raise DataError(
                f"Batch from {self.source!r}: field 'images' must be a float32 tensor of shape "
                f"(B, 3, H, W); got {_describe(x)}"
            )
        if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or tuple(y.shape) != (x.shape[0],):
            raise DataError(
                f"Batch from {self.source!r}: field 'labels' must be an int64 tensor of shape "
                f"({x.shape[0]},); got {_describe(y)}"
            )

    @property
    def size(self) -> int:
        """The number of images in the batch."""
        return int(self.images.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        """A copy of this batch with both tensors on ``device``."""
        return Batch(
            images=self.images.to(device),
            labels=self.labels.to(device),
            num_classes=self.num_classes,
            source=self.source,
            seed=self.seed,
        )


def _describe(obj: object) -> str:
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return f"{type(obj).__name__} of dtype {obj.dtype} and shape {tuple(obj.shape)}"
    return f"{type(obj).__name__}"


# ----------------------------------------------------------------------------------------------
# Loading


def load_images(source: str, *, data_dir: str | Path | None = None, split: str = "test") -> ImageSet:
    """Load the image set named by ``source``.

    Args:
        source: ``"cifar10"``, ``"npz:PATH"``, ``"digits"`` or ``"synthetic"`` (see the module docs).
        data_dir: where to look for CIFAR-10 first (before ``$NAS_DATA`` and ``~/.cache/nas/data``).
            Ignored by the other sources.
        split: ``"test"`` or ``"train"``. Only ``cifar10`` in the official layout has a train split.

    Returns:
        The :class:`ImageSet`, with uint8 NHWC images.

    Raises:
        DataError: unknown source, unknown split, or data missing or malformed; the message names the
            path and how to fix it.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} for source {source!r}; expected one of {SPLITS}")
    if source.startswith("npz:"):
        path = source[len("npz:") :]
        if not path:
            raise DataError("source 'npz:' names no file; write it as 'npz:/path/to/images.npz'")
        _single_split(source, split)
        return _load_npz(Path(path).expanduser(), name=f"npz:{path}")
    loader = _LOADERS.get(source.lower())
    if loader is None:
        raise DataError(
            f"unknown image source {source!r}; valid forms: {', '.join(VALID_SOURCES)} "
            "(for example 'digits', or 'npz:/data/images.npz')"
        )
    return loader(data_dir, split)


def make_batch(images: ImageSet, batch_size: int = 64, *, seed: int = 0, balanced: bool = False) -> Batch:
    """Draw a normalized batch of ``batch_size`` distinct images from ``images``.

    The draw uses ``numpy.random.default_rng(seed)`` alone, so the same set and seed give the same
    batch in a fresh process.

    Args:
        images: the set to draw from.
        batch_size: the number of images, ``1 .. len(images)``.
        seed: a non-negative seed for the draw.
        balanced: take ``batch_size // num_classes`` images from every class; the remainder goes,
            one each, to the first classes of a seeded permutation of the classes. The batch is then
            shuffled so classes are not in blocks.

    Returns:
        A :class:`Batch` whose images are ``(x / 255 - mean) / std`` per channel, float32 NCHW.

    Raises:
        DataError: ``batch_size`` out of range, a negative seed, or (balanced) a class with too few images.
    """
    n = len(images)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DataError(f"batch_size must be a positive int; got {batch_size!r}")
    if batch_size > n:
        raise DataError(
            f"batch_size {batch_size} is larger than the {n} images of {images.name!r}; "
            f"ask for at most {n} or use a larger source"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative int; got {seed!r}")

    rng = np.random.default_rng(seed)
    if balanced:
        idx = _balanced_indices(images, int(batch_size), rng)
    else:
        idx = rng.choice(n, size=int(batch_size), replace=False)

    x = torch.from_numpy(images.images[idx]).to(torch.float32).div_(255.0)  # (B, H, W, 3)
    x = x.permute(0, 3, 1, 2)  # (B, 3, H, W)
    mean = torch.tensor(images.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(images.std, dtype=torch.float32).view(1, 3, 1, 1)
    x = ((x - mean) / std).contiguous()
    y = torch.from_numpy(images.labels[idx].astype(np.int64))
    logger.debug("drew %d images from %s (seed=%d, balanced=%s)", batch_size, images.name, seed, balanced)
    return Batch(images=x, labels=y, num_classes=images.num_classes, source=images.name, seed=int(seed))


def fit_batch(batch: Batch, shape: tuple[int, ...]) -> Batch:
    """``batch`` resized (bilinear) to a model's ``(B, C, H, W)`` input shape if its spatial size differs;
    unchanged if it already fits or ``shape`` is not 4-d. A different channel count raises :class:`DataError`."""
    import torch.nn.functional as F

    if tuple(batch.images.shape[1:]) == tuple(shape[1:]) or len(shape) != 4:
        return batch
    if batch.images.shape[1] != shape[1]:
        raise DataError(f"the model takes {shape[1]} input channels, the batch has {batch.images.shape[1]}")
    logger.info("resizing the batch from %s to %s", tuple(batch.images.shape[2:]), tuple(shape[2:]))
    images = F.interpolate(batch.images, size=tuple(shape[2:]), mode="bilinear", align_corners=False)
    return Batch(images=images, labels=batch.labels, num_classes=batch.num_classes, source=batch.source,
                 seed=batch.seed)


def load_batch(
    source: str = "digits",
    batch_size: int = 64,
    *,
    seed: int = 0,
    balanced: bool = False,
    data_dir: str | Path | None = None,
    split: str = "test",
) -> Batch:
    """:func:`load_images` then :func:`make_batch`. Nothing is cached between calls."""
    images = load_images(source, data_dir=data_dir, split=split)
    return make_batch(images, batch_size, seed=seed, balanced=balanced)


def _balanced_indices(images: ImageSet, batch_size: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    k = images.num_classes
    quota = np.full(k, batch_size // k, dtype=np.int64)
    quota[rng.permutation(k)[: batch_size % k]] += 1
    counts = np.bincount(images.labels, minlength=k)
    short = [
        f"{images.class_names[c]!r} has {counts[c]}, needs {quota[c]}"
        for c in range(k)
        if counts[c] < quota[c]
    ]
    if short:
        raise DataError(
            f"cannot draw a balanced batch of {batch_size} from {images.name!r}: "
            f"{'; '.join(short)}. Use a smaller batch_size or balanced=False"
        )
    parts = [
        rng.choice(np.flatnonzero(images.labels == c), size=int(quota[c]), replace=False)
        for c in range(k)
        if quota[c] > 0
    ]
    return rng.permutation(np.concatenate(parts)).astype(np.int64)


def _single_split(source: str, split: str) -> None:
    if split != "test":
        raise DataError(
            f"source {source!r} has a single split; split={split!r} is only available for 'cifar10' "
            f"in the official layout ({CIFAR10_DIRNAME}/data_batch_1..5)"
        )


# --- cifar10 -----------------------------------------------------------------------------------


def _search_roots(data_dir: str | Path | None) -> list[tuple[str, Path | None]]:
    """The candidate roots in lookup order, each with a label saying where it came from."""
    env = os.environ.get("NAS_DATA")
    return [
        ("data_dir argument", Path(data_dir).expanduser() if data_dir is not None else None),
        ("NAS_DATA environment variable", Path(env).expanduser() if env else None),
        ("default cache", Path.home() / DEFAULT_CACHE),
    ]


def _find_official(root: Path) -> Path | None:
    """The ``cifar-10-batches-py`` folder at or under ``root``, if any."""
    for cand in (root, root / CIFAR10_DIRNAME, root / "cifar10" / CIFAR10_DIRNAME):
        if cand.is_dir() and any(
            (cand / f).is_file() for f in ("batches.meta", "test_batch", "data_batch_1")
        ):
            return cand
    return None


def _load_cifar10(data_dir: str | Path | None, split: str) -> ImageSet:
    searched: list[str] = []
    seen: set[Path] = set()
    for label, root in _search_roots(data_dir):
        if root is None:
            searched.append(f"  - {label}: not set")
            continue
        if root in seen:
            continue
        seen.add(root)
        if not root.is_dir():
            searched.append(f"  - {label}: {root} (does not exist)")
            continue
        official = _find_official(root)
        if official is not None:
            logger.info("loading CIFAR-10 %s split from %s", split, official)
            return _load_cifar10_official(official, split)
        fixture = root / CIFAR10_FIXTURE
        if fixture.is_file():
            if split != "test":
                raise DataError(
                    f"CIFAR-10 split {split!r} needs the official layout, but under {root} only the "
                    f"test fixture {fixture} was found; extract {CIFAR10_URL} there for the train split"
                )
            logger.info("no official CIFAR-10 layout under %s; using the fixture %s", root, fixture)
            return _load_npz(fixture, name="cifar10-test-jpeg2000")
        searched.append(f"  - {label}: {root} (no {CIFAR10_DIRNAME}/ at or under it, no {CIFAR10_FIXTURE})")
    raise DataError(
        "CIFAR-10 not found. Looked in, in order:\n"
        + "\n".join(searched)
        + f"\nTo fix: download {CIFAR10_URL} and extract it into one of these (giving "
        f"<root>/{CIFAR10_DIRNAME}/), or pass data_dir=..., or set NAS_DATA to a folder holding "
        f"{CIFAR10_DIRNAME}/ or {CIFAR10_FIXTURE}. Source 'digits' needs no download."
    )


def _unpickle(path: Path) -> dict[Any, Any]:
    # The official CIFAR-10 distribution is a pickle; only load files you trust.
    try:
        with path.open("rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except FileNotFoundError as e:
        raise DataError(
            f"CIFAR-10 file {path} is missing; the official layout has data_batch_1..5, test_batch and "
            f"batches.meta. Re-extract {CIFAR10_URL}"
        ) from e
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, AttributeError, ImportError) as e:
        raise DataError(
            f"CIFAR-10 file {path} is not a readable pickle ({type(e).__name__}: {e}); "
            f"it may be truncated. Re-extract {CIFAR10_URL}"
        ) from e
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR-10 file {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def _read_cifar_batch(path: Path) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    d = _unpickle(path)
    for key in (b"data", b"labels"):
        if key not in d:
            raise DataError(
                f"CIFAR-10 batch {path} has no key {key!r} (keys: {sorted(map(repr, d))}); "
                "expected the official python-pickle batch format"
            )
    data = np.asarray(d[b"data"])
    labels = np.asarray(d[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"CIFAR-10 batch {path}: b'data' must be uint8 of shape (N, 3072); got {_describe(data)}"
        )
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"CIFAR-10 batch {path}: b'labels' must be {data.shape[0]} integers; got {_describe(labels)}"
        )
    # Each row is the red plane, then green, then blue, each 32x32 row-major.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, 3072) -> (N, 3, H, W) -> (N, H, W, 3)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _load_cifar10_official(folder: Path, split: str) -> ImageSet:
    files = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 folder {folder} lacks {', '.join(missing)} needed for split {split!r}; "
            f"re-extract {CIFAR10_URL}"
        )
    parts = [_read_cifar_batch(folder / f) for f in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])

    class_names = CIFAR10_CLASSES
    meta = folder / "batches.meta"
    if meta.is_file():
        names = _unpickle(meta).get(b"label_names")
        if names is None:
            raise DataError(f"CIFAR-10 meta file {meta} has no key b'label_names'")
        class_names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return ImageSet(
        images=images,
        labels=labels,
        class_names=class_names,
        name=f"cifar10-{split}",
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
    )


# --- npz ---------------------------------------------------------------------------------------


def _load_npz(path: Path, *, name: str) -> ImageSet:
    if not path.is_file():
        raise DataError(f"npz file {path} does not exist; pass an existing file as 'npz:/path/to/file.npz'")
    hint = "expected an .npz archive with 'images' (uint8, N×H×W×3 or N×3×H×W) and 'labels'"
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, NpzFile):
            raise DataError(f"{path} is a single .npy array, not an .npz archive; {hint}")
        with loaded as z:
            for key in ("images", "labels"):
                if key not in z.files:
                    raise DataError(f"npz file {path} has no key {key!r} (keys: {z.files}); {hint}")
            images = z["images"]
            labels = z["labels"]
            raw_names = z["class_names"] if "class_names" in z.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(
            f"cannot read {path} as an .npz archive ({type(e).__name__}: {e}); "
            f"the file may be truncated or not an .npz. {hint}"
        ) from e

    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"npz file {path}: 'images' must be a uint8 4-D array; got {_describe(images)}")
    if images.shape[3] != 3:
        if images.shape[1] != 3:
            raise DataError(
                f"npz file {path}: 'images' must have 3 channels, as (N, H, W, 3) or (N, 3, H, W); "
                f"got shape {images.shape}"
            )
        images = images.transpose(0, 2, 3, 1)  # (N, 3, H, W) -> (N, H, W, 3)
    images = np.ascontiguousarray(images)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"npz file {path}: 'labels' must be a 1-D integer array; got {_describe(labels)}")
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"npz file {path}: 'labels' has {labels.shape[0]} entries but 'images' has {images.shape[0]}"
        )
    labels = labels.astype(np.int64)
    if raw_names is not None:
        class_names = tuple(str(c) for c in np.asarray(raw_names).reshape(-1))
    else:
        k = int(labels.max()) + 1 if labels.size else 0
        class_names = tuple(str(i) for i in range(k))
    logger.info("loaded %d images from %s", images.shape[0], path)
    return ImageSet(
        images=images, labels=labels, class_names=class_names, name=name, mean=CIFAR10_MEAN, std=CIFAR10_STD
    )


# --- digits, synthetic -------------------------------------------------------------------------


def _channel_stats(images: npt.NDArray[np.uint8]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.reshape(-1, 3).astype(np.float64) / 255.0  # (N*H*W, 3)
    return tuple(float(v) for v in x.mean(0)), tuple(float(v) for v in x.std(0))


def _load_digits(data_dir: str | Path | None, split: str) -> ImageSet:
    _single_split("digits", split)
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - scikit-learn is a declared dependency
        raise DataError("source 'digits' needs scikit-learn: pip install scikit-learn") from e
    bunch = load_digits()
    x = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32)).unsqueeze(1)  # (N, 8, 8) -> (N, 1, 8, 8)
    x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    # Bilinear weights are convex, so values stay in 0..16; map 16 to 255.
    x = (x * (255.0 / 16.0)).round_().clamp_(0, 255).to(torch.uint8)
    images = np.ascontiguousarray(x.permute(0, 2, 3, 1).expand(-1, -1, -1, 3).numpy())  # (N, 32, 32, 3)
    mean, std = _channel_stats(images)
    return ImageSet(
        images=images,
        labels=np.asarray(bunch.target, dtype=np.int64),
        class_names=tuple(str(i) for i in range(10)),
        name="digits",
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
    )


def _load_synthetic(data_dir: str | Path | None, split: str) -> ImageSet:
    _single_split("synthetic", split)
    rng = np.random.default_rng(SYNTHETIC_SEED)
    noise = rng.normal(127.5, 64.0, size=(SYNTHETIC_SIZE, 32, 32, 3))
    images = np.clip(np.rint(noise), 0, 255).astype(np.uint8)
    labels = rng.permutation(np.arange(SYNTHETIC_SIZE) % SYNTHETIC_CLASSES).astype(np.int64)
    mean, std = _channel_stats(images)
    logger.info("using synthetic Gaussian-noise images (not real data)")
    return ImageSet(
        images=images,
        labels=labels,
        class_names=tuple(f"synthetic_{i}" for i in range(SYNTHETIC_CLASSES)),
        name="synthetic",
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
    )


_LOADERS: dict[str, Callable[[str | Path | None, str], ImageSet]] = {
    "cifar10": _load_cifar10,
    "digits": _load_digits,
    "synthetic": _load_synthetic,
}
