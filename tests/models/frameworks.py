"""Model code as other frameworks write it: flags, shape arithmetic, list iteration, own SE, fused forwards.

Each fixture reproduces, in a few lines, a pattern seen in real framework code (a pitch CNN
shipped in a PyPI package, Hugging Face transformers vision models, ultralytics YOLO). None
of them traces as a whole with plain torch.fx.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["PitchNet", "PitchWrapper", "TFPadConv", "TFPadConvF", "TFPadInvertedResidual", "TFPadMobileNet", "C2f", "ListConcat", "TinyYolo",
           "ChannelGate", "HardExcite", "GatedMBConv", "StagedNet", "FusableConv", "FusableNet", "HFStyleNet"]


class PitchNet(nn.Module):
    """A pitch CNN (torchcrepe's shape): conv → F.relu → BatchNorm → max-pool per layer, a flag in forward.

    ::

        x ─ [conv ─ relu ─ bn ─ pool] ×3 ─┬─ if embed: return ─► embedding
                                           └─ flatten ─ linear ─ sigmoid ─► pitch
    """

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, width, (5, 1), padding=(2, 0)) for c in (1, width, width))
        self.norms = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(3))
        self.classifier = nn.Linear(width * 8, 10)

    def layer(self, x, conv, norm):
        return F.max_pool2d(norm(F.relu(conv(x))), (2, 1), (2, 1))

    def forward(self, x, embed=False):
        x = x[:, None, :, None]
        for conv, norm in zip(self.convs, self.norms):
            x = self.layer(x, conv, norm)
        if embed:
            return x
        return torch.sigmoid(self.classifier(x.reshape(x.shape[0], -1)))


class PitchWrapper(nn.Module):
    """A parent that calls the flagged network without the flag: `self.net(x)`."""

    def __init__(self) -> None:
        super().__init__()
        self.net = PitchNet()

    def forward(self, x):
        return self.net(x)


def tf_padding(features: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """TensorFlow's "SAME" padding, as Hugging Face's MobileNetV1/V2 compute it: Python arithmetic on sizes."""
    in_height, in_width = int(features.shape[-2]), int(features.shape[-1])
    stride_height, stride_width = conv.stride
    kernel_height, kernel_width = conv.kernel_size
    pad_height = max(kernel_height - (stride_height if in_height % stride_height == 0 else in_height % stride_height), 0)
    pad_width = max(kernel_width - (stride_width if in_width % stride_width == 0 else in_width % stride_width), 0)
    return F.pad(features, (pad_width // 2, pad_width - pad_width // 2, pad_height // 2, pad_height - pad_height // 2))


class TFPadConv(nn.Module):
    """Hugging Face's MobileNetV2ConvLayer: TF padding, conv, BatchNorm, optional ReLU6.

    ::

        x ─ tf_padding (int(x.shape[-2]) ...) ─ conv ─ bn ─ [relu6] ─►
    """

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.convolution = nn.Conv2d(cin, cout, kernel, stride, groups=groups, bias=False)
        self.normalization = nn.BatchNorm2d(cout)
        self.activation = nn.ReLU6() if act else None

    def forward(self, features):
        features = tf_padding(features, self.convolution)
        features = self.normalization(self.convolution(features))
        if self.activation is not None:
            features = self.activation(features)
        return features


class TFPadConvF(TFPadConv):
    """TFPadConv with a functional ReLU6: a value in the sized forward that no child module returns."""

    def forward(self, features):
        features = tf_padding(features, self.convolution)
        return F.relu6(self.normalization(self.convolution(features)))


class TFPadInvertedResidual(nn.Module):
    """Hugging Face's MobileNetV2InvertedResidual: expand 1×1, depthwise 3×3, project 1×1 (+ x when it fits)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.expand_1x1 = TFPadConv(cin, cin * 2)
        self.conv_3x3 = TFPadConv(cin * 2, cin * 2, 3, stride, cin * 2)
        self.reduce_1x1 = TFPadConv(cin * 2, cout, act=False)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, features):
        residual = features
        features = self.reduce_1x1(self.conv_3x3(self.expand_1x1(features)))
        return residual + features if self.use_residual else features


