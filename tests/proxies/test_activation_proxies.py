"""jacov, nwot, epe_nas, l2_norm, plain, params, flops and zen against hand-computed references
(meco's in test_meco.py; it shares the contract tests here).

Each reference is computed here, independently of the proxy's code: with numpy on tiny networks whose
weights we read back, or from a closed form (a model whose input gradient is the input itself, a
linear model whose gradient is known). Then the shared contract: no mutation, determinism, the
degenerate NB201 cell, and the ProxyError cases.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import proxies.epe_nas
import proxies.flops
import proxies.jacov
import proxies.l2_norm
import proxies.meco
import proxies.nwot
import proxies.params
import proxies.plain
import proxies.zen  # noqa: F401  (registers the proxy)
from nas.data import Batch
from nas.errors import ProxyError
from nas.ir import ArchGraph
from proxies.base import PROXIES, Proxy
from proxies.jacov import EIG_EPS, batch_input_gradient
from proxies.nwot import relu_code_kernel
from search_spaces.nb201 import NB201Space

NAMES = ("jacov", "nwot", "epe_nas", "l2_norm", "plain", "params", "flops", "zen", "meco")  # meco: test_meco.py


def make_batch(b: int, h: int = 4, w: int = 4, labels: list[int] | None = None, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor(labels if labels is not None else [i % 3 for i in range(b)], dtype=torch.int64)
    return Batch(images=torch.randn(b, 3, h, w, generator=g), labels=y, num_classes=10, source="test", seed=seed)


def tiny_cnn(seed: int = 0, classes: int = 3) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, classes),
    )


class HalfSquare(nn.Module):
    """``out[b, k] = sum(x_b ** 2) / (2 * width)``: the gradient of the summed output is ``x`` itself."""

    def __init__(self, width: int = 1) -> None:
        super().__init__()
        self.width = width
        self.scale = nn.Linear(1, 1)  # a weighted layer so the model is a "network"; unused in forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * x).flatten(1).sum(dim=1, keepdim=True) / (2 * self.width)  # (B, 1)
        return s.expand(-1, self.width)  # (B, width)


def jacov_formula(corr: np.ndarray) -> float:
    v = np.linalg.eigvals(corr).real  # NASLib uses the general solver
    return float(-np.sum(np.log(v + EIG_EPS) + 1.0 / (v + EIG_EPS)))


# ----------------------------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_contract(name: str) -> None:
    proxy = PROXIES.resolve(name)
    assert isinstance(proxy, Proxy)
    assert proxy.name == name
    assert proxy.higher_is_better is True


# ----------------------------------------------------------------------------------------------- jacov


def test_jacov_gradient_is_input_for_half_square() -> None:
    batch = make_batch(6)
    grads, shape = batch_input_gradient("jacov", HalfSquare(), batch.images)
    assert tuple(shape) == (6, 1)
    np.testing.assert_allclose(grads.numpy(), batch.images.reshape(6, -1).numpy(), rtol=1e-6)


def test_jacov_matches_numpy_on_half_square() -> None:
    batch = make_batch(6)
    x = batch.images.reshape(6, -1).double().numpy()
    expected = jacov_formula(np.corrcoef(x))
    assert PROXIES.resolve("jacov").score(HalfSquare(), batch) == pytest.approx(expected, rel=1e-9)


def test_jacov_linear_model_closed_form() -> None:
    # Every sample's gradient is the column sum of W: all rows are equal, so the correlation matrix is
    # all ones with eigenvalues B (once) and 0 (B - 1 times).
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    b = 5
    batch = make_batch(b)
    grads, _ = batch_input_gradient("jacov", model, batch.images)
    w_sum = model[1].weight.detach().sum(dim=0)
    np.testing.assert_allclose(grads.numpy(), w_sum.expand(b, -1).numpy(), rtol=1e-5, atol=1e-7)
    k = EIG_EPS
    expected = -(math.log(b + k) + 1 / (b + k)) - (b - 1) * (math.log(k) + 1 / k)
    assert PROXIES.resolve("jacov").score(model, batch) == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------------------------------------- nwot


class TwoLayer(nn.Module):
    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.fc1 = nn.Linear(3, 5)
        self.act1 = nn.ReLU(inplace=inplace)
        self.fc2 = nn.Linear(5, 4)
        self.act2 = nn.ReLU(inplace=inplace)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act2(self.fc2(self.act1(self.fc1(x.flatten(1))))))


def nwot_reference(net: TwoLayer, images: torch.Tensor) -> np.ndarray:
    """K by explicit loops over samples and units, with numpy forward passes."""
    w1, b1 = net.fc1.weight.detach().double().numpy(), net.fc1.bias.detach().double().numpy()
    w2, b2 = net.fc2.weight.detach().double().numpy(), net.fc2.bias.detach().double().numpy()
    x = images.reshape(images.shape[0], -1).double().numpy()
    z1 = x @ w1.T + b1
    z2 = np.maximum(z1, 0) @ w2.T + b2
    codes = np.concatenate([z1 > 0, z2 > 0], axis=1)  # (B, 9)
    n = codes.shape[0]
    k = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            k[i, j] = sum(codes[i, u] == codes[j, u] for u in range(codes.shape[1]))
    return k


def test_nwot_kernel_and_slogdet_by_hand() -> None:
    net = TwoLayer()
    batch = make_batch(4, h=1, w=1, seed=5)
    k_ref = nwot_reference(net, batch.images)
    sign, logdet = np.linalg.slogdet(k_ref)
    assert sign > 0  # the example is chosen to be non-singular
    k, calls = relu_code_kernel(copy.deepcopy(net), batch.images)
    assert calls == 2
    np.testing.assert_array_equal(k.numpy(), k_ref)
    assert np.all(np.diag(k_ref) == 9)
    assert PROXIES.resolve("nwot").score(net, batch) == pytest.approx(logdet, rel=1e-12)


def test_nwot_hook_placement() -> None:
    batch = make_batch(4, h=1, w=1, seed=5)
    k_ref, _ = relu_code_kernel(copy.deepcopy(TwoLayer()), batch.images)
    # in-place ReLUs see their output, whose sign pattern is the same
    k_inplace, _ = relu_code_kernel(TwoLayer(inplace=True), batch.images)
    np.testing.assert_array_equal(k_inplace.numpy(), k_ref.numpy())

    # a composite module whose class name contains "ReLU" is not hooked on top of its nn.ReLU
    class ReLULinear(nn.Module):
        def __init__(self, lin: nn.Linear) -> None:
            super().__init__()
            self.act = nn.ReLU()
            self.lin = lin

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(self.act(x))

    net = TwoLayer()
    wrapped = nn.Sequential(nn.Flatten(), net.fc1, ReLULinear(net.fc2), nn.ReLU(), net.head)
    k_wrapped, calls = relu_code_kernel(wrapped, batch.images)
    assert calls == 2
    np.testing.assert_array_equal(k_wrapped.numpy(), k_ref.numpy())

    # a ReLU module called twice counts twice
    relu = nn.ReLU()
    twice = nn.Sequential(nn.Flatten(), relu, relu)
    k_twice, calls = relu_code_kernel(twice, batch.images)
    k_once, _ = relu_code_kernel(nn.Sequential(nn.Flatten(), nn.ReLU()), batch.images)
    assert calls == 2
    np.testing.assert_array_equal(k_twice.numpy(), 2 * k_once.numpy())


def test_nwot_needs_relus() -> None:
    with pytest.raises(ProxyError, match="ReLU"):
        PROXIES.resolve("nwot").score(nn.Sequential(nn.Flatten(), nn.Linear(48, 3)), make_batch(4))


# ----------------------------------------------------------------------------------------------- epe_nas


def epe_reference(x: np.ndarray, labels: list[int], n_out: int) -> float:
    k = 1e-5
    scores = {}
    for c in sorted(set(labels)):
        rows = x[[i for i, y in enumerate(labels) if y == c]]
        if len(rows) == 1:
            if n_out > 100:
                continue
            scores[c] = math.log(1 + k)
            continue
        s = float(np.sum(np.log(np.abs(np.corrcoef(rows)) + k)))
        scores[c] = s / len(rows) if n_out > 100 else s
    vals = list(scores.values())
    if n_out <= 100:
        return sum(abs(v) for v in vals)
    return sum(abs(a - b) for a in vals for b in vals) / len(vals)


@pytest.mark.parametrize("width", [1, 101])
def test_epe_nas_matches_numpy(width: int) -> None:
    labels = [0, 1, 0, 2, 1, 0, 1, 3, 2]  # class 3 has a single sample
    batch = make_batch(len(labels), labels=labels, seed=2)
    x = batch.images.reshape(len(labels), -1).double().numpy()
    expected = epe_reference(x, labels, width)
    got = PROXIES.resolve("epe_nas").score(HalfSquare(width), batch)
    assert got == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------------------------------- l2_norm, plain


def test_l2_norm_by_hand() -> None:
    model = tiny_cnn()
    expected = sum(
        math.sqrt(float(np.sum(m.weight.detach().double().numpy() ** 2))) for m in (model[0], model[5])
    )  # Conv and Linear weights only: not biases, not BatchNorm
    assert PROXIES.resolve("l2_norm").score(model, make_batch(2)) == pytest.approx(expected, rel=1e-12)


def test_plain_by_hand() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    batch = make_batch(6, labels=[0, 2, 1, 1, 0, 2])
    w = model[1].weight.detach().double().numpy()
    bias = model[1].bias.detach().double().numpy()
    x = batch.images.reshape(6, -1).double().numpy()
    z = x @ w.T + bias
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(3)[batch.labels.numpy()]
    dw = (p - onehot).T @ x / 6  # d mean-CE / dW
    expected = float(np.sum(dw * w))  # the bias is not a weight of the saliency
    assert PROXIES.resolve("plain").score(model, batch) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", ["l2_norm", "plain"])
def test_weights_required(name: str) -> None:
    with pytest.raises(ProxyError, match="Conv or Linear"):
        PROXIES.resolve(name).score(nn.Sequential(nn.Flatten(), nn.ReLU()), make_batch(2))


def test_plain_rejects_labels_outside_outputs() -> None:
    with pytest.raises(ProxyError, match="labels"):
        PROXIES.resolve("plain").score(tiny_cnn(classes=2), make_batch(4, labels=[0, 1, 2, 1]))


# ----------------------------------------------------------------------------------------------- params, flops


def test_params_by_hand() -> None:
    # Conv 3->4 3x3 + bias: 108 + 4; BatchNorm(4): 4 + 4; Linear 4->3 + bias: 12 + 3
    assert PROXIES.resolve("params").score(tiny_cnn(), make_batch(2)) == pytest.approx(135e-6, abs=0)
    tied = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    tied[1].weight = tied[0].weight
    assert PROXIES.resolve("params").score(tied, make_batch(2)) == pytest.approx(16e-6, abs=0)


def test_flops_by_hand() -> None:
    model = tiny_cnn()
    batch = make_batch(5, h=8, w=8)
    conv = 8 * 8 * 4 * (3 * 3 * 3) + 8 * 8 * 4  # one MAC per weight use, plus one per output for the bias
    gap = 4 * 8 * 8  # one per input element of the global pooling
    linear = 3 * 4 + 3
    expected = (conv + gap + linear) / 1e6  # BatchNorm and ReLU count 0
    assert PROXIES.resolve("flops").score(model, batch) == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------------------------- zen


def zen_reference(model: nn.Sequential, shape: tuple[int, ...], seed: int, gamma: float) -> float:
    """The Zen-score of ``tiny_cnn`` step by step: redraw, two passes up to the pooling, BN term."""
    net = copy.deepcopy(model).train()
    conv, bn, relu, lin = net[0], net[1], net[2], net[5]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        conv.weight.normal_(generator=g)
        conv.bias.zero_()
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        lin.weight.normal_(generator=g)
        lin.bias.zero_()
        x = torch.randn(shape, generator=g)
        eps = torch.randn(shape, generator=g)
        f1 = relu(bn(conv(x)))
        f2 = relu(bn(conv(x + gamma * eps)))
    delta = (f1 - f2).abs().sum(dim=(1, 2, 3)).mean().item()
    return math.log(delta) + 0.5 * math.log(bn.running_var.double().mean().item())


def test_zen_step_by_step() -> None:
    model = tiny_cnn()
    batch = make_batch(4, h=6, w=6)
    expected = zen_reference(model, tuple(batch.images.shape), seed=0, gamma=1e-2)
    assert PROXIES.resolve("zen").score(model, batch) == pytest.approx(expected, rel=1e-5)
    other = zen_reference(model, tuple(batch.images.shape), seed=7, gamma=1e-2)
    assert PROXIES.resolve("zen", seed=7).score(model, batch) == pytest.approx(other, rel=1e-5)
    assert other != pytest.approx(expected, rel=1e-5)


def test_zen_is_log_linear_in_gamma_for_linear_features() -> None:
    # Conv -> pooling: the features are affine in the input, so doubling gamma adds log 2 exactly.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    batch = make_batch(3, h=6, w=6)
    a = PROXIES.resolve("zen", mixup_gamma=1e-2).score(model, batch)
    b = PROXIES.resolve("zen", mixup_gamma=2e-2).score(model, batch)
    assert b - a == pytest.approx(math.log(2.0), abs=1e-4)


def test_zen_finds_the_ir_global_pool() -> None:
    model = tiny_cnn()
    batch = make_batch(4, h=6, w=6)
    graph_module = ArchGraph.from_module(model, batch.images[:1]).to_torch(keep_weights=True)
    zen = PROXIES.resolve("zen")
    assert zen.score(graph_module, batch) == pytest.approx(zen.score(model, batch), rel=1e-5)


def test_zen_needs_global_pooling() -> None:
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * 2 * 2, 3))
    with pytest.raises(ProxyError, match="global pooling"):
        PROXIES.resolve("zen").score(model, make_batch(2))


def test_zen_leaves_global_rng_alone() -> None:
    model, batch = tiny_cnn(), make_batch(2)
    state = torch.get_rng_state()
    PROXIES.resolve("zen").score(model, batch)
    assert torch.equal(torch.get_rng_state(), state)


# ----------------------------------------------------------------------------------------------- shared contract


@pytest.mark.parametrize("name", NAMES)
def test_no_mutation_and_deterministic(name: str) -> None:
    model = tiny_cnn().eval()
    model[0].weight.requires_grad_(False)
    batch = make_batch(9, h=6, w=6, labels=[0, 1, 2] * 3)
    before = copy.deepcopy(model.state_dict())
    flags = [m.training for m in model.modules()]
    images = batch.images.clone()
    proxy = PROXIES.resolve(name)
    first = proxy.score(model, batch)
    second = proxy.score(model, batch)
    assert math.isfinite(first)
    assert first == second
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [m.training for m in model.modules()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert model[0].weight.requires_grad is False and model[5].weight.requires_grad is True
    assert torch.equal(batch.images, images)


@pytest.fixture(scope="module")
def all_none() -> nn.Module:
    torch.manual_seed(0)
    return NB201Space().to_module(("none",) * 6)


@pytest.mark.parametrize(
    ("name", "why"),
    [("jacov", "constant"), ("epe_nas", "constant"), ("nwot", "non-finite"), ("zen", "non-finite")],
)
def test_degenerate_cell_has_no_score(all_none: nn.Module, name: str, why: str) -> None:
    # The output does not depend on the input: correlations are 0/0, log det K and log Delta are -inf.
    batch = make_batch(6, h=8, w=8, labels=[0, 1, 0, 1, 0, 1])
    with pytest.raises(ProxyError, match=f"'{name}'.*{why}"):
        PROXIES.resolve(name).score(all_none, batch)


def test_degenerate_cell_size_and_saliency(all_none: nn.Module) -> None:
    batch = make_batch(6, h=8, w=8, labels=[0, 1, 0, 1, 0, 1])
    # stem 432 + 32; two reduction blocks 14,464 and 57,600; last BatchNorm 128; classifier 650
    assert PROXIES.resolve("params").score(all_none, batch) == pytest.approx(0.073306, abs=0)
    assert PROXIES.resolve("plain").score(all_none, batch) == 0.0  # no gradient reaches a weight
    assert PROXIES.resolve("l2_norm").score(all_none, batch) > 0
    assert PROXIES.resolve("flops").score(all_none, batch) > 0
