"""PyTorch module -> ONNX, through the TorchScript exporter.

The TorchScript exporter (``dynamo=False``) takes about half a second where the dynamo one takes
several. The module is exported in eval mode with ``TrainingMode.PRESERVE`` so that BatchNorm stays a
node of its own (the EVAL mode would fold it into the preceding Conv, changing the architecture),
then every submodule's train/eval flag is restored: the module is not mutated.
"""

from __future__ import annotations

import io
import warnings

import onnx
import torch
from torch import nn

from nas.errors import IRError

#: Opset used for export; 20 has native Gelu, LayerNormalization and HardSwish.
OPSET = 20


def export_onnx(module: nn.Module, example_input: torch.Tensor | tuple[torch.Tensor, ...]) -> onnx.ModelProto:
    """Export ``module`` traced on ``example_input`` to an ONNX ``ModelProto`` with static shapes."""
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    modes = {m: m.training for m in module.modules()}
    buf = io.BytesIO()
    try:
        module.eval()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                args,
                buf,  # type: ignore[arg-type]  # file objects are accepted
                dynamo=False,
                opset_version=OPSET,
                training=torch.onnx.TrainingMode.PRESERVE,
                do_constant_folding=True,
                input_names=[f"input{i}" if len(args) > 1 else "input" for i in range(len(args))],
                output_names=["output"],
            )
    except Exception as e:
        raise IRError(f"exporting {type(module).__name__} to ONNX failed: {e}") from e
    finally:
        for m, t in modes.items():
            m.training = t
    return onnx.load_from_string(buf.getvalue())
