"""The recipes (the shipped model's and the previous one's) stay loadable as the training code changes."""
import pytest

from training.classifier.pretrained import trunk_for
from training.config import PrepareConfig, SplitConfig, TrainConfig, load_toml, make_config
from tests.conftest import REPO


@pytest.mark.parametrize("recipe", ["default.toml", "robust.toml"])
def test_recipe_loads_into_every_step(recipe: str):
    toml = load_toml(REPO / "training" / "recipes" / recipe)
    prepare = make_config(PrepareConfig, toml, "prepare")
    split = make_config(SplitConfig, toml, "split")
    train = make_config(TrainConfig, toml, "train")
    assert prepare.cache == split.cache == train.cache
    assert any(spec.startswith("boxes=") for spec in prepare.data)
    assert split.holdout > 0


def test_robust_recipe_trains_a_pretrained_trunk_chosen_out_of_source():
    train = make_config(TrainConfig, load_toml(REPO / "training" / "recipes" / "robust.toml"), "train")
    trunk = trunk_for(train.weights)
    assert trunk is not None and trunk.architecture == train.model
    assert train.select_on == "out-of-source" and train.sampler == "fair"
