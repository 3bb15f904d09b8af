"""Serket's CNN feature extractor: image files as the features of a pretrained network.

Serket runs GoogLeNet (Caffe weights shipped with it) and takes its last pooling layer,
1,024 numbers per image. Here the backbone is a torchvision model chosen by name
(GoogLeNet by default, giving the same 1,024 features) with its classifier removed, and
its weights come from a local file the user supplies: nothing is downloaded. A subclass
may build any torch network instead (`build_backbone`, Serket's subclass style).

It is a source module: no inputs; its actor reads the images on the node it runs on, on
that node's GPU if it has one, and sends the features forward the first time a module
above reads them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from runtime import DataError, Module, ModuleError, Resources, Update, UpdateContext

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the normalisation torchvision's weights expect
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_HELP = (
    "give weights= a local file of the backbone's state_dict, e.g. made once where the "
    "weights can be had: torch.save(torchvision.models.googlenet(weights='DEFAULT')"
    ".state_dict(), 'googlenet.pt')"
)


class CNNFeatureExtractor(Module):
    """Features of `filenames` (images PIL can read) through a pretrained backbone.

    backbone: a torchvision classification model's name ("googlenet", "resnet18", ...);
    its last linear layer (the classifier) is dropped, so the features are what fed it.
    weights: the backbone's state_dict in a local file (torch.save format, read with
    torch's weights-only loader: tensors, never code). image_size: the side images are
    resized to; mean, std: the per-channel normalisation after scaling to [0, 1]
    (ImageNet's, which torchvision's weights expect). batch_size: images per forward pass.
    Files: features.txt (one row per image), model.npz (the features, as checkpointed).
    """

    kind = "cnn"
    # It works once, before the modules that read it: no CPU reserved (see HAC's), a GPU
    # where the cluster has one.
    resources = Resources(num_cpus=0, num_gpus="auto")
    source = True

    def __init__(
        self,
        filenames: Sequence[str],
        backbone: str = "googlenet",
        weights: str | None = None,
        image_size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        batch_size: int = 32,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if isinstance(filenames, (str, bytes)) or len(filenames) == 0:
            raise ModuleError(self.full_name, "filenames must be a non-empty list of image paths")
        if weights is None:
            raise ModuleError(self.full_name, f"needs the backbone's weights: {WEIGHTS_HELP}")
        self.require_positive_integers(image_size=image_size, batch_size=batch_size)
        self.filenames = [os.fspath(f) for f in filenames]
        self.backbone = backbone
        self.weights = os.fspath(weights)
        self.image_size = image_size
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self.batch_size = batch_size
        self.features_: np.ndarray | None = None

    def build_backbone(self) -> nn.Module:
        """The network from an image batch (B, 3, size, size) to features (B, F):
        torchvision's `backbone` with its classifier replaced by the identity."""
        try:
            import torchvision
        except Exception as exc:  # absent, or built for another torch (a CUDA build's ops)
            raise ModuleError(
                self.full_name,
                f"torchvision cannot be imported here ({type(exc).__name__}: {exc}); install "
                "the torchvision that matches this torch, or subclass and define "
                "build_backbone()",
            ) from None
        try:
            network = torchvision.models.get_model(self.backbone, weights=None, init_weights=False)
        except TypeError:  # models without init_weights
            network = torchvision.models.get_model(self.backbone, weights=None)
        except ValueError as exc:
            raise ModuleError(self.full_name, f"backbone: {exc}") from None
        if hasattr(network, "aux_logits"):  # GoogLeNet, Inception: the side heads go too
            network.aux_logits, network.aux1, network.aux2 = False, None, None
        return _without_classifier(network, self.full_name)

    def output_shape(self, input_shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        network = self.build_backbone().eval()
        with torch.no_grad():
            features = network(torch.zeros(1, 3, self.image_size, self.image_size))
        return (len(self.filenames), int(np.prod(features.shape[1:])))

    # ---- actor side -------------------------------------------------------------------
    def learn(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        """The features, computed once: later updates send the same."""
        if self.features_ is None:
            device = torch.device("cuda" if ctx.gpu_ids and torch.cuda.is_available() else "cpu")
            network = self._pretrained(ctx.module).to(device).eval()
            progress = ctx.progress(len(self.filenames), "images")
            rows = []
            with torch.no_grad():
                for start in range(0, len(self.filenames), self.batch_size):
                    paths = self.filenames[start : start + self.batch_size]
                    batch = torch.as_tensor(
                        np.stack([self._pixels(p, ctx.module) for p in paths]), device=device
                    )
                    rows.append(network(batch).flatten(1).cpu().numpy())
                    progress.update(len(paths))
            progress.close()
            self.features_ = np.concatenate(rows).astype(np.float32)
        return Update(
            forward=self.features_,
            files={"features.txt": self.features_, self.model_file: self.state()},
        )

    def _pretrained(self, module: str) -> nn.Module:
        network = self.build_backbone()
        where = f"{module}: {self.weights}"
        if not os.path.isfile(self.weights):
            raise DataError(
                where, f"no such weights file on the node this module runs on; {WEIGHTS_HELP}"
            )
        try:
            weights = torch.load(self.weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds for an unreadable file
            raise DataError(
                where, f"is not a torch state_dict file ({type(exc).__name__}: {exc})"
            ) from None
        if not isinstance(weights, Mapping):
            raise DataError(where, f"holds a {type(weights).__name__}, not a state_dict")
        wanted = network.state_dict().keys()
        weights = {k: v for k, v in weights.items() if k in wanted}  # drop the classifier's
        missing = sorted(set(wanted) - weights.keys())
        if missing:
            raise DataError(
                where,
                f"does not fit the {self.backbone} backbone: {len(missing)} of its tensors are "
                f"missing, first {missing[0]!r}",
            )
        try:
            network.load_state_dict(weights)
        except RuntimeError as exc:
            raise DataError(where, f"does not fit the backbone: {exc}") from None
        return network

    def _pixels(self, path: str, module: str) -> np.ndarray:
        """The image as (3, size, size) float32, resized and normalised."""
        from PIL import Image, UnidentifiedImageError

        where = f"{module}: {path}"
        if not os.path.isfile(path):
            raise DataError(where, "no such image on the node this module runs on")
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB").resize((self.image_size, self.image_size))
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(where, f"is not an image PIL can read ({exc})") from None
        pixels = np.asarray(rgb, dtype=np.float32) / 255.0
        normalised = (pixels - np.array(self.mean, np.float32)) / np.array(self.std, np.float32)
        return normalised.transpose(2, 0, 1)

    # ---- state ------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        return {} if self.features_ is None else {"features": self.features_}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        self.features_ = np.asarray(state["features"]) if "features" in state else None


def _without_classifier(network: nn.Module, module: str) -> nn.Module:
    """The network with its last linear layer (`fc`, or the last of `classifier`) made
    the identity, so that it outputs the features that fed the classifier."""
    if isinstance(getattr(network, "fc", None), nn.Linear):
        network.fc = nn.Identity()
        return network
    classifier = getattr(network, "classifier", None)
    if isinstance(classifier, nn.Linear):
        network.classifier = nn.Identity()
        return network
    if isinstance(classifier, nn.Sequential) and isinstance(classifier[-1], nn.Linear):
        classifier[-1] = nn.Identity()
        return network
    raise ModuleError(
        module,
        f"cannot find the classifier of {type(network).__name__} (no linear fc or classifier): "
        "subclass and define build_backbone()",
    )
