"""TextWorld: generated games of BALROG's three tasks and a game file through the env, the
adapter (per-state command sets) and the CLIs (tiny-random model). Games are generated into
a folder of this module; coin collector and cooking games take about 5 s each, so
treasure hunter, whose level-30 games take minutes, is played here at level 5 (the same
generator, a smaller maze) through a user module, as a user would add a variant."""

import json
import sys

import gymnasium
import pytest

import envs
from agent.adapters import adapter_for
from agent.adapters.textworld import TextWorldAdapter
from agent.episodes import ExpertAgent, play
from envs.levels import level_seeds, split_of

SMALL_MODULE = '''
import gymnasium
from envs.textworld import TextWorldEnv

gymnasium.register("TreasureHunterSmall-v0", entry_point=TextWorldEnv, max_episode_steps=80,
                   kwargs={"task": "TreasureHunter", "settings": {"level": 5}})
'''


@pytest.fixture(scope="module")
def games(tmp_path_factory):
    folder = tmp_path_factory.mktemp("games")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBODIED_LM_GAMES", str(folder))
        yield folder


@pytest.fixture(scope="module")
def small(tmp_path_factory, games):
    """A user module registering a level-5 treasure hunter: `twsmall:TreasureHunterSmall-v0`."""
    folder = tmp_path_factory.mktemp("module")
    (folder / "twsmall.py").write_text(SMALL_MODULE)
    sys.path.insert(0, str(folder))
    yield "twsmall:TreasureHunterSmall-v0"
    sys.path.remove(str(folder))
    sys.modules.pop("twsmall", None)
    gymnasium.registry.pop("TreasureHunterSmall-v0", None)


