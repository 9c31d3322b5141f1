"""An example network for ``network = "models/tiny_vit.py:TinyViT"`` in a design file.

Any ``torch.nn.Module`` works the same way: the class is built with the design's ``params`` as
keyword arguments (on the meta device: no weights are allocated) and run once on an input of
shape ``(batch, *INPUT_SHAPE)``. ``scripts/make_example_onnx.py`` exports it to ``tiny_vit.onnx``.

A vision transformer for 32×32 images: a 4×4 patch-embedding conv (64 tokens), ``depth``
pre-norm blocks of multi-head attention (``F.scaled_dot_product_attention``) and a GELU MLP,
mean pooling over tokens and a linear classifier.
"""

import torch.nn.functional as F
from torch import nn

#: One sample's input (channels, height, width); the batch comes from the design.
INPUT_SHAPE = (3, 32, 32)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp)
        self.fc2 = nn.Linear(mlp, dim)

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class TinyViT(nn.Module):
    def __init__(self, dim: int = 64, depth: int = 2, heads: int = 4, mlp: int = 128, patch: int = 4,
                 classes: int = 10) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(self.blocks(x)).mean(dim=1))
