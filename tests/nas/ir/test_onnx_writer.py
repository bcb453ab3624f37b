"""The structure-only ONNX writer that the spaces' direct builders share."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch

from nas.ir import ArchGraph
from nas.ir.onnx_writer import OnnxWriter


def _tiny(batch: int = 1) -> onnx.ModelProto:
    """conv 3x3 (3 -> 8) -> BN -> ReLU -> depthwise 3x3 stride 2 -> x * 0 + pool -> GAP -> classifier (10)."""
    w = OnnxWriter()
    x = w.node("Relu", [w.batch_norm(w.conv("input", 3, 8, 3, pad=1), 8)])
    d = w.conv(x, 8, 8, 3, stride=2, pad=1, groups=8)
    zero = w.node("Mul", [d, w.const(0.0, np.float32)])
    pool = w.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    s = w.node("Add", [zero, pool])
    w.gemm_output(w.node("GlobalAveragePool", [s]), 8, 10, name="head")
    return w.model("tiny", [batch, 3, 16, 16], [batch, 10])


def _reference() -> torch.nn.Module:
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.nn.BatchNorm2d(8),
                                            torch.nn.ReLU())
            self.dw = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
            self.pool = torch.nn.MaxPool2d(3, stride=2, padding=1)
            self.gap = torch.nn.AdaptiveAvgPool2d(1)
            self.fc = torch.nn.Linear(8, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.stem(x)
            y = self.dw(x) * 0.0 + self.pool(x)
            return self.fc(self.gap(y).flatten(1))

    return Net()


def test_names_are_fresh_and_the_model_is_valid() -> None:
    model = _tiny()
    onnx.checker.check_model(model, full_check=True)
    g = model.graph
    outputs = [o for n in g.node for o in n.output]
    names = outputs + [i.name for i in g.input] + [t.name for t in g.initializer]
    assert len(names) == len(set(names))  # every tensor name is used once
    assert g.node[-1].name == "head" and g.node[-1].output == ["output"]
    assert [i.name for i in g.input][:1] == ["input"] and not any(t.dims for t in g.initializer)  # weights: inputs
    bn = next(n for n in g.node if n.op_type == "BatchNormalization")
    assert [name.split("_")[0] for name in bn.input[1:]] == ["scale", "bias", "mean", "var"]


def test_the_graph_equals_the_module_it_describes() -> None:
    """The writer's graph and the export of the same network: one fingerprint, the same parameter count."""
    graph = ArchGraph.from_onnx(_tiny())
    net = _reference()
    exported = ArchGraph.from_module(net, torch.zeros(1, 3, 16, 16))
    assert graph.fingerprint() == exported.fingerprint()
    assert graph.params == sum(p.numel() for p in net.parameters()) == exported.params
    ops = graph.summary()["op_counts"]
    assert "Mul" not in ops and ops["Conv"] == 2  # the zero edge is dropped, the depthwise conv kept


def test_runs_in_onnxruntime_when_the_weights_are_fed() -> None:
    sess = ort.InferenceSession(_tiny(batch=2).SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.ones(i.shape, np.float32) for i in sess.get_inputs()}
    feeds["input"] = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    (out,) = sess.run(None, feeds)
    assert out.shape == (2, 10) and np.isfinite(out).all()
