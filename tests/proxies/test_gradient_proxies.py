"""Gradient-based zero-cost proxies: synflow, snip, grasp, fisher, grad_norm.

Each proxy is checked against an oracle written here with plain autograd on a tiny
Conv -> ReLU -> Flatten -> Linear network whose forward pass is spelled out functionally (GraSP's
oracle materializes the full Hessian), and for the contract: no mutation, determinism, errors.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.data import Batch, load_batch
from nas.errors import ProxyError
from proxies.base import PROXIES, Proxy
from proxies.fisher import Fisher
from proxies.grad_norm import GradNorm
from proxies.grasp import Grasp
from proxies.snip import Snip
from proxies.synflow import SynFlow
from search_spaces.nb201 import NB201Space

PROXY_CLASSES: list[type] = [SynFlow, Snip, Grasp, Fisher, GradNorm]
NAMES = ["synflow", "snip", "grasp", "fisher", "grad_norm"]

B, C, H, W, K, CLASSES = 4, 3, 3, 3, 2, 5
REL = 1e-6  # the tiny network runs in float64, so proxy and oracle agree to rounding


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # These networks are too small to gain from intra-op threads, and on a loaded machine the
    # threads' spin-waiting made this file 10x slower; the previous setting is restored after.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny_batch(seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        images=torch.randn(B, C, H, W, generator=g),
        labels=torch.randint(0, CLASSES, (B,), generator=g),
        num_classes=CLASSES,
        source="tiny",
        seed=seed,
    )


def _reinit(net: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return net


def _tiny_net(seed: int = 1) -> nn.Sequential:
    net = nn.Sequential(nn.Conv2d(C, K, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(K * H * W, CLASSES)).double()
    return _reinit(net, seed)


def _params(net: nn.Sequential) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    conv, lin = net[0], net[3]
    return tuple(t.detach().clone() for t in (conv.weight, conv.bias, lin.weight, lin.bias))  # type: ignore[return-value]


def _conv(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor) -> torch.Tensor:
    """The 3x3 same-padding conv as im2col and a matmul (its double backward is cheap)."""
    cols = F.unfold(x, 3, padding=1)  # (B, C*9, H*W)
    return (w1.reshape(K, -1) @ cols + b1[:, None]).reshape(-1, K, H, W)  # (B, K, H, W)


def _forward(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    return F.linear(F.relu(_conv(x, w1, b1)).flatten(1), w2, b2)  # (B, CLASSES)


# --- oracles --------------------------------------------------------------------------------------


def _oracle_synflow(net: nn.Sequential, batch: Batch) -> float:
    w1, b1, w2, b2 = (t.abs().requires_grad_(True) for t in _params(net))
    x = torch.ones(1, C, H, W, dtype=torch.float64)
    g1, g2 = torch.autograd.grad(_forward(x, w1, b1, w2, b2).sum(), [w1, w2])
    return float((w1 * g1).abs().sum().detach() + (w2 * g2).abs().sum().detach())


def _loss_grads(net: nn.Sequential, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    w1, b1, w2, b2 = _params(net)
    w1.requires_grad_(True)
    w2.requires_grad_(True)
    loss = F.cross_entropy(_forward(batch.images.double(), w1, b1, w2, b2), batch.labels)
    g1, g2 = torch.autograd.grad(loss, [w1, w2])
    return w1.detach(), g1, w2.detach(), g2


def _oracle_snip(net: nn.Sequential, batch: Batch) -> float:
    w1, g1, w2, g2 = _loss_grads(net, batch)
    return float((w1 * g1).abs().sum() + (w2 * g2).abs().sum())


def _oracle_grad_norm(net: nn.Sequential, batch: Batch) -> float:
    _, g1, _, g2 = _loss_grads(net, batch)
    return float(g1.pow(2).sum().sqrt() + g2.pow(2).sum().sqrt())


def _oracle_grasp(net: nn.Sequential, batch: Batch) -> float:
    w1, b1, w2, b2 = _params(net)
    n1 = w1.numel()
    theta = torch.cat([w1.flatten(), w2.flatten()])  # (P,)

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            _forward(batch.images.double(), flat[:n1].view_as(w1), b1, flat[n1:].view_as(w2), b2), batch.labels
        )

    grad = torch.autograd.functional.jacobian(loss_of, theta)  # (P,)
    hessian = torch.autograd.functional.hessian(loss_of, theta)  # (P, P), materialized
    return float(-(theta * (hessian @ grad)).sum())


def _oracle_fisher(net: nn.Sequential, batch: Batch) -> float:
    w1, b1, w2, b2 = _params(net)
    a1 = _conv(batch.images.double(), w1, b1).requires_grad_(True)  # (B, K, H, W)
    a2 = F.linear(F.relu(a1).flatten(1), w2, b2)  # (B, CLASSES)
    a2.retain_grad()
    F.cross_entropy(a2, batch.labels).backward()
    assert a1.grad is not None and a2.grad is not None
    total = 0.0
    for act, grad, fan_in in ((a1, a1.grad, C * 3 * 3), (a2, a2.grad, K * H * W)):
        g_nk = (act.detach() * grad).flatten(2).sum(2) if act.dim() > 2 else act.detach() * grad  # (B, ch)
        total += float((0.5 * g_nk.pow(2).mean(0)).sum()) * fan_in
    return total


ORACLES: dict[str, Callable[[nn.Sequential, Batch], float]] = {
    "synflow": _oracle_synflow,
    "snip": _oracle_snip,
    "grasp": _oracle_grasp,
    "fisher": _oracle_fisher,
    "grad_norm": _oracle_grad_norm,
}


# --- registry and oracle agreement -----------------------------------------------------------------


@pytest.mark.parametrize(("cls", "name"), list(zip(PROXY_CLASSES, NAMES, strict=True)))
def test_registered_with_orientation(cls: type, name: str) -> None:
    proxy = PROXIES.resolve(name)
    assert isinstance(proxy, cls)
    assert isinstance(proxy, Proxy)
    assert proxy.name == name
    assert proxy.higher_is_better is True


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [1, 2])
def test_matches_hand_computed_oracle(name: str, seed: int) -> None:
    net, batch = _tiny_net(seed), _tiny_batch(seed)
    expected = ORACLES[name](net, batch)
    assert expected != 0.0
    assert PROXIES.resolve(name).score(net, batch) == pytest.approx(expected, rel=REL)


@pytest.mark.parametrize("name", NAMES)
def test_float32_model_close_to_float64_oracle(name: str) -> None:
    net, batch = _tiny_net(3), _tiny_batch(3)
    expected = ORACLES[name](net, batch)
    assert PROXIES.resolve(name).score(net.float(), batch) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("bn", [nn.BatchNorm2d, nn.BatchNorm1d])
def test_synflow_bypasses_batchnorm(bn: type[nn.Module]) -> None:
    plain = _tiny_net(4)
    if bn is nn.BatchNorm2d:
        with_bn = nn.Sequential(plain[0], nn.BatchNorm2d(K), *plain[1:])
    else:
        with_bn = nn.Sequential(*plain[:3], nn.BatchNorm1d(K * H * W), plain[3])
    with_bn = _reinit(with_bn.double(), 4)  # BN affine weights become arbitrary too
    plain = nn.Sequential(with_bn[0], *[m for m in with_bn[1:] if not isinstance(m, bn)])
    batch = _tiny_batch(4)
    assert SynFlow().score(with_bn, batch) == pytest.approx(_oracle_synflow(plain, batch), rel=REL)


# --- contract -------------------------------------------------------------------------------------


def _bn_net() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(C, K, 3, padding=1, bias=False),
        nn.BatchNorm2d(K),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(K * H * W, CLASSES),
    )
    return _reinit(net, 5)


@pytest.mark.parametrize("name", NAMES)
def test_does_not_mutate_and_is_deterministic(name: str) -> None:
    net = _bn_net().eval()
    before = copy.deepcopy(net.state_dict())
    batch = _tiny_batch(5)
    proxy = PROXIES.resolve(name)
    first = proxy.score(net, batch)
    second = proxy.score(net, batch)
    assert first == second
    assert math.isfinite(first)
    after = net.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert all(p.grad is None for p in net.parameters())
    assert all(p.requires_grad for p in net.parameters())
    assert not any(m.training for m in net.modules())
    assert not net[0]._forward_hooks and not net[1]._forward_hooks  # no hooks left behind


@pytest.mark.parametrize("name", NAMES)
def test_model_without_weighted_layers_raises(name: str) -> None:
    with pytest.raises(ProxyError, match="needs Conv or Linear"):
        PROXIES.resolve(name).score(nn.Sequential(nn.AvgPool2d(2), nn.Flatten()), _tiny_batch())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_score_raises_naming_the_proxy(name: str, bad: float) -> None:
    net = _tiny_net(6)
    with torch.no_grad():
        net[0].weight[0, 0, 0, 0] = bad
        if bad == math.inf:
            net[0].weight[1, 0, 0, 0] = -bad  # inf - inf downstream: NaN for every proxy
    with pytest.raises(ProxyError, match=f"proxy '{name}'.*non-finite"):
        PROXIES.resolve(name).score(net, _tiny_batch(6))


def test_frozen_weights_still_scored() -> None:
    net = _tiny_net(7)
    net.requires_grad_(False)
    batch = _tiny_batch(7)
    for name in NAMES:
        assert PROXIES.resolve(name).score(net, batch) == pytest.approx(ORACLES[name](net, batch), rel=REL)
    assert not any(p.requires_grad for p in net.parameters())


# --- NAS-Bench-201 --------------------------------------------------------------------------------

ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"  # the input never reaches the output


def _assert_finite_scores(net: nn.Module, batch: Batch, label: object) -> None:
    for name in NAMES:
        value = PROXIES.resolve(name).score(net, batch)
        assert math.isfinite(value), (label, name)
        if name != "grasp":  # grasp is a signed sum
            assert value >= 0.0, (label, name)


@pytest.fixture(scope="module")
def cifar_batch(data_dir) -> Batch:
    return load_batch("cifar10", 4, seed=0, data_dir=data_dir)


def test_nb201_scores_finite(cifar_batch: Batch) -> None:
    torch.manual_seed(0)
    _assert_finite_scores(NB201Space().to_module(1), cifar_batch, 1)


def test_nb201_topology_scores_finite(cifar_batch: Batch) -> None:
    # The NB201 network at reduced width and depth (C=4, one cell per stage) keeps every kind of
    # layer and op of the benchmark while staying fast; the full size is in the slow test below.
    space = NB201Space(c=4, n=1)
    for arch in [*range(10), ALL_NONE]:
        torch.manual_seed(0)
        _assert_finite_scores(space.to_module(arch), cifar_batch, arch)


@pytest.mark.slow
def test_nb201_full_size_scores_finite(data_dir) -> None:
    batch = load_batch("cifar10", 64, seed=0, data_dir=data_dir)
    for arch in [*range(10), ALL_NONE]:
        torch.manual_seed(0)
        _assert_finite_scores(NB201Space().to_module(arch), batch, arch)
