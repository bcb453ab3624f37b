"""GradSign, LGA and the per-sample gradients under them.

Oracles: the one-sample-per-pass loop for the batched hooks, a hand-computed GradSign, the LGA
formula evaluated with explicit centring matrices, and BatchNorm on one sample for InstanceNorm.

Deep skip-free NB201 cells amplify float32 round-off so much that two float32 computations of
the same per-sample gradient differ by a few per cent (both paths agree to ~1e-15 in float64), so
the exact comparisons run in float64 and the float32 ones on well-conditioned architectures.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn

from nas.data import Batch
from nas.errors import ProxyError
from proxies.base import PROXIES
from proxies.gradsign import GradSign, gradsign_from_grads
from proxies.lga import LGA, center, lga_from_grads
from proxies.per_sample import batchnorm_as_instancenorm, per_sample_grads, replace_batchnorm, replace_modules
from search_spaces.nb201 import NB201Space, parse_arch

ARCHS = (
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|none~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|",
    "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|",
)
DEGENERATE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
WELL_CONDITIONED = (ARCHS[1], ARCHS[4])  # float32 round-off stays at ~1e-5 on the test batch


@pytest.fixture(autouse=True)
def _one_thread() -> object:
    """These tests run many tiny batch-1 ops, which OpenMP makes slow on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _batch(b: int = 8, size: int = 32, classes: int = 10, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, size, size, generator=g)
    y = torch.arange(b) % classes  # every class present, deterministic
    return Batch(images=x, labels=y, num_classes=classes, source="test", seed=seed)


def _nb201(arch: str, *, small: bool = False, dtype: torch.dtype = torch.float32, seed: int = 0) -> nn.Module:
    space = NB201Space(c=8, n=1) if small else NB201Space()
    torch.manual_seed(seed)
    return space.to_module(parse_arch(arch)).to(dtype)


