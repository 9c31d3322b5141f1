"""The first eight layers of ResNet-18 as Stream 0.0.8's example has them
(``stream/inputs/examples/workload/resnet18_few_layers.py``): conv1 (7×7, stride 2), a 3×3 max-pool,
then two basic blocks of two 3×3 convolutions, each closed by a residual add. No ReLU, no batch
norm (Stream's example has neither). ``designs/stream_resnet18_quad_core.toml`` runs it on Stream's
quad-core TPU-like chip; ``scripts/bench_fusion.py --json`` compares the two models."""

from torch import nn

INPUT_SHAPE = (3, 224, 224)


class StreamResNet18Few(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2_1 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.conv2_2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.conv2_3 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.conv2_4 = nn.Conv2d(64, 64, 3, padding=1, bias=False)

    def forward(self, x):
        x = self.pool(self.conv1(x))
        x = x + self.conv2_2(self.conv2_1(x))
        return x + self.conv2_4(self.conv2_3(x))
