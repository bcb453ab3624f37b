"""meco against a plain numpy reference: each layer run by hand, ``np.corrcoef`` with undefined entries
set to 0 (the authors' convention), ``np.linalg.eigvalsh``, summed over the 4-D outputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import proxies.meco  # noqa: F401  (registers the proxy)
from nas.data import Batch
from nas.errors import ProxyError
from proxies.base import PROXIES
from proxies.meco import min_correlation_eigenvalue
from search_spaces.nb201 import NB201Space


def make_batch(b: int, h: int = 6, w: int = 6, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(images=torch.randn(b, 3, h, w, generator=g), labels=torch.arange(b) % 3, num_classes=10,
                 source="test", seed=seed)


def numpy_term(fmap: torch.Tensor) -> float:
    """The authors' recipe in numpy: corrcoef over positions, NaN -> 0, smallest eigenvalue."""
    f = fmap.detach().double().reshape(fmap.shape[0], -1).numpy()
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # one position: "degrees of freedom <= 0"
        corr = np.atleast_2d(np.corrcoef(f))
    corr = np.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0)
    return float(np.linalg.eigvalsh(corr)[0])


@pytest.mark.parametrize("shape", [(5, 4, 4), (3, 1, 7), (8, 2, 2), (1, 3, 3)])
def test_term_matches_numpy(shape: tuple[int, int, int]) -> None:
    fmap = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    assert min_correlation_eigenvalue(fmap) == pytest.approx(numpy_term(fmap), abs=1e-12)


def test_term_dead_channels_and_one_position() -> None:
    fmap = torch.randn(4, 5, 5, generator=torch.Generator().manual_seed(2))
    fmap[1] = 3.0  # constant over positions: its row and column are 0, so the minimum is 0
    assert min_correlation_eigenvalue(fmap) == pytest.approx(numpy_term(fmap), abs=1e-12)
    assert min_correlation_eigenvalue(fmap) == pytest.approx(0.0, abs=1e-12)
    assert min_correlation_eigenvalue(torch.randn(6, 1, 1)) == 0.0  # one position: nothing is defined
    assert min_correlation_eigenvalue(torch.randn(1, 4, 4)) == pytest.approx(1.0)  # one live channel
    # More channels than positions: the channels are linearly dependent.
    assert min_correlation_eigenvalue(torch.randn(9, 2, 2)) == pytest.approx(0.0, abs=1e-10)


def test_score_is_the_sum_over_layers_run_by_hand() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 6, 1),
                          nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 10))
    batch = make_batch(5)
    expected = 0.0
    x = batch.images[:1]  # one image, train mode: BatchNorm normalizes over its positions
    with torch.no_grad():
        for layer in model.train():
            x = layer(x)
            if x.dim() == 4:
                expected += numpy_term(x[0])
    assert PROXIES.resolve("meco").score(model.eval(), batch) == pytest.approx(expected, rel=1e-12)


def test_only_the_first_image_counts() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 3))
    batch = make_batch(4)
    other = Batch(images=torch.cat([batch.images[:1], torch.randn(3, 3, 6, 6)]), labels=batch.labels,
                  num_classes=10, source="test", seed=1)
    meco = PROXIES.resolve("meco")
    assert meco.score(model, batch) == meco.score(model, other)


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv(x))


def test_every_call_of_a_leaf_counts_and_containers_do_not() -> None:
    torch.manual_seed(0)
    net = Twice()
    x = make_batch(1).images
    with torch.no_grad():
        once = net.conv(x)
        expected = numpy_term(once[0]) + numpy_term(net.conv(once)[0])
    meco = PROXIES.resolve("meco")
    assert meco.score(net, make_batch(1)) == pytest.approx(expected, rel=1e-12)
    # Wrapping in containers adds no terms: only leaf modules are read.
    assert meco.score(nn.Sequential(nn.Sequential(net)), make_batch(1)) == pytest.approx(expected, rel=1e-12)


def test_invariant_to_positive_scaling_of_a_conv() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Conv2d(5, 4, 3))
    meco = PROXIES.resolve("meco")
    before = meco.score(model, make_batch(2, 8, 8))
    with torch.no_grad():
        model[0].weight.mul_(7.5)
        model[0].bias.mul_(7.5)
    assert meco.score(model, make_batch(2, 8, 8)) == pytest.approx(before, rel=1e-6)  # float32 network


def test_nb201_cell_of_none_ops_scores_its_stem_and_reductions() -> None:
    torch.manual_seed(0)
    none = NB201Space().to_module(("none",) * 6)
    torch.manual_seed(0)
    conv = NB201Space().to_module(("nor_conv_3x3",) * 6)
    meco = PROXIES.resolve("meco")
    batch = make_batch(2, 32, 32)
    assert 0 < meco.score(none, batch) < meco.score(conv, batch)


def test_errors() -> None:
    meco = PROXIES.resolve("meco")
    with pytest.raises(ProxyError, match="no module output of shape"):
        meco.score(nn.Sequential(nn.Flatten(), nn.Linear(3 * 36, 10)), make_batch(2))
    with pytest.raises(ProxyError, match="one image in train mode"):
        meco.score(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.BatchNorm1d(32)), make_batch(2))


class Overflow(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tensor([1.0, float("inf"), 1.0]).reshape(1, 3, 1, 1)


class OwnValueError(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("a bug of the model's own")


def test_non_finite_maps_and_other_errors_are_not_hidden() -> None:
    meco = PROXIES.resolve("meco")
    with pytest.raises(ProxyError, match=r"Overflow.*non-finite"):
        meco.score(nn.Sequential(nn.Conv2d(3, 3, 1), Overflow(), nn.Conv2d(3, 2, 1)), make_batch(2))
    with pytest.raises(ValueError, match="own"):  # not relabelled as the one-image problem
        meco.score(nn.Sequential(nn.Conv2d(3, 3, 1), OwnValueError()), make_batch(2))

