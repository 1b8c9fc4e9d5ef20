"""The two architectures: the paper's Table 4 network and the compact device network."""
import torch
from torch import nn


class PaperNet(nn.Module):
    """Mantri, Khan & Mane (IRJMT 2025), Table 4, on 256x256 inputs:
    Conv2D 32 -> MaxPool 2x2 -> Conv2D 64 -> MaxPool 2x2 -> Flatten -> Dense 196 -> Dense 96 -> softmax.

    Keras defaults: 3x3 'valid' convolutions, 2x2 'valid' pooling (256 -> 254 -> 127 -> 125 -> 62), so the
    flattened layer has 62*62*64 = 246016 values and the first dense layer 48.2 M weights: 48.3 M in all,
    the paper's count. Batch norm after each convolution; L2 is Adam's weight decay; early stopping is the
    training loop's.
    """

    input_size = 256

    def __init__(self, n_classes=2):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(62 * 62 * 64, 196), nn.ReLU(inplace=True),
            nn.Linear(196, 96), nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(96, n_classes)

    def forward(self, x):
        f = self.features(x)
        return self.head(self.dropout(f)), f


def _block(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CompactNet(nn.Module):
    """The device network: four 3x3 conv blocks (three with 2x2 pooling), global average pooling and one
    linear layer. About 0.08 M parameters (0.32 MB as ONNX); global pooling makes it indifferent to where
    in the frame a feature lies and keeps it small. (Width 24-48-96-128, 0.16 M parameters, was no better on
    ALL-IDB2 in early runs and costs twice the compute on a shared 2-core machine.)"""

    input_size = None  # any: global pooling makes the network size-agnostic (the shipped one takes 64x64)

    def __init__(self, n_classes=2, width=(16, 32, 64, 96)):
        super().__init__()
        a, b, c, d = width
        self.features = nn.Sequential(
            *_block(3, a), nn.MaxPool2d(2),
            *_block(a, b), nn.MaxPool2d(2),
            *_block(b, c), nn.MaxPool2d(2),
            *_block(c, d),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(d, n_classes)

    def forward(self, x):
        f = self.features(x)
        return self.head(self.dropout(f)), f


class TinyNet(nn.Module):
    """A few hundred parameters on 16x16 inputs: the fixture Go tests load in milliseconds."""

    input_size = None

    def __init__(self, n_classes=2):
        super().__init__()
        self.features = nn.Sequential(*_block(3, 4), nn.MaxPool2d(2), *_block(4, 8), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Identity()
        self.head = nn.Linear(8, n_classes)

    def forward(self, x):
        f = self.features(x)
        return self.head(f), f


ARCHS = {"paper": PaperNet, "compact": CompactNet, "tiny": TinyNet}


class Exported(nn.Module):
    """What goes into the ONNX file: softmax inside the graph, plus the feature vector the out-of-distribution
    check measures distances on."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        logits, f = self.net(x)
        return torch.softmax(logits, dim=1), f


def n_params(net):
    return sum(p.numel() for p in net.parameters())