class TFPadMobileNet(nn.Module):
    """Inverted residual blocks of TFPadConv layers, a stem and a head, under a root with flags.

    ::

        x ─ stem(3×3, s2) ─ [expand ─ dw(s) ─ project (+ x when s = 1)] ×3 ─ mean ─ linear
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = TFPadConv(3, 8, 3, 2)
        self.layer = nn.ModuleList(TFPadInvertedResidual(a, b, s) for a, b, s in ((8, 8, 1), (8, 16, 2), (16, 16, 1)))
        self.head = nn.Linear(16, 4)

    def forward(self, x, output_hidden_states=None, return_dict=None):
        x = self.stem(x)
        hidden = () if output_hidden_states else None
        for block in self.layer:
            x = block(x)
            if output_hidden_states:
                hidden = hidden + (x,)
        logits = self.head(x.mean((2, 3)))
        return {"logits": logits, "hidden_states": hidden} if return_dict is not False else (logits,)


class ConvBNAct(nn.Module):
    """ultralytics' Conv: conv → BatchNorm → SiLU, with a fused forward (conv → SiLU) for after fuse()."""

    default_act = nn.SiLU()  # one instance shared by every ConvBNAct, as in ultralytics

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = self.default_act

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))

    def forward_fuse(self, x):
        return self.act(self.conv(x))


class Bottleneck(nn.Module):
    """x + cv2(cv1(x))."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.cv1, self.cv2 = ConvBNAct(c, c, 3), ConvBNAct(c, c, 3)

    def forward(self, x):
        return x + self.cv2(self.cv1(x))


class C2f(nn.Module):
    """ultralytics' C2f (YOLOv8, and YOLO11's C3k2): the parts of a chunk in a Python list, extended in a loop.

    ::

        x ─ cv1 ─ chunk(2) ─► [a, b] ─ b ─ m0 ─ m1 ─► [a, b, m0, m1] ─ cat ─ cv2 ─►
    """

    def __init__(self, cin: int, cout: int, n: int = 2) -> None:
        super().__init__()
        self.c = cout // 2
        self.cv1 = ConvBNAct(cin, 2 * self.c)
        self.cv2 = ConvBNAct((2 + n) * self.c, cout)
        self.m = nn.ModuleList(Bottleneck(self.c) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class ListConcat(nn.Module):
    """ultralytics' Concat: a module called with a Python list of tensors."""

    def __init__(self, dimension: int = 1) -> None:
        super().__init__()
        self.d = dimension

    def forward(self, x):
        return torch.cat(x, self.d)


class TinyYolo(nn.Module):
    """ultralytics' DetectionModel: `forward(x, *args, **kwargs)`, layers in a ModuleList run by index, each
    reading the previous output or the saved outputs `m.f` names; a Concat module gets a list.

    ::

        x ─ conv(s2) ─ C2f ─ conv(s2) ─ C2f ─ upsample ─ Concat[·, C2f₁] ─ C2f ─►
    """

    def __init__(self) -> None:
        super().__init__()
        layers = [ConvBNAct(3, 8, 3, 2), C2f(8, 8), ConvBNAct(8, 16, 3, 2), C2f(16, 16), nn.Upsample(scale_factor=2),
                  ListConcat(), C2f(24, 8)]
        froms = [-1, -1, -1, -1, -1, [-1, 1], -1]
        for index, (layer, f) in enumerate(zip(layers, froms)):
            layer.f, layer.i = f, index
        self.model = nn.ModuleList(layers)
        self.save = {1}

    def forward(self, x, *args, **kwargs):
        if isinstance(x, dict):
            raise NotImplementedError("training batches")
        return self.predict(x, *args, **kwargs)

    def predict(self, x, profile=False, visualize=False):
        y = []
        for m in self.model:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x if m.i in self.save else None)
        return x

    def fuse(self):
        """ultralytics' fuse(): fold each BatchNorm into its conv and switch the instance to forward_fuse."""
        for m in self.modules():
            if isinstance(m, ConvBNAct) and hasattr(m, "bn"):
                m.conv = fold_bn(m.conv, m.bn)
                delattr(m, "bn")
                m.forward = m.forward_fuse
        return self


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
    return fused