def test_splits_are_found_without_making_a_game(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBODIED_LM_GAMES", str(tmp_path))
    test = level_seeds("TextWorld-TreasureHunter-v0", "test", 25)
    validation = level_seeds("TextWorld-TreasureHunter-v0", "validation", 25)
    assert len(test) == 25 and not set(test) & set(validation)
    from envs.levels import check_splittable

    check_splittable("TextWorld-TreasureHunter-v0")  # what sft and PPO ask before the model loads
    assert not list(tmp_path.iterdir())  # no game was generated to find them
    # The Objective twin plays the same games.
    assert level_seeds("TextWorld-TreasureHunterObjective-v0", "test", 25) == test
    # A skipped seed (its game was not made in the time tried) is in no split, training's neither.
    from envs.levels import TrainLevels
    from envs.textworld import SKIPPED_SEEDS

    slow = min(SKIPPED_SEEDS["TreasureHunter"])
    assert slow not in test + validation and slow - 1 in test  # the split it would have had
    made = []
    env = TrainLevels(envs.make("TextWorld-TreasureHunter-v0"))
    game = env.env.unwrapped
    monkeypatch.setattr(game, "reset", lambda seed=None, options=None: made.append(seed) or ("", {}))
    monkeypatch.setattr("envs.levels.fingerprint", lambda e: game.seed_level(made[-1])[1])
    env.reset(seed=slow)
    first_training = next(s for s in range(slow + 1, slow + 99) if split_of(game.seed_level(s)[1], game.level_id) == "train")
    assert made == [first_training]


@pytest.mark.parametrize("env_id", ["TextWorld-CoinCollector-v0", "TextWorld-Cooking-v0"])
def test_the_expert_wins_a_test_game_with_balrogs_settings(env_id, games):
    seed = level_seeds(env_id, "test", 1)[0]
    [episode] = play(ExpertAgent(), env_id, [seed])
    assert episode.success and episode.progress == 1.0 and episode.family == "textworld"
    assert len(episode.steps) <= 80
    env = envs.make(env_id)
    obs, info = env.reset(seed=seed)
    assert info["objective"] and info["objective"] not in obs  # hidden, as BALROG hides it
    if env_id == "TextWorld-Cooking-v0":  # test games draw the cooking generator's held-out ingredients
        assert env.unwrapped.game_file(seed).name.endswith(f"-test-seed{seed}.z8")
        assert split_of(env.unwrapped.seed_level(seed)[1], env_id) == "test"


def test_cooking_expert_reads_the_cookbook_and_the_text_keeps_the_recipe(games):
    adapter, env = TextWorldAdapter(), envs.make("TextWorld-Cooking-v0")
    obs, info = env.reset(seed=level_seeds("TextWorld-Cooking-v0", "test", 1)[0])
    typed = []
    while "examine cookbook" not in typed and len(typed) < 20:
        typed.append(adapter.actions(obs, env)[adapter.expert(env)])
        obs, *_ = env.step(typed[-1])
    assert typed[-1] == "examine cookbook" and typed[-1] not in info["walkthrough"]
    obs, *_ = env.step(adapter.actions(obs, env)[adapter.expert(env)])  # one step on, the recipe is still told
    text = adapter.describe(obs, env)
    assert "The cookbook you read: Ingredients:" in text and "Directions:" in text and "prepare meal" in text


def test_phrases_are_each_states_admissible_commands(games):
    env = envs.make("TextWorld-CoinCollector-v0")
    obs, info = env.reset(seed=level_seeds("TextWorld-CoinCollector-v0", "test", 1)[0])
    adapter = adapter_for(env)
    assert isinstance(adapter, TextWorldAdapter)
    first = adapter.actions(obs, env)
    assert first == info["admissible"] and 3 <= len(first) <= 40
    start, moves = env.unwrapped.room, [c for c in first if c.startswith("go ")]
    assert f"Exits here: {moves[0][3:]} (new)" in adapter.describe(obs, env)
    expert = adapter.expert(env)
    assert first[expert] == moves[0]  # it explores: the first exit not taken, wherever the walkthrough goes
    obs, *_ = env.step(adapter.env_action(expert, obs, env))
    assert adapter.actions(obs, env) != first  # a new room, a new set of exits
    text = adapter.describe(obs, env)
    assert text.startswith("Mission: find the coin") and f"Your last commands: {first[expert]}." in text
    assert f"to {start}" in text  # the way back is known: it was just taken
    assert env.unwrapped.exits[start][moves[0][3:]] == env.unwrapped.room


def test_the_expert_searches_only_the_map_the_player_has_seen():
    from types import SimpleNamespace

    from agent.adapters.textworld import explore, toward_new

    # A - east - B - north - C, and A's north not taken yet
    exits = {"A": {"east": "B", "north": None}, "B": {"west": "A", "north": "C"}, "C": {"south": "B"}}
    base = SimpleNamespace(room="C", exits=exits, task="CoinCollector", recipe="",
                           state={"admissible": ("go south", "take coin"), "walkthrough": ("go north",)})
    assert toward_new(base) == "south" and explore(base) == "go south"  # toward A, the nearest room with a new exit
    assert TextWorldAdapter().expert(SimpleNamespace(unwrapped=base)) == 0  # not the walkthrough's move
    base.state["walkthrough"] = ("take coin",)  # what it does in the room, it does as the walkthrough says
    assert TextWorldAdapter().expert(SimpleNamespace(unwrapped=base)) == 1
    base.room = "A"
    assert toward_new(base) is None and explore(base) == "go north"
    exits["A"]["north"] = "D"
    exits["D"] = {"south": "A"}
    assert explore(base) is None  # nothing new anywhere: the walkthrough leads


def test_objective_twin_shows_the_objective(games):
    env = envs.make("TextWorld-CoinCollectorObjective-v0")
    obs, info = env.reset(seed=level_seeds("TextWorld-CoinCollector-v0", "test", 1)[0])
    assert info["objective"] in adapter_for(env).describe(obs, env)


def test_gymnasium_checker_passes(games):
    from gymnasium.utils.env_checker import check_env

    check_env(envs.make("TextWorld-CoinCollector-v0"), skip_render_check=True)


def test_treasure_hunter_walkthrough_wins_and_user_variant_is_found(small):
    env_id = envs.resolve_env_id(small)
    [episode] = play(ExpertAgent(), env_id, level_seeds(env_id, "test", 1))
    assert episode.success and episode.progress == 1.0


def test_a_game_file_is_an_env(games, capsys):
    from agent.run import main

    env = envs.make("TextWorld-Cooking-v0")
    path = env.unwrapped.game_file(level_seeds("TextWorld-Cooking-v0", "test", 1)[0])
    env_id = envs.resolve_env_id(str(path))
    assert env_id.startswith("TextWorld-File-") and envs.resolve_env_id(env_id) == env_id
    [episode] = play(ExpertAgent(), env_id, [0])
    assert episode.success
    assert main(["--env", str(path), "--model", "tiny-random", "--max-steps", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mean_steps"] == 2


def test_run_benchmark_and_sft_on_the_three_tasks(games, small, tmp_path, capsys):
    from agent.run import main as run
    from evals.benchmark import main as benchmark
    from training.sft import main as sft

    assert run(["--env", "CoinCollector", "--model", "tiny-random", "--max-steps", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["env"] == "TextWorld-CoinCollector-v0"
    benchmark(["--agents", "random,expert,llm", "--model", "tiny-random", "--envs", f"CoinCollector,Cooking,{small}",
               "--episodes", "1", "--max-steps", "30", "--out", str(tmp_path / "b")])
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    runs = {(r["agent"], r["env"]): r["aggregates"] for r in results["runs"]}
    assert runs[("expert", envs.resolve_env_id(small))]["progress"]["mean"] == 1.0
    assert "Progress [95% CI]" in (tmp_path / "b" / "results.md").read_text()
    assert "not_applicable" in runs[("llm", "TextWorld-Cooking-v0")]
    summary = sft(["--env", "Cooking", "--model", "tiny-random", "--demos", "30", "--epochs", "1", "--eval-episodes",
                   "0", "--no-progress", "--learning-rate", "3e-3", "--out", str(tmp_path / "bc")])
    assert summary["final_ce"] < summary["initial_ce"]
    assert summary["distinct_states"] > 20


def test_games_cli_makes_the_games_a_benchmark_plays_and_ships_them(games, tmp_path, monkeypatch):
    import envs.textworld as tw
    from envs.games import main

    monkeypatch.setattr(tw, "SHIPPED", tmp_path / "shipped")
    main(["--env", "CoinCollector", "--split", "validation", "--episodes", "1", "--ship"])
    [seed] = level_seeds("TextWorld-CoinCollector-v0", "validation", 1)
    game = envs.make("CoinCollector").unwrapped.game_file(seed)
    assert game.parent == games and game.exists()
    made = {suffix: game.with_suffix(suffix).read_bytes() for suffix in tw.GAME_SUFFIXES}
    for suffix in tw.GAME_SUFFIXES:
        game.with_suffix(suffix).unlink()

    def no_generation(*args):
        raise AssertionError("a shipped game was generated again")

    monkeypatch.setattr(tw, "_generate", no_generation)
    assert envs.make("CoinCollector").unwrapped.game_file(seed) == game
    assert {suffix: game.with_suffix(suffix).read_bytes() for suffix in tw.GAME_SUFFIXES} == made


def test_generate_mode_types_text_that_names_no_command(small):
    """BALROG's protocol: a command outside the admissible list goes to the game as written
    (costing the turn) instead of falling back to the most likely admissible one."""
    from agent.episodes import LMAgent
    from agent.policy import Generation

    class Writer:  # a model that writes a command no game state admits
        def generate(self, texts, reason, greedy, phrases):
            return [Generation("Action: **Dance with the troll.**", None, 0, fallback=own[0]) for own in phrases]

    env_id = envs.resolve_env_id(small)
    agent = LMAgent(policy=None, mode="generate", scorer=Writer())
    [episode] = play(agent, env_id, level_seeds(env_id, "test", 1), max_steps=2)
    first = episode.steps[0]
    assert first.decision.command == first.phrase == "dance with the troll"
    assert first.decision.fallback is None and first.decision.parsed is None
    assert "Your last commands: dance with the troll." in episode.steps[1].observation