def _max_rel_err(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert list(a) == list(b)
    return max(float((a[k] - b[k]).abs().max() / a[k].abs().max().clamp_min(1e-30)) for k in a)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_unchanged(model: nn.Module, before: dict[str, torch.Tensor], training: bool) -> None:
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    assert all(p.grad is None for p in model.parameters())
    assert model.training == training


class _SmallNet(nn.Module):
    """Conv variety (stride, dilation, groups, 'same' and reflect padding, non-square kernels,
    Conv1d), BN in 1d and 2d, an in-place ReLU right after a conv, a reused module, Linear on 3-D
    input, and two Linear layers sharing one weight."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8, eps=1e-3)
        self.c2 = nn.Conv2d(8, 8, 3, dilation=2, padding="same", padding_mode="reflect")
        self.c3 = nn.Conv2d(8, 8, 3, groups=2, padding=1)
        self.c6 = nn.Conv2d(8, 8, (3, 5), padding=(2, 1), dilation=(2, 1))  # non-square, shrinks W by 2
        self.c4 = nn.Conv2d(8, 8, 1)  # used twice
        self.bn2 = nn.BatchNorm2d(8)
        self.c5 = nn.Conv1d(8, 6, 3, stride=2, padding=1)
        self.bn3 = nn.BatchNorm1d(6)
        self.tok = nn.Linear(6, 6)
        self.fa = nn.Linear(6, 6, bias=False)
        self.fb = nn.Linear(6, 6)
        self.fb.weight = self.fa.weight  # tied
        self.head = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.c1(x)))
        x = torch.relu_(self.c2(x))  # in place, right on the conv output
        x = self.c6(self.c3(x))
        x = self.bn2(self.c4(F.relu(self.c4(x))))
        x = x.flatten(2)  # (B, 8, H*W)
        x = F.relu(self.bn3(self.c5(x)))  # (B, 6, L)
        x = self.tok(x.transpose(1, 2)).mean(1)  # Linear on (B, L, 6)
        x = torch.tanh(self.fb(torch.tanh(self.fa(x))))
        return self.head(x)


# ----------------------------------------------------------------------------- BatchNorm swap


@pytest.mark.parametrize(
    ("bn", "shape"),
    [
        (nn.BatchNorm1d(4, eps=1e-3), (5, 4, 7)),
        (nn.BatchNorm2d(4, eps=0.1), (5, 4, 3, 6)),
        (nn.BatchNorm3d(4), (5, 4, 2, 3, 2)),
    ],
)
def test_batchnorm_on_one_sample_is_instancenorm(bn: nn.Module, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    bn.train()
    norm = batchnorm_as_instancenorm(bn)
    assert isinstance(norm, nn.modules.instancenorm._InstanceNorm)
    assert norm.weight is bn.weight and norm.bias is bn.bias and norm.eps == bn.eps  # shared, not copied
    x = torch.randn(shape, dtype=torch.float64) * 3 + 1
    bn.double()
    up = torch.randn(shape, dtype=torch.float64)

    x1 = x.clone().requires_grad_(True)
    out_in = norm(x1)
    gx_in, gw_in, gb_in = torch.autograd.grad((out_in * up).sum(), [x1, bn.weight, bn.bias])
    gw_bn = torch.zeros_like(bn.weight)
    gb_bn = torch.zeros_like(bn.bias)
    for i in range(shape[0]):
        xi = x[i : i + 1].clone().requires_grad_(True)
        out_i = bn(xi)
        torch.testing.assert_close(out_i, out_in[i : i + 1], rtol=1e-12, atol=1e-12)
        gx, gw, gb = torch.autograd.grad((out_i * up[i : i + 1]).sum(), [xi, bn.weight, bn.bias])
        torch.testing.assert_close(gx, gx_in[i : i + 1], rtol=1e-10, atol=1e-12)
        gw_bn += gw
        gb_bn += gb
    torch.testing.assert_close(gw_bn, gw_in, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gb_bn, gb_in, rtol=1e-10, atol=1e-12)


def test_replace_modules_reaches_every_container_once() -> None:
    shared = nn.BatchNorm2d(3)
    inner = nn.ModuleDict({"a": nn.Sequential(nn.Conv2d(3, 3, 1), shared), "b_x": shared})
    root = nn.Module()
    root.layers = inner
    root.more = nn.ModuleList([nn.BatchNorm1d(2), nn.ReLU()])
    calls: list[nn.Module] = []

    def swap(m: nn.Module) -> nn.Module | None:
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            calls.append(m)
        return batchnorm_as_instancenorm(m)

    assert replace_modules(root, swap) is root
    assert len(calls) == 2  # the shared BN once
    assert isinstance(inner["a"][1], nn.InstanceNorm2d)
    assert inner["a"][1] is inner["b_x"]  # one shared replacement
    assert list(inner.keys()) == ["a", "b_x"]
    assert isinstance(root.more[0], nn.InstanceNorm1d)
    assert isinstance(replace_batchnorm(nn.BatchNorm2d(2)), nn.InstanceNorm2d)  # the root itself


def test_graph_module_batchnorms_are_swapped() -> None:
    gm = NB201Space(c=8, n=1).to_graph(parse_arch(ARCHS[0])).to_torch(seed=0)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in gm.modules())
    assert n_bn > 0
    replace_batchnorm(gm)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gm.modules())
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in gm.modules()) == n_bn


# ----------------------------------------------------------------------------- per-sample gradients


@pytest.mark.parametrize(
    ("conv", "shape"),
    [
        (nn.Conv2d(4, 6, 3, padding=1), (3, 4, 6, 6)),  # small stride-1 map: shifted windows
        (nn.Conv2d(4, 6, 3, padding=1), (3, 4, 16, 12)),  # larger map: the grouped weight gradient
        (nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2), (3, 4, 11, 9)),  # strided, dilated
        (nn.Conv2d(6, 6, 5, stride=2, padding=2, groups=6), (3, 6, 9, 9)),  # depthwise
        (nn.Conv2d(6, 4, 1), (3, 6, 5, 5)),  # 1x1: a batched matmul
        (nn.Conv1d(4, 6, 3, stride=2, padding=1), (3, 4, 20)),
        (nn.Conv3d(4, 6, 3, padding=(1, 0, 1), groups=2), (3, 4, 5, 6, 5)),
    ],
)
def test_each_conv_gradient_path_equals_the_loop(conv: nn.Module, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(conv, nn.Flatten(), nn.LazyLinear(3)).double()
    x = torch.randn(shape, dtype=torch.float64)
    net(x)  # materialize the lazy layer
    labels = torch.tensor([0, 2, 1])
    loop = per_sample_grads(net, x, labels, method="loop")
    hooks = per_sample_grads(net, x, labels, method="hooks")
    assert _max_rel_err(loop, hooks) < 1e-10
    assert all(g.is_contiguous() for g in hooks.values())


def test_hooks_equal_loop_on_a_varied_net() -> None:
    torch.manual_seed(0)
    net = _SmallNet()
    batch = _batch(6, size=12, classes=5)
    before = _state(net)
    loop = per_sample_grads(net, batch.images, batch.labels, method="loop")
    hooks = per_sample_grads(net, batch.images, batch.labels, method="hooks")
    _assert_unchanged(net, before, training=True)
    assert list(loop) == [n for n, _ in net.named_parameters() if n.endswith("weight") and "bn" not in n]
    assert "fb.weight" not in loop  # tied: one entry, under the first name
    for k in loop:
        assert loop[k].shape == (6, *dict(net.named_parameters())[k].shape)
        torch.testing.assert_close(hooks[k], loop[k], rtol=1e-4, atol=1e-5)
    # float64: the two computations are the same up to round-off, for either objective
    net64 = _SmallNet().double()
    for objective in ("logit_sum", "cross_entropy"):
        loop = per_sample_grads(net64, batch.images.double(), batch.labels, method="loop", objective=objective)
        hooks = per_sample_grads(net64, batch.images.double(), batch.labels, method="hooks", objective=objective)
        assert _max_rel_err(loop, hooks) < 1e-10
    # per-sample gradients sum to the batch gradient of the summed loss (computed with BN swapped)
    ref = replace_batchnorm(net64)
    F.cross_entropy(ref(batch.images.double()), batch.labels, reduction="sum").backward()
    params = dict(ref.named_parameters())
    for k, g in hooks.items():
        torch.testing.assert_close(g.sum(0), params[k].grad, rtol=1e-10, atol=1e-12)


def test_hooks_equal_loop_on_nb201_float32() -> None:
    batch = _batch(8)
    for arch in WELL_CONDITIONED:
        net = _nb201(arch)
        loop = per_sample_grads(net, batch.images, batch.labels, method="loop")
        hooks = per_sample_grads(net, batch.images, batch.labels, method="hooks")
        assert _max_rel_err(loop, hooks) < 1e-4
        for k in loop:
            torch.testing.assert_close(hooks[k], loop[k], rtol=1e-4, atol=1e-5)
        assert gradsign_from_grads(hooks) == pytest.approx(gradsign_from_grads(loop), rel=1e-4)
        assert GradSign().score(net, batch) == gradsign_from_grads(hooks)  # the proxy is this, deterministically


@pytest.mark.parametrize("graph_module", [False, True])
def test_hooks_equal_loop_on_nb201_float64(graph_module: bool) -> None:
    batch = _batch(8)
    for arch in ARCHS[:2]:
        if graph_module:  # the IR's module: BN inside a ModuleDict, convs behind the graph plan
            net = NB201Space(c=8, n=1).to_graph(parse_arch(arch)).to_torch(seed=0).double()
        else:
            net = _nb201(arch, small=True, dtype=torch.float64)
        loop = per_sample_grads(net, batch.images.double(), batch.labels, method="loop")
        hooks = per_sample_grads(net, batch.images.double(), batch.labels, method="hooks")
        assert _max_rel_err(loop, hooks) < 1e-10


def test_weight_shared_with_another_kind_of_module() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 3, bias=False), nn.Linear(3, 3))
    net[2].weight = net[1].weight  # Linear/Linear tie: fine, checked above
    holder = nn.Module()
    holder.w = net[1].weight  # also registered on a module the hooks do not watch
    net.holder = holder  # type: ignore[assignment]
    net.forward = lambda x: net[2](net[1](net[0](x)))  # type: ignore[method-assign]
    batch = _batch(4, size=1, classes=3)
    with pytest.raises(ProxyError, match="method='loop'"):
        per_sample_grads(net, batch.images, batch.labels, method="hooks")
    grads = per_sample_grads(net, batch.images, batch.labels, method="loop")
    assert list(grads) == ["1.weight"]


def test_per_sample_errors() -> None:
    batch = _batch(4, size=1, classes=2)
    bn_on_1x1 = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    for method in ("hooks", "loop"):
        with pytest.raises(ProxyError, match="more than one value per channel"):
            per_sample_grads(bn_on_1x1, batch.images, batch.labels, method=method)
    with pytest.raises(ProxyError, match="unknown per-sample gradient method"):
        per_sample_grads(bn_on_1x1, batch.images, batch.labels, method="vmap")
    with pytest.raises(ProxyError, match="logits of shape"):
        per_sample_grads(nn.Sequential(nn.Conv2d(3, 2, 1)), batch.images, batch.labels)
    with pytest.raises(ProxyError, match="outputs"):
        per_sample_grads(nn.Sequential(nn.Flatten(), nn.Linear(3, 1)), batch.images, batch.labels)


# ----------------------------------------------------------------------------- GradSign


def _linear_batch() -> tuple[nn.Module, Batch]:
    """A bias-free Linear(3 -> 2) at W = 0: softmax is (1/2, 1/2), so g_i = (p - e_{y_i}) x_iᵀ."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        net[1].weight.zero_()
    x = torch.tensor([[1.0, 2.0, 0.0], [1.0, -1.0, 0.0], [-1.0, 3.0, 0.0]]).reshape(3, 3, 1, 1)
    y = torch.tensor([0, 1, 0])
    return net, Batch(images=x, labels=y, num_classes=2, source="hand", seed=0)


def test_gradsign_by_hand() -> None:
    net, batch = _linear_batch()
    # p - e_y is (-1/2, 1/2) for class 0 and (1/2, -1/2) for class 1, so sign(g_i) = sign(p - e_y) sign(x_i)ᵀ:
    #   row 0 votes: column 0: -, +, +  -> |1|;  column 1: -, -, -  -> |-3|;  column 2: 0 (x = 0)
    #   row 1 votes: column 0: +, -, -  -> |-1|; column 1: +, +, +  -> |3|;   column 2: 0
    for method in ("hooks", "loop"):
        assert GradSign(method=method).score(net, batch) == 8.0
        assert GradSign(method=method, aggregate="mean").score(net, batch) == pytest.approx(8.0 / 6.0)
    assert torch.count_nonzero(net[1].weight) == 0  # not mutated


def test_gradsign_hooks_equal_loop_on_nb201() -> None:
    batch = _batch(8)
    x = batch.images.double()  # Batch holds float32; the float64 comparison goes through the helpers
    hooks, loop = [], []
    for seed, arch in enumerate(ARCHS):
        net = _nb201(arch, small=True, dtype=torch.float64, seed=seed)
        hooks.append(gradsign_from_grads(per_sample_grads(net, x, batch.labels, method="hooks")))
        loop.append(gradsign_from_grads(per_sample_grads(net, x, batch.labels, method="loop")))
    assert np.allclose(hooks, loop, rtol=1e-4, atol=0)
    assert list(np.argsort(hooks)) == list(np.argsort(loop))
    assert spearmanr(hooks, loop).statistic == pytest.approx(1.0)


# ----------------------------------------------------------------------------- LGA


def _lga_numpy(theta: np.ndarray, labels: np.ndarray) -> float:
    n = len(labels)
    h = np.eye(n) - np.ones((n, n)) / n
    y = np.where(labels[:, None] == labels[None, :], 1.0, -1.0)
    tc, yc = h @ theta @ h, h @ y @ h
    return float((tc * yc).sum() / (np.linalg.norm(tc) * np.linalg.norm(yc)))


def test_lga_on_a_linear_model_equals_the_formula() -> None:
    # Linear(3 -> 2) at W = 0: g_i = s_i u x_iᵀ with u = (-1/2, 1/2) and s_i = +1 for class 0, -1 for
    # class 1, so Θ_ij = <g_i, g_j> = s_i s_j |u|² <x_i, x_j> = s_i s_j <x_i, x_j> / 2.
    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        net[1].weight.zero_()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    s = 1.0 - 2.0 * y.double()
    theta = (s[:, None] * s[None, :]) * (x @ x.T) / 2
    expected = _lga_numpy(theta.numpy(), y.numpy())
    batch = Batch(images=x.float().reshape(6, 3, 1, 1), labels=y, num_classes=2, source="hand", seed=0)
    for method in ("hooks", "loop"):
        assert LGA(method=method, gradient="loss").score(net, batch) == pytest.approx(expected, rel=1e-5)
    # gradient="logits": the gradient of f_0 + f_1 is 1 x_iᵀ, so Θ_ij = 2 <x_i, x_j>
    expected = _lga_numpy((2 * x @ x.T).numpy(), y.numpy())
    for method in ("hooks", "loop"):
        assert LGA(gradient="logits", method=method).score(net, batch) == pytest.approx(expected, rel=1e-5)
    # identical inputs: with the loss, Θ ∝ s sᵀ, which for two classes is the label kernel itself;
    # with the logits every g_i is the same, the centred kernel vanishes and there is no alignment
    same = Batch(images=torch.ones(4, 3, 1, 1), labels=torch.tensor([0, 1, 1, 0]), num_classes=2, source="h", seed=0)
    assert LGA(gradient="loss").score(net, same) == pytest.approx(1.0, abs=1e-12)
    assert LGA(gradient="logits").score(net, same) == 0.0


def test_lga_helpers() -> None:
    k = torch.randn(5, 5, dtype=torch.float64)
    h = torch.eye(5, dtype=torch.float64) - 1 / 5
    torch.testing.assert_close(center(k), h @ k @ h)
    grads = {"w": torch.randn(5, 2, 3, dtype=torch.float64)}
    labels = torch.tensor([0, 1, 2, 1, 0])
    flat = grads["w"].reshape(5, -1)
    assert lga_from_grads(grads, labels) == pytest.approx(_lga_numpy((flat @ flat.T).numpy(), labels.numpy()))
    assert lga_from_grads({"w": torch.zeros(5, 3)}, labels) == 0.0  # no gradient, no alignment
    with pytest.raises(ProxyError, match="two classes"):
        lga_from_grads(grads, torch.zeros(5, dtype=torch.int64))


def test_lga_training_is_deterministic_and_leaves_the_model_alone() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 4),
    )
    net.eval()
    batch = _batch(8, size=8, classes=4)
    before = _state(net)
    at_init = LGA().score(net, batch)
    trained = LGA(train_steps=5, lr=0.05, seed=1).score(net, batch)
    _assert_unchanged(net, before, training=False)
    assert trained == LGA(train_steps=5, lr=0.05, seed=1).score(net, batch)
    assert trained != at_init
    assert trained != LGA(train_steps=5, lr=0.05, seed=2).score(net, batch)  # other mini-batches
    assert trained == pytest.approx(LGA(train_steps=5, lr=0.05, seed=1, method="loop").score(net, batch), rel=1e-4)
    assert -1.0 <= trained <= 1.0


