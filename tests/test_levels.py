"""Level-disjoint splits: fingerprints, the fixed split, training resets and evaluation seeds."""

import pytest

import envs
from envs.mixture import level_env_id
from envs.levels import SPLITS, TrainLevels, count_levels, fingerprint, level_seeds, reset_level, split_of
from envs.seeds import train_seed


def levels_of(env_id, seeds):
    return {fingerprint(reset_level(env_id, s)) for s in seeds}


def test_fingerprint_is_the_level_not_the_seed():
    a, b = reset_level("MiniGrid-DoorKey-5x5-v0", 0), reset_level("MiniGrid-DoorKey-5x5-v0", 0)
    assert fingerprint(a) == fingerprint(b)
    # 3,000 seeds, 48 levels: seeds repeat levels
    assert sum(count_levels("MiniGrid-DoorKey-5x5-v0", range(3000)).values()) == 48  # 3,000 seeds, 48 levels


def test_doorkey5_splits_are_exact_and_disjoint():
    env_id = "MiniGrid-DoorKey-5x5-v0"
    assert count_levels(env_id, range(3000)) == {"train": 33, "validation": 5, "test": 10}
    test, validation = level_seeds(env_id, "test", 100), level_seeds(env_id, "validation", 100)
    assert (len(test), len(validation)) == (10, 5)  # every held-out level once, no repeats
    test_levels, validation_levels = levels_of(env_id, test), levels_of(env_id, validation)
    assert len(test_levels) == 10 and len(validation_levels) == 5 and not test_levels & validation_levels
    env = TrainLevels(envs.make(env_id))
    trained = {env.reset(seed=train_seed(0, episode))[1]["level"] for episode in range(400)}
    assert len(trained) == 33  # every training level, and nothing else
    assert not trained & (test_levels | validation_levels)


@pytest.mark.parametrize("env_id", ["BabyAI-GoToLocal-v0", "BabyAI-TextMixedTrainLocal-v0"])
def test_babyai_training_never_meets_held_out_levels(env_id):
    test, validation = levels_of(env_id, level_seeds(env_id, "test", 100)), levels_of(
        env_id, level_seeds(env_id, "validation", 50))
    assert len(test) == 100 and len(validation) == 50 and not test & validation
    env = TrainLevels(envs.make(env_id))
    trained = set()
    for episode in range(200):
        level = env.reset(seed=train_seed(1, episode))[1]["level"]
        assert split_of(level, level_env_id(env)) == "train"
        trained.add(level)
    assert not trained & (test | validation)


def test_held_out_levels_can_be_reached_only_by_rejecting_them():
    """The wrapper does reject: over 200 training seeds some raw resets were held out."""
    env_id = "BabyAI-GoToLocal-v0"
    raw = [split_of(fingerprint(reset_level(env_id, train_seed(2, e))), env_id) for e in range(200)]
    assert {"test", "validation"} <= set(raw)


def test_training_seed_gives_the_same_level_every_run():
    one, two = TrainLevels(envs.make("BabyAI-GoToLocal-v0")), TrainLevels(envs.make("BabyAI-GoToLocal-v0"))
    for episode in range(30):
        seed = train_seed(3, episode)
        assert one.reset(seed=seed)[1]["level"] == two.reset(seed=seed)[1]["level"]


def test_level_seeds_refuses_train_split():
    with pytest.raises(ValueError, match="TrainLevels"):
        level_seeds("MiniGrid-DoorKey-5x5-v0", "train", 5)
    assert set(SPLITS) == {"train", "validation", "test"}
