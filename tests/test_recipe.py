"""The recipes (the shipped model's and the earlier ones) stay loadable as the training code changes."""
import pytest

from training.classifier.pretrained import trunk_for
from training.config import PrepareConfig, SplitConfig, TeachConfig, TrainConfig, load_toml, make_config
from tests.conftest import REPO


@pytest.mark.parametrize("recipe", ["default.toml", "robust.toml", "teacher.toml"])
def test_recipe_loads_into_every_step(recipe: str):
    toml = load_toml(REPO / "training" / "recipes" / recipe)
    prepare = make_config(PrepareConfig, toml, "prepare")
    split = make_config(SplitConfig, toml, "split")
    train = make_config(TrainConfig, toml, "train")
    assert prepare.cache == split.cache == train.cache
    assert any(spec.startswith("boxes=") for spec in prepare.data)
    assert split.holdout > 0


@pytest.mark.parametrize("recipe", ["robust.toml", "teacher.toml"])
def test_robust_recipes_train_a_pretrained_trunk_chosen_out_of_source(recipe: str):
    train = make_config(TrainConfig, load_toml(REPO / "training" / "recipes" / recipe), "train")
    trunk = trunk_for(train.weights)
    assert trunk is not None and trunk.architecture == train.model
    assert train.select_on == "out-of-source" and train.sampler == "fair"


def test_teacher_recipe_teaches_the_cache_it_trains_on():
    toml = load_toml(REPO / "training" / "recipes" / "teacher.toml")
    teach = make_config(TeachConfig, toml, "teach")
    train = make_config(TrainConfig, toml, "train")
    assert train.teacher and not train.single_head
    assert teach.cache == train.cache
    assert teach.age_boundary == train.age_boundary
    assert teach.oos_labels == train.oos_labels and teach.oos_data == train.oos_data
    assert train.real_incorrect_weight > 1