# ----------------------------------------------------------------------------- both proxies


def test_registered() -> None:
    assert isinstance(PROXIES.resolve("gradsign"), GradSign)
    lga = PROXIES.resolve("lga", train_steps=3)
    assert isinstance(lga, LGA) and lga.train_steps == 3
    for p in (GradSign(), LGA()):
        assert p.higher_is_better is True
        assert PROXIES.get(p.name) is type(p)


def test_degenerate_nb201_cell_scores_zero() -> None:
    net = _nb201(DEGENERATE, small=True)
    batch = _batch(8)
    assert GradSign().score(net, batch) == 0.0
    assert LGA().score(net, batch) == 0.0


@pytest.mark.parametrize("proxy", [GradSign(), LGA(), LGA(train_steps=1)])
def test_proxy_errors(proxy: GradSign | LGA) -> None:
    batch = _batch(4, size=4, classes=2)
    with pytest.raises(ProxyError, match="Conv or Linear"):
        proxy.score(nn.Sequential(nn.Flatten()), batch)
    nan_net = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    with torch.no_grad():
        nan_net[1].weight.fill_(float("nan"))
    with pytest.raises(ProxyError, match=proxy.name):
        proxy.score(nan_net, batch)
    with pytest.raises(ProxyError, match=f"proxy '{proxy.name}'.*more than one value"):
        proxy.score(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3, 2)), batch)


