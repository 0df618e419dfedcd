import numpy as np
import pytest

from agent.adapters.minigrid import enters_hazard, front_cell
from agent.episodes import Decision, ExpertAgent, LMAgent, RandomAgent, play, shield
from agent.policy import LMPolicy

LAVA_ENVS = ["MiniGrid-LavaGapS5-v0", "MiniGrid-LavaGapS7-v0", "MiniGrid-LavaCrossingS9N1-v0"]


class AlwaysForward:
    name = "forward"

    def decide(self, observations, texts, env_list):
        return [Decision(2, probs=[0.0, 0.1, 0.6, 0.1, 0.0, 0.1, 0.1]) for _ in observations]


def lava_in_front_obs():
    image = np.zeros((7, 7, 3), dtype=np.uint8)
    image[:, :, 0] = 1  # empty
    image[3, 5] = (9, 0, 0)  # lava directly ahead
    return {"image": image, "direction": 0, "mission": "avoid the lava"}


def test_front_cell_reads_the_cell_ahead():
    assert front_cell(lava_in_front_obs()) == ("lava", None)


def test_shield_takes_most_probable_safe_action():
    obs = lava_in_front_obs()
    assert enters_hazard(obs, 2) and not enters_hazard(obs, 0)
    action, blocked = shield(obs, Decision(2, probs=[0.1, 0.3, 0.5, 0.05, 0.0, 0.05, 0.0]))
    assert (action, blocked) == (1, True)
    assert shield(obs, Decision(0, probs=None)) == (0, False)


@pytest.mark.parametrize("env_id", LAVA_ENVS)
def test_shield_prevents_every_lava_death(env_id):
    seeds = list(range(20))
    unshielded = play(AlwaysForward(), env_id, seeds, max_steps=30)
    assert sum(e.died for e in unshielded) > 0  # the test can fail: this agent does walk into lava
    for agent in (AlwaysForward(), RandomAgent(seed=1)):
        shielded = play(agent, env_id, seeds, max_steps=60, use_shield=True)
        assert not any(e.died for e in shielded)
    assert sum(s.shielded for e in play(AlwaysForward(), env_id, seeds, max_steps=30, use_shield=True) for s in e.steps) > 0


def test_expert_episodes_succeed_and_records_keep_fields_apart():
    episodes = play(ExpertAgent(), "MiniGrid-DoorKey-5x5-v0", [0, 1, 2], batch=2)
    assert [e.seed for e in episodes] == [0, 1, 2]
    assert all(e.success and e.total_return > 0 for e in episodes)
    step = episodes[0].steps[0]
    assert step.observation.startswith("Mission:")
    assert step.executed == step.decision.action and not step.shielded


def test_lm_agent_batches_match_single_episodes(tiny):
    policy = LMPolicy(*tiny, bf16=False)
    together = play(LMAgent(policy), "MiniGrid-DoorKey-5x5-v0", [5, 6, 7], max_steps=6, batch=3)
    alone = play(LMAgent(policy), "MiniGrid-DoorKey-5x5-v0", [6], max_steps=6, batch=1)
    assert [s.executed for s in together[1].steps] == [s.executed for s in alone[0].steps]
    assert all(s.decision.probs is not None and s.decision.tokens > 0 for s in together[0].steps)


def test_generate_mode_records_raw_text_and_counts_invalid(tiny):
    policy = LMPolicy(*tiny, bf16=False)
    [episode] = play(LMAgent(policy, mode="generate"), "MiniGrid-DoorKey-5x5-v0", [0], max_steps=3)
    for step in episode.steps:
        assert isinstance(step.decision.raw_text, str)
        assert (step.decision.parsed is None) == (step.decision.fallback is not None)