class ChannelGate(nn.Module):
    """Hugging Face's RegNetSELayer under another name: pool, then a Sequential ending in Sigmoid, then x · a."""

    def __init__(self, c: int, r: int = 4) -> None:
        super().__init__()
        self.pooler = nn.AdaptiveAvgPool2d((1, 1))
        self.attention = nn.Sequential(nn.Conv2d(c, c // r, 1), nn.ReLU(), nn.Conv2d(c // r, c, 1), nn.Sigmoid())

    def forward(self, hidden_state):
        return hidden_state * self.attention(self.pooler(hidden_state))


class HardExcite(nn.Module):
    """Hugging Face's EfficientNetSqueezeExciteLayer / PPLCNet's: functional mean, conv, act, conv,
    hard-sigmoid, torch.mul."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(c, c // 4, 1)
        self.expand = nn.Conv2d(c // 4, c, 1)

    def forward(self, x):
        inputs = x
        x = F.silu(self.reduce(x.mean((2, 3), keepdim=True)))
        return torch.mul(inputs, F.hardsigmoid(self.expand(x)))


class GatedMBConv(nn.Module):
    """An MBConv with its own SE: expand → dw → gate → project; `gate` is ChannelGate or HardExcite.

    ::

        x ─ conv1×1 ─ bn ─ silu ─ dw3×3 ─ bn ─ silu ─ gate ─ conv1×1 ─ bn ─►
    """

    def __init__(self, c: int, gate: type) -> None:
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(c, 4 * c, 1, bias=False), nn.BatchNorm2d(4 * c), nn.SiLU())
        self.dw = nn.Sequential(nn.Conv2d(4 * c, 4 * c, 3, padding=1, groups=4 * c, bias=False), nn.BatchNorm2d(4 * c),
                                nn.SiLU())
        self.gate = gate(4 * c)
        self.project = nn.Sequential(nn.Conv2d(4 * c, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return self.project(self.gate(self.dw(self.expand(x))))


class _Stage(nn.Module):
    """Two residual conv blocks, the first one strided."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()

    def forward(self, x):
        x = self.down(x)
        return self.act(x + self.body(x))


class StagedNet(nn.Module):
    """Four stages run by a root forward fx cannot trace (it branches on a tensor's value), so each stage
    is traced on its own: stages must still be numbered 1–4 by resolution, not 1 each.

    ::

        x ─ stem(s2) ─ stage1 ─ stage2(s2) ─ stage3(s2) ─ stage4(s2) ─ [if x.sum() > 0 ...] ─►
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.stages = nn.ModuleList(_Stage(a, b, s) for a, b, s in ((8, 8, 1), (8, 16, 2), (16, 32, 2), (32, 64, 2)))

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        if x.sum() > 0:  # data-dependent: the root is left out
            x = x * 1.0
        return x


class FusableConv(ConvBNAct):
    """ConvBNAct with a fuse() of its own, as ultralytics' Conv is fused by DetectionModel.fuse()."""

    def fuse(self):
        self.conv = fold_bn(self.conv, self.bn)
        delattr(self, "bn")
        self.forward = self.forward_fuse
        return self


class FusableNet(nn.Module):
    """Three FusableConv layers in a row."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([FusableConv(3, 8, 3, 2), FusableConv(8, 8, 3), FusableConv(8, 16, 3, 2)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class HFStyleNet(nn.Module):
    """Hugging Face's shape: a root with flags and a ModelOutput-like dict, an embedder checking the
    channel count of its input, an encoder with flags.

    ::

        pixel_values ─ embedder(if x.shape[1] != 3: raise; conv s2 ─ bn ─ relu) ─ encoder(stages) ─► dict
    """

    def __init__(self) -> None:
        super().__init__()
        self.embedder = _Embedder()
        self.encoder = _Encoder()

    def forward(self, pixel_values, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        output_hidden_states = output_hidden_states if output_hidden_states is not None else False
        embedded = self.embedder(pixel_values)
        encoded = self.encoder(embedded, output_hidden_states=output_hidden_states)
        if return_dict is False:
            return (encoded["last_hidden_state"],)
        return {"last_hidden_state": encoded["last_hidden_state"], "hidden_states": encoded.get("hidden_states")}


class _Embedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.num_channels = 3

    def forward(self, pixel_values):
        if pixel_values.shape[1] != self.num_channels:
            raise ValueError("channel dimension does not match the configuration")
        return self.conv(pixel_values)


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList(_Stage(a, b, s) for a, b, s in ((8, 8, 1), (8, 16, 2), (16, 32, 2), (32, 64, 2)))

    def forward(self, hidden_state, output_hidden_states=False):
        hidden_states = () if output_hidden_states else None
        for stage in self.stages:
            hidden_state = stage(hidden_state)
            if output_hidden_states:
                hidden_states = hidden_states + (hidden_state,)
        return {"last_hidden_state": hidden_state, "hidden_states": hidden_states}
