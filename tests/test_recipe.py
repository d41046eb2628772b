"""The shipped model's recipe stays loadable as the training code changes."""
from training.config import PrepareConfig, SplitConfig, TrainConfig, load_toml, make_config
from tests.conftest import REPO


def test_default_recipe_loads_into_every_step():
    toml = load_toml(REPO / "training" / "recipes" / "default.toml")
    prepare = make_config(PrepareConfig, toml, "prepare")
    split = make_config(SplitConfig, toml, "split")
    train = make_config(TrainConfig, toml, "train")
    assert prepare.cache == split.cache == train.cache
    assert any(spec.startswith("boxes=") for spec in prepare.data)
    assert split.holdout > 0
