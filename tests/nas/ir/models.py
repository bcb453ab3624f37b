"""Small, self-contained reference models for the IR tests (no torchvision).

Each family is written from scratch so that the ops it exports are known: a ResNet (Conv, BatchNorm,
MaxPool, strided 1x1 shortcut, global pooling, Linear), a MobileNetV2 (depthwise convolution, ReLU6,
Hardswish, SiLU, squeeze-excite with Hardsigmoid and a broadcast multiply) and a ViT-style transformer
(patch embedding, position embedding, LayerNorm, hand-written multi-head attention, GELU MLP).
The ``make_*`` factories fix small sizes so that an ONNX export plus import takes well under a second.
All models take ``(batch, 3, 32, 32)`` images, keep the batch as the leading dimension of every
intermediate tensor, and return ``(batch, num_classes)`` logits.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10


# --------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    """Two 3x3 conv-bn (ReLU between), plus the input; a strided 1x1 conv-bn shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetLike(nn.Module):
    """Stem conv-bn-relu, 3x3/2 max pool, BasicBlocks, global average pool, flatten, linear."""

    def __init__(self, widths: tuple[int, ...] = (8, 8, 16), num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        c0 = widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(3, c0, 3, padding=1, bias=False), nn.BatchNorm2d(c0), nn.ReLU()
        )
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        blocks = []
        c_prev = c0
        for i, c in enumerate(widths):
            # The first block keeps the shape (identity shortcut), later ones widen and halve it.
            blocks.append(BasicBlock(c_prev, c, stride=1 if i == 0 else 2))
            c_prev = c
        self.blocks = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_prev, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.pool(self.stem(x)))
        return self.fc(self.avgpool(x).flatten(1))  # (B, C, 1, 1) -> (B, C)


def make_resnet() -> ResNetLike:
    """Three BasicBlocks (identity, then strided 1x1 shortcuts), widths 8-8-16."""
    return ResNetLike((8, 8, 16))


# --------------------------------------------------------------------------- MobileNetV2


class SqueezeExcite(nn.Module):
    """Global average pool, 1x1 reduce conv, SiLU, 1x1 expand conv, Hardsigmoid, channel-wise multiply.

    SiLU rather than ReLU inside (as in EfficientNet): with few, pooled inputs a ReLU here is easily dead
    for a whole batch, which would leave the reduce conv without gradient.
    """

    def __init__(self, c: int, reduced: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(c, reduced, 1)
        self.act = nn.SiLU()
        self.expand = nn.Conv2d(reduced, c, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        s = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))  # (B, C, 1, 1)
        return x * s


class InvertedResidual(nn.Module):
    """1x1 expand conv-bn-ReLU6, 3x3 depthwise conv-bn-ReLU6, optional SE, 1x1 project conv-bn;
    the input is added back when the stride is 1 and the channels agree."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int, se: bool = False) -> None:
        super().__init__()
        hidden = c_in * expand
        self.use_residual = stride == 1 and c_in == c_out
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
        ]
        if se:
            layers.append(SqueezeExcite(hidden, max(hidden // 4, 4)))
        layers += [nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        return x + out if self.use_residual else out


class MobileNetV2Like(nn.Module):
    """Stem conv-bn-Hardswish, inverted residual blocks (one with SE), 1x1 conv-bn-SiLU head,
    global average pool, linear."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.Hardswish()
        )
        self.blocks = nn.Sequential(
            InvertedResidual(8, 8, stride=1, expand=2),  # residual
            InvertedResidual(8, 16, stride=2, expand=3, se=True),
            InvertedResidual(16, 16, stride=1, expand=2),  # residual
        )
        self.head = nn.Sequential(nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32), nn.SiLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(self.pool(x).flatten(1))  # (B, C, 1, 1) -> (B, C)


def make_mobilenet() -> MobileNetV2Like:
    return MobileNetV2Like()


# --------------------------------------------------------------------------- transformer


class Attention(nn.Module):
    """Multi-head self-attention written out: one qkv Linear, scaled dot product, softmax, projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        # Keep the batch leading throughout, so the graph also runs on other batch sizes.
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim)  # (B, N, 3, H, D)
        qkv = qkv.permute(0, 2, 3, 1, 4)  # (B, 3, H, N, D)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]  # each (B, H, N, D)
        attn = (q @ k.transpose(-2, -1)) * self.scale  # (B, H, N, N)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)  # (B, H, N, D) -> (B, N, H, D) -> (B, N, C)
        return self.proj(out)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x)) with a GELU MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyTransformer(nn.Module):
    """Patch-embedding conv, tokens, learnable position embedding, pre-norm blocks, final LayerNorm,
    mean over tokens, linear head."""

    def __init__(
        self, dim: int = 32, depth: int = 2, heads: int = 4, patch: int = 8, num_classes: int = NUM_CLASSES
    ) -> None:
        super().__init__()
        n_tokens = (INPUT_SHAPE[1] // patch) * (INPUT_SHAPE[2] // patch)
        self.patch_embed = nn.Conv2d(INPUT_SHAPE[0], dim, patch, stride=patch)
        self.pos_embed = nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, n_tokens, dim), std=0.02))
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)  # (B, C, h, w)
        x = x.flatten(2).transpose(1, 2)  # (B, C, h*w) -> (B, N, C)
        x = x + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x.mean(dim=1))  # (B, N, C) -> (B, C)


def make_transformer() -> TinyTransformer:
    """dim 32, 2 blocks, 4 heads, 8x8 patches (16 tokens)."""
    return TinyTransformer(dim=32, depth=2, heads=4, patch=8)