def test_bad_settings() -> None:
    with pytest.raises(ProxyError):
        GradSign(method="vmap")  # type: ignore[arg-type]
    with pytest.raises(ProxyError):
        GradSign(aggregate="max")  # type: ignore[arg-type]
    with pytest.raises(ProxyError):
        LGA(train_steps=-1)
    with pytest.raises(ProxyError):
        LGA(train_batch_size=1)
    with pytest.raises(ProxyError):
        LGA(gradient="input")  # type: ignore[arg-type]
    with pytest.raises(ProxyError, match="two classes"):
        LGA().score(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)), Batch(
            images=torch.randn(3, 3, 1, 1), labels=torch.zeros(3, dtype=torch.int64), num_classes=2, source="t", seed=0
        ))


@pytest.mark.parametrize("method", ["hooks", "loop"])
def test_several_objectives_in_one_pass_equal_one_at_a_time(method) -> None:
    from proxies.per_sample import per_sample_grads_many

    batch = _batch()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    both = per_sample_grads_many(net, batch.images, batch.labels, method=method,
                                 objectives=("cross_entropy", "logit_sum"))
    for objective, grads in both.items():
        alone = per_sample_grads(net, batch.images, batch.labels, method=method, objective=objective)
        assert list(grads) == list(alone)
        for name in alone:
            torch.testing.assert_close(grads[name], alone[name], rtol=1e-5, atol=1e-7)
    assert not torch.allclose(both["cross_entropy"]["5.weight"], both["logit_sum"]["5.weight"])
    with pytest.raises(ProxyError, match="objective"):
        per_sample_grads_many(net, batch.images, batch.labels, objectives=("mse",))
