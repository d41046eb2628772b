"""The classifier file format: metadata, refusal of bad files, batched prediction."""
import numpy as np
import onnx
import pytest

from core.classifier import Classifier, ClassifierLoadError
from core.crop import to_input
from core.labels import LABEL_NAMES, NUM_CLASSES, decode_class
from core.metadata import ModelMetadata, ModelMetadataError
from core.ort import create_session
from tests.conftest import build_random_classifier


def _metadata(**changes) -> ModelMetadata:
    values = dict(
        heads=dict(LABEL_NAMES), input_size=96, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), crop_margin=0.15,
        model_version="v7", training_data="faces", architecture="net",
    )
    values.update(changes)
    return ModelMetadata(**values)


def test_metadata_round_trips_through_props():
    metadata = _metadata(age_boundary=58)
    assert ModelMetadata.from_props(metadata.to_props()) == metadata


def test_a_nested_crop_round_trips_and_one_off_the_pixel_grid_is_refused():
    metadata = _metadata(input_size=140, crop_margin=0.375, inner_crop=(112, 0.2))
    assert ModelMetadata.from_props(metadata.to_props()).inner_crop == (112, 0.2)
    assert "inner_crop" not in _metadata().to_props() and ModelMetadata.from_props(_metadata().to_props()).inner_crop is None
    with pytest.raises(ModelMetadataError, match="inner_crop"):
        _metadata(input_size=140, crop_margin=0.375, inner_crop=(112, 0.25))
    props = metadata.to_props()
    props["inner_crop"] = '{"size": 112}'
    with pytest.raises(ModelMetadataError, match="malformed"):
        ModelMetadata.from_props(props)


def test_missing_metadata_is_named():
    props = _metadata().to_props()
    del props["mean"], props["crop_margin"]
    with pytest.raises(ModelMetadataError, match="mean, crop_margin"):
        ModelMetadata.from_props(props)


def test_labels_in_another_order_are_refused():
    with pytest.raises(ModelMetadataError, match="gender"):
        _metadata(heads={**LABEL_NAMES, "gender": ("female", "male")})


def test_wrong_head_sizes_are_refused():
    with pytest.raises(ModelMetadataError, match="gender"):
        _metadata(heads={**LABEL_NAMES, "gender": ("a", "b", "c")})


def test_random_classifier_predicts_distributions(random_classifier):
    classifier = Classifier(random_classifier)
    assert classifier.input_size == 64
    crops = np.random.default_rng(1).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    probs = classifier.predict(crops)
    assert probs.mask.shape == (5, 3) and probs.gender.shape == (5, 2) and probs.age.shape == (5, 3)
    for head in (probs.mask, probs.gender, probs.age):
        assert np.allclose(head.sum(axis=1), 1.0, atol=1e-5)
    # One batched call gives what single calls give.
    single = np.concatenate([classifier.predict(crops[i : i + 1]).mask for i in range(5)])
    assert np.allclose(single, probs.mask, atol=1e-5)


def test_a_crowd_is_run_a_few_faces_at_a_time_with_the_same_answers(random_classifier):
    crops = np.random.default_rng(2).integers(0, 256, (7, 64, 64, 3), dtype=np.uint8)
    whole = Classifier(random_classifier, max_batch=100).predict(crops)
    for max_batch in (1, 2, 3):
        parts = Classifier(random_classifier, max_batch=max_batch).predict(crops)
        for head in ("mask", "gender", "age"):
            assert getattr(parts, head).shape == getattr(whole, head).shape
            assert np.allclose(getattr(parts, head), getattr(whole, head), atol=1e-5), (max_batch, head)
    with pytest.raises(ValueError, match="max_batch"):
        Classifier(random_classifier, max_batch=0)


def test_classifying_a_crowd_leaves_memory_where_it_was():
    """The shipped ensemble on 24 faces at once: onnxruntime's arena used to keep the memory of the
    largest run for good (~800 MiB more after 24 faces in one run). Runs of a few faces, with the
    memory given back after each, leave resident memory near where it was after loading."""
    from app.soak import rss_mib
    from core.config import default_classifier_path

    classifier = Classifier(default_classifier_path())
    size = classifier.input_size
    crops = np.random.default_rng(3).integers(0, 256, (24, size, size, 3), dtype=np.uint8)
    classifier.predict(crops[:1])
    before = rss_mib()
    for _ in range(2):
        probs = classifier.predict(crops)
    assert probs.mask.shape == (24, 3)
    grown = rss_mib() - before
    assert grown < 150, f"resident memory grew by {grown:.0f} MiB after classifying 24 faces"


def test_a_file_without_metadata_is_refused_with_what_is_missing(random_classifier, tmp_path):
    proto = onnx.load(str(random_classifier))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ClassifierLoadError, match="lacks mask_checker_format, heads, input_size"):
        Classifier(bare)


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"\x08\x07" * 50])
def test_garbage_files_are_refused(tmp_path, content):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(ClassifierLoadError, match="model.onnx"):
        Classifier(path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ClassifierLoadError, match="cannot read"):
        Classifier(tmp_path / "nope.onnx")


def test_single_18_way_head_is_marginalised(tmp_path):
    path = build_random_classifier(tmp_path / "class18.onnx", heads="class")
    classifier = Classifier(path)
    crops = np.random.default_rng(2).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    probs = classifier.predict(crops)
    batch = to_input(crops, classifier.metadata.mean, classifier.metadata.std)
    joint = create_session(path).run(["class"], {"image": batch})[0]
    # Expected marginals summed class by class through core's decoding, not by reshaping.
    for head, (index, width) in {"mask": (0, 3), "gender": (1, 2), "age": (2, 3)}.items():
        expected = np.zeros((3, width))
        for class_id in range(NUM_CLASSES):
            expected[:, int(decode_class(class_id)[index])] += joint[:, class_id]
        assert np.allclose(getattr(probs, head), expected, atol=1e-6), head


def test_input_size_that_disagrees_with_the_graph_is_refused(random_classifier, tmp_path):
    proto = onnx.load(str(random_classifier))
    for prop in proto.metadata_props:
        if prop.key == "input_size":
            prop.value = "96"  # the graph was exported for 64 px
    wrong = tmp_path / "wrong_size.onnx"
    onnx.save(proto, str(wrong))
    with pytest.raises(ClassifierLoadError, match="input_size 96"):
        Classifier(wrong)
