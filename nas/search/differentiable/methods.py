"""The search methods: how each step mixes the ops and how the architecture gradient is computed.

* **DARTS** (Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019): every
  op runs, weighted by ``softmax(alpha)``. First order (``darts``): the architecture step takes
  ``grad_alpha L_val(w, alpha)``. Second order (``darts2``): the gradient at the unrolled weights
  ``w' = w - xi * grad_w L_train(w, alpha)``, ``grad_alpha L_val(w', alpha) - xi * grad^2_{alpha,w}
  L_train(w, alpha) grad_w' L_val(w', alpha)``, the Hessian-vector product by the paper's central
  finite difference with ``eps = 0.01 / ||grad_w' L_val||`` (its eq. 8). Choice: the virtual step
  is plain SGD with weight decay at the current weight learning rate (DARTS also folds in the
  momentum buffer).
* **GDAS** (Dong & Yang, "Searching for a Robust Neural Architecture in Four GPU Hours", CVPR 2019):
  per row one op drawn by Gumbel-max from ``(alpha + g) / tau``; the forward runs that op only,
  multiplied by the straight-through weight ``h = onehot - stopgrad(softmax) + softmax``, so the
  architecture gradient flows through the Gumbel softmax. ``tau`` falls linearly from ``tau_max``
  to ``tau_min`` (10 to 0.1 in the paper) over the epochs. Weights and architecture alternate on
  the train and validation halves, as in DARTS's first order.
* **ProxylessNAS** (Cai, Zhu & Han, "ProxylessNAS: Direct Neural Architecture Search on Target Task
  and Hardware", ICLR 2019): binarized paths. A weight step samples one op per row from
  ``p = softmax(alpha)`` and runs only it (memory of one path). An architecture step samples two
  distinct ops per row (the paper's memory-saving variant), makes one of them active by their
  renormalized probabilities, runs both with binary gates ``g`` (1 on the active op, 0 on the
  other), and turns the gate gradients into logit gradients with the paper's estimator
  ``dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i)`` over the two sampled ops; after the update the
  two logits are shifted together so that their total probability mass is unchanged (the paper's
  rescaling, which leaves the unsampled ops' probabilities as they were).

The latency term ``lambda * E[lat]``, ``E[lat] = fixed + sum_rows sum_i p_i lat_i``, is differentiable
in ``alpha`` through ``p = softmax(alpha)`` for every method (ProxylessNAS's eq. for the expected
latency); with a budget ``T`` it becomes ``lambda * max(E[lat] - T, 0)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.search.differentiable.supernet import Plan, Supernet

__all__ = ["METHODS", "ArchState", "Method", "argmax_plan", "mixed_plan"]

METHODS: tuple[str, ...] = ("darts", "darts2", "gdas", "proxyless")


class ArchState(nn.Module):
    """The architecture logits of a supernet, one ``(rows, ops)`` parameter per group, initialized
    ``1e-3 * N(0, 1)`` from ``generator`` (DARTS's initialization); invalid entries are masked."""

    def __init__(self, supernet: Supernet, generator: torch.Generator) -> None:
        super().__init__()
        self.alphas = nn.ParameterDict({
            g: nn.Parameter(1e-3 * torch.randn(shape, generator=generator)) for g, shape in supernet.shapes().items()
        })
        for g, v in supernet.valid.items():
            self.register_buffer(f"valid_{g}", v.clone())

    def valid(self, g: str) -> Tensor:
        out: Tensor = getattr(self, f"valid_{g}")
        return out

    def logits(self, g: str) -> Tensor:
        return self.alphas[g].masked_fill(~self.valid(g), float("-inf"))

    def probs(self, g: str) -> Tensor:
        return F.softmax(self.logits(g), dim=-1)

    def groups(self) -> list[str]:
        return list(self.alphas.keys())


def mixed_plan(arch: ArchState, override: dict[tuple[str, int], Tensor] | None = None) -> Plan:
    """DARTS's plan: every valid op active with weight ``softmax(alpha)``; ``override`` replaces the
    weight vector of chosen rows (DARTS-PT's projection and op removal), without renormalizing."""
    weights, active = {}, {}
    for g in arch.groups():
        w = arch.probs(g)
        valid = arch.valid(g)
        if override:
            rows = [r for (gg, r) in override if gg == g]
            if rows:
                w = w.clone()
                for r in rows:
                    w[r] = override[(g, r)]
        weights[g] = w
        act = []
        for r in range(w.shape[0]):
            ov = override.get((g, r)) if override else None
            act.append([i for i in range(w.shape[1]) if bool(valid[r, i]) and (ov is None or float(ov[i]) != 0.0)])
        active[g] = act
    return Plan(weights, active)


def argmax_plan(arch: ArchState, ops: dict[str, list[int]] | None = None) -> Plan:
    """The single-path plan of the argmax (or given) op per row, weights 1 (the derived network)."""
    weights, active = {}, {}
    for g in arch.groups():
        idx = ops[g] if ops is not None else arch.logits(g).argmax(dim=-1).tolist()
        weights[g] = torch.ones(arch.alphas[g].shape)
        active[g] = [[int(i)] for i in idx]
    return Plan(weights, active)


def gumbel_plan(arch: ArchState, tau: float, generator: torch.Generator) -> Plan:
    """GDAS: hard Gumbel-softmax with a straight-through gradient; one active op per row."""
    weights, active = {}, {}
    for g in arch.groups():
        logits = arch.logits(g)
        u = torch.rand(logits.shape, generator=generator).clamp_(1e-10, 1 - 1e-10)
        gumbel = -torch.log(-torch.log(u))
        soft = F.softmax((logits + gumbel) / tau, dim=-1)
        idx = soft.argmax(dim=-1)
        hard = F.one_hot(idx, logits.shape[-1]).to(soft.dtype)
        weights[g] = hard - soft.detach() + soft
        active[g] = [[int(i)] for i in idx]
    return Plan(weights, active)


def sample_plan(arch: ArchState, generator: torch.Generator) -> Plan:
    """ProxylessNAS's weight step: one op per row drawn from ``softmax(alpha)``, weight 1, no gradient."""
    weights, active = {}, {}
    for g in arch.groups():
        with torch.no_grad():
            p = arch.probs(g)
            idx = torch.multinomial(p, 1, generator=generator).squeeze(1)
        weights[g] = torch.ones(p.shape)
        active[g] = [[int(i)] for i in idx]
    return Plan(weights, active)


@dataclass
class BinaryGates:
    """ProxylessNAS's two-path architecture step: per group the gate leaf ``(rows, ops)``, the two
    sampled op indices per row and their renormalized probabilities."""

    plan: Plan
    gates: dict[str, Tensor]
    pairs: dict[str, Tensor]  # (rows, 2) long


def binary_gate_plan(arch: ArchState, generator: torch.Generator) -> BinaryGates:
    gates, pairs, active = {}, {}, {}
    for g in arch.groups():
        with torch.no_grad():
            p = arch.probs(g)
            pair = torch.multinomial(p, 2, replacement=False, generator=generator)  # (rows, 2)
            pp = F.softmax(torch.gather(arch.logits(g), 1, pair), dim=-1)  # renormalized over the pair
            pick = torch.multinomial(pp, 1, generator=generator).squeeze(1)  # (rows,) 0 or 1
            on = torch.gather(pair, 1, pick[:, None]).squeeze(1)
            gate = F.one_hot(on, p.shape[-1]).to(p.dtype)
        gate.requires_grad_(True)
        gates[g], pairs[g] = gate, pair
        active[g] = [[int(a), int(b)] for a, b in pair.tolist()]
    return BinaryGates(Plan(dict(gates), active), gates, pairs)


def proxyless_alpha_grad(arch: ArchState, bg: BinaryGates) -> dict[str, Tensor]:
    """``dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i)`` over each row's two sampled ops
    (ProxylessNAS, Sec. 3.2.1), ``p`` renormalized over the pair; zero elsewhere."""
    out = {}
    for g in arch.groups():
        gate_grad = bg.gates[g].grad
        grad = torch.zeros_like(arch.alphas[g])
        if gate_grad is None:
            out[g] = grad
            continue
        pair = bg.pairs[g]
        with torch.no_grad():
            pp = F.softmax(torch.gather(arch.logits(g), 1, pair), dim=-1)  # (rows, 2)
            gg = torch.gather(gate_grad, 1, pair)  # (rows, 2)
            eye = torch.eye(2)
            # (rows, i, j): gg_j * p_j * (delta_ij - p_i), summed over j
            jac = (eye[None] - pp[:, :, None]) * (pp * gg)[:, None, :]
            grad.scatter_(1, pair, jac.sum(-1))
        out[g] = grad
    return out


def proxyless_rescale(arch: ArchState, pairs: dict[str, Tensor], before: dict[str, Tensor]) -> None:
    """Shift each row's two updated logits by ``log(sum exp(old) / sum exp(new))`` over the pair, so
    the pair's total probability, and so every other op's probability, is what it was."""
    with torch.no_grad():
        for g, pair in pairs.items():
            a = arch.alphas[g]
            old = torch.gather(before[g], 1, pair)
            new = torch.gather(a, 1, pair)
            offset = torch.logsumexp(old, dim=1) - torch.logsumexp(new, dim=1)  # (rows,)
            a.scatter_(1, pair, new + offset[:, None])


LossFn = Callable[[Plan, Tensor, Tensor], Tensor]


class Method:
    """One search method's weight and architecture steps. Built by :func:`make_method`.

    ``latency_loss(arch) -> Tensor`` is the differentiable latency term (zero without one).
    """

    def __init__(self, name: str, supernet: Supernet, arch: ArchState, generator: torch.Generator,
                 latency_loss: Callable[[ArchState], Tensor], grad_clip: float = 5.0) -> None:
        self.name, self.net, self.arch, self.gen = name, supernet, arch, generator
        self.latency_loss = latency_loss
        self.grad_clip = grad_clip
        self.tau = 10.0

    def _ce(self, plan: Plan, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(self.net(x, plan), y)

    def train_plan(self) -> Plan:
        if self.name in ("darts", "darts2"):
            return mixed_plan(self.arch)
        if self.name == "gdas":
            return gumbel_plan(self.arch, self.tau, self.gen)
        return sample_plan(self.arch, self.gen)

    def weight_step(self, opt: torch.optim.Optimizer, x: Tensor, y: Tensor) -> tuple[float, float]:
        """One SGD step of the supernet weights on a training batch; returns (loss, accuracy)."""
        opt.zero_grad(set_to_none=True)
        plan = self.train_plan()
        if self.name in ("darts", "darts2", "gdas"):
            plan = Plan({g: w.detach() for g, w in plan.weights.items()}, plan.active)
        logits = self.net(x, plan)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip)
        opt.step()
        return float(loss.detach()), float((logits.argmax(1) == y).float().mean())

    def arch_step(self, opt: torch.optim.Optimizer, xt: Tensor, yt: Tensor, xv: Tensor, yv: Tensor,
                  w_lr: float, w_decay: float) -> tuple[float, float]:
        """One step of the architecture logits on a validation batch; returns (CE loss, latency term)."""
        opt.zero_grad(set_to_none=True)
        self.net.zero_grad(set_to_none=True)
        if self.name == "proxyless":
            before = {g: a.detach().clone() for g, a in self.arch.alphas.items()}
            bg = binary_gate_plan(self.arch, self.gen)
            loss = self._ce(bg.plan, xv, yv)
            loss.backward()
            grads = proxyless_alpha_grad(self.arch, bg)
            lat = self.latency_loss(self.arch)
            for g, a in self.arch.alphas.items():
                a.grad = grads[g]
            if lat.requires_grad:
                lat.backward()  # accumulates into alpha.grad
            opt.step()
            proxyless_rescale(self.arch, bg.pairs, before)
        elif self.name == "darts2":
            loss, lat = self._unrolled(xt, yt, xv, yv, w_lr, w_decay)
            opt.step()
        else:
            plan = self.train_plan()
            loss = self._ce(plan, xv, yv)
            lat = self.latency_loss(self.arch)
            (loss + lat).backward()
            opt.step()
        self.net.zero_grad(set_to_none=True)  # the weights' gradients of an arch step are not used
        return float(loss.detach()), float(lat.detach())

    def _unrolled(self, xt: Tensor, yt: Tensor, xv: Tensor, yv: Tensor, xi: float,
                  decay: float) -> tuple[Tensor, Tensor]:
        params = [p for p in self.net.parameters() if p.requires_grad]
        alphas = list(self.arch.alphas.values())
        backup = [p.detach().clone() for p in params]
        # w' = w - xi (grad_w L_train + decay w)
        lt = self._ce(mixed_plan(self.arch), xt, yt)
        gw = torch.autograd.grad(lt, params, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(params, gw, strict=True):
                if g is not None:
                    p.sub_(xi * (g + decay * p))
        lv = self._ce(mixed_plan(self.arch), xv, yv)
        lat = self.latency_loss(self.arch)
        grads = torch.autograd.grad(lv + lat, alphas + params, allow_unused=True)
        d_alpha = [g if g is not None else torch.zeros_like(a) for g, a in zip(grads[: len(alphas)], alphas,
                                                                                  strict=True)]
        d_w = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads[len(alphas):], params, strict=True)]
        norm = torch.sqrt(sum((g * g).sum() for g in d_w))  # type: ignore[arg-type]
        eps = 0.01 / float(norm.clamp_min(1e-12))

        def alpha_grad_at(sign: float) -> list[Tensor]:
            with torch.no_grad():
                for p, b, d in zip(params, backup, d_w, strict=True):
                    p.copy_(b + sign * eps * d)
            loss = self._ce(mixed_plan(self.arch), xt, yt)
            out = torch.autograd.grad(loss, alphas, allow_unused=True)
            return [g if g is not None else torch.zeros_like(a) for g, a in zip(out, alphas, strict=True)]

        g_pos = alpha_grad_at(+1.0)
        g_neg = alpha_grad_at(-1.0)
        with torch.no_grad():
            for p, b in zip(params, backup, strict=True):
                p.copy_(b)
        for a, da, gp, gn in zip(alphas, d_alpha, g_pos, g_neg, strict=True):
            a.grad = da - xi * (gp - gn) / (2 * eps)
        return lv.detach(), lat.detach()
