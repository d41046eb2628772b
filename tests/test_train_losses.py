"""Missing labels are masked out of their head's loss; the loss and the scores are what they claim."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from training.config import TrainConfig  # noqa: E402
from training.classifier.dataset import IGNORE, class_weights  # noqa: E402
from training.classifier.losses import MultiHeadLoss, head_loss  # noqa: E402
from training.classifier.metrics import confusion, macro_f1, score  # noqa: E402
from core.labels import marginals  # noqa: E402
from training.classifier.mixing import mix_batch  # noqa: E402


def test_plain_loss_equals_torch_cross_entropy_with_ignore_index():
    torch.manual_seed(0)
    logits = torch.randn(8, 3)
    target = torch.tensor([0, 1, IGNORE, 2, IGNORE, 1, 0, 2])
    for smoothing in (0.0, 0.1):
        ours = head_loss(logits, target, smoothing=smoothing)
        ref = F.cross_entropy(logits, target, ignore_index=IGNORE, label_smoothing=smoothing)
        assert torch.allclose(ours, ref, atol=1e-6)


def test_missing_labels_do_not_move_the_loss_or_the_gradient():
    torch.manual_seed(1)
    logits = torch.randn(6, 3, requires_grad=True)
    target = torch.tensor([0, IGNORE, 2, IGNORE, 1, 1])
    loss = head_loss(logits, target, smoothing=0.1, gamma=2.0)
    loss.backward()
    assert torch.all(logits.grad[[1, 3]] == 0)  # unlabelled rows get no gradient
    assert torch.any(logits.grad[[0, 2, 4, 5]] != 0)
    # Changing the logits of unlabelled rows changes nothing.
    other = logits.detach().clone()
    other[[1, 3]] = 100.0
    assert torch.allclose(head_loss(other, target, 0.1, 2.0), loss.detach())


def test_a_head_with_no_labels_in_the_batch_contributes_zero_not_nan():
    logits = torch.randn(4, 2, requires_grad=True)
    loss = head_loss(logits, torch.full((4,), IGNORE))
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph
    assert torch.all(logits.grad == 0)


def test_multi_head_loss_masks_each_head_separately():
    torch.manual_seed(2)
    outputs = {"mask": torch.randn(4, 3), "gender": torch.randn(4, 2), "age": torch.randn(4, 3)}
    # rows 0-1: UTKFace-like (no mask), rows 2-3: mask folder (no gender/age)
    targets = torch.tensor([[IGNORE, 0, 1], [IGNORE, 1, 2], [0, IGNORE, IGNORE], [2, IGNORE, IGNORE]])
    criterion = MultiHeadLoss(("mask", "gender", "age"), {"mask": 1.0, "gender": 0.5, "age": 1.0})
    per = criterion.per_head(outputs, targets)
    assert torch.allclose(per["mask"], F.cross_entropy(outputs["mask"][2:], targets[2:, 0]))
    assert torch.allclose(per["gender"], F.cross_entropy(outputs["gender"][:2], targets[:2, 1]))
    assert torch.allclose(criterion(outputs, targets), per["mask"] + 0.5 * per["gender"] + per["age"])


def test_focal_and_class_weights():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([0, 0])
    plain = head_loss(logits, target)
    focal = head_loss(logits, target, gamma=2.0)
    assert focal < plain  # the easy row is down-weighted
    weight = torch.tensor([2.0, 1.0, 1.0])
    assert torch.allclose(head_loss(logits, target, weight=weight), F.cross_entropy(logits, target, weight=weight))
    labels = np.array([0, 0, 0, 1, IGNORE])
    w = class_weights(labels, 3)
    assert w[1] == pytest.approx(3 * w[0]) and w[2] == 1.0


def test_mixup_leaves_out_heads_unknown_on_either_photo():
    config = TrainConfig(mixup=0.4)
    images = torch.randn(4, 3, 8, 8)
    targets = torch.tensor([[0, 1, 2], [IGNORE, 0, 1], [1, IGNORE, 0], [2, 1, IGNORE]])
    mixed, a, b, lam = mix_batch(images, targets, config, np.random.default_rng(0))
    assert 0.0 <= lam <= 1.0 and mixed.shape == images.shape
    unknown = (targets == IGNORE)
    perm_unknown = (b == IGNORE) | (a == IGNORE)
    assert torch.equal(a == IGNORE, b == IGNORE)
    assert torch.all(perm_unknown[unknown])  # a row's own unknowns stay unknown
    none = TrainConfig()
    assert mix_batch(images, targets, none, np.random.default_rng(0))[3] == 1.0


def test_macro_f1_by_hand():
    truth = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 2, fp 1, fn 0 -> 0.8; class 2: tp 1, fn 1 -> 2/3
    assert macro_f1(truth, pred, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # A class absent from truth and predictions does not count (sklearn's convention).
    assert macro_f1(np.array([0, 1]), np.array([0, 1]), 18) == 1.0
    assert macro_f1(np.array([]), np.array([]), 3) == 0.0
    assert confusion(truth, pred, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_scores_use_only_known_labels_and_marginals_add_up():
    probs = {"mask": np.eye(3)[[0, 1, 2]], "gender": np.eye(2)[[0, 1, 1]], "age": np.eye(3)[[0, 1, 2]]}
    labels = np.array([[0, 0, 0], [1, IGNORE, 1], [IGNORE, 1, 2]])
    result = score(probs, labels)
    assert result["mask"]["n"] == 2 and result["mask"]["f1"] == 1.0
    assert result["gender"]["n"] == 2 and result["class"]["n"] == 1 and result["class"]["f1"] == 1.0
    joint = np.random.default_rng(0).dirichlet(np.ones(18), size=5)
    heads = marginals(joint)
    for head in heads.values():
        assert np.allclose(head.sum(axis=1), 1.0)
    # class id = mask*6 + gender*3 + age
    assert np.allclose(heads["mask"][:, 1], joint[:, 6:12].sum(axis=1))
