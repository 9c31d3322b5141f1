"""Small networks for the importer tests: a UNet, a ViT, a factory, and one with an unsupported op.

MACs at batch 1 on INPUT_SHAPE, counted by hand in tests/test_import_torch.py.
"""

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SHAPE = (3, 32, 32)


class TinyUNet(nn.Module):
    """Two levels: conv, max pool, conv, transposed conv up, skip concatenation, conv, 1×1 head."""

    def __init__(self, width: int = 8, classes: int = 2) -> None:
        super().__init__()
        self.enc1 = nn.Conv2d(3, width, 3, padding=1)
        self.enc2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.up = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.dec = nn.Conv2d(2 * width, width, 3, padding=1)
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x):
        skip = F.relu(self.enc1(x))
        y = F.relu(self.enc2(F.max_pool2d(skip, 2)))
        y = torch.cat([self.up(y), skip], dim=1)
        return self.head(F.relu(self.dec(y)))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp)
        self.fc2 = nn.Linear(mlp, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class TinyViT(nn.Module):
    """Patch-embedding conv, ``depth`` pre-norm blocks (SDPA with ``heads``, GELU MLP), mean pool, head."""

    def __init__(self, dim: int = 64, depth: int = 2, heads: int = 4, mlp: int = 128, patch: int = 4,
                 classes: int = 10) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=1))


def make_vit(**params) -> nn.Module:
    """A factory: the network is what it returns."""
    return TinyViT(**params)


class WithCumsum(nn.Module):
    """A conv, then an operator the importers do not map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.out = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.out(torch.cumsum(self.conv(x), dim=1))


class TokenClassifier(nn.Module):
    """Token ids in (INPUT_DTYPE of tokens.py), an embedding table, one linear layer over every token."""

    def __init__(self, vocab: int = 100, dim: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.out = nn.Linear(dim, classes)

    def forward(self, ids):
        return self.out(self.embed(ids))
