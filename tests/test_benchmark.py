"""End-to-end: the benchmark CLI on tiny-random, its determinism, and bad inputs."""

import json

import pytest

from evals import benchmark
from evals.metrics import summarise

ENVS = "MiniGrid-DoorKey-5x5-v0,MiniGrid-LavaGapS7-v0"
AGENTS = "random,expert,llm,llm-generate"


def run_cli(out, *extra):
    return benchmark.main(["--model", "tiny-random", "--device", "cpu", "--agents", AGENTS, "--envs", ENVS,
                           "--episodes", "2", "--max-steps", "4", "--consistency-samples", "2",
                           "--consistency-states", "1", "--out", str(out), *extra])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    assert run_cli(root / "a", "--shield", "both") == 0
    assert run_cli(root / "b", "--shield", "both") == 0
    return root / "a", root / "b"


def test_writes_results_table_and_plot(two_runs):
    out, _ = two_runs
    for name in ("results.json", "results.md", "success.png"):
        assert (out / name).stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == benchmark.SCHEMA_VERSION
    assert set(results["versions"]) == {"python", "torch", "transformers", "gymnasium", "minigrid", "embodied-lm"}
    from envs.levels import level_seeds

    assert results["config"]["split"] == "test"
    assert results["config"]["seeds"] == {env: level_seeds(env, "test", 2) for env in ENVS.split(",")}
    runs = results["runs"]
    assert len(runs) == 4 * 2 * 2  # agents x envs x shield off/on
    assert {(r["agent"], r["shield"]) for r in runs} >= {("llm-generate", True), ("random", False)}
    for run in runs:
        assert len(run["episodes"]) == 2
        assert all(len(e["steps"]) <= 4 for e in run["episodes"])
    generate = next(r for r in runs if r["agent"] == "llm-generate")
    assert generate["aggregates"]["invalid_output"]["total"] > 0
    assert len(generate["consistency_probes"]) == 1 and len(generate["consistency_probes"][0]["samples"]) == 2
    score = next(r for r in runs if r["agent"] == "llm")
    assert score["aggregates"]["invalid_output"]["rate"] is None  # score mode writes no text
    assert score["aggregates"]["mean_policy_entropy"] is not None
    table = (out / "results.md").read_text()
    assert "| llm-generate+shield | MiniGrid-LavaGapS7-v0 |" in table and "## Shield" in table


def test_same_command_gives_same_results_apart_from_timing(two_runs):
    a, b = (json.loads((out / "results.json").read_text()) for out in two_runs)
    assert benchmark.strip_timing(a) == benchmark.strip_timing(b)


def test_aggregates_are_recomputable_from_the_stored_episodes(two_runs):
    results = json.loads((two_runs[0] / "results.json").read_text())
    for run in results["runs"]:
        episodes = [benchmark.episode_from_record(e) for e in run["episodes"]]
        recomputed = summarise(episodes, benchmark.probe_answers(run["consistency_probes"]))
        assert benchmark.strip_timing(recomputed) == benchmark.strip_timing(run["aggregates"])
    assert benchmark.rescore(results) == results


def test_text_cache_counts_each_decision_once(tmp_path):
    """Model decisions plus reused ones are the run's decisions: no decision is counted twice."""
    out = tmp_path / "out"
    assert benchmark.main(["--model", "tiny-random", "--device", "cpu", "--agents", "llm,llm-generate",
                           "--envs", "MiniGrid-DoorKey-5x5-v0", "--episodes", "2", "--max-steps", "6",
                           "--consistency-states", "0", "--out", str(out)]) == 0
    for run in json.loads((out / "results.json").read_text())["runs"]:
        cache = run["text_cache"]
        assert cache["model_decisions"] + cache["reused_decisions"] == run["aggregates"]["decisions"]
        assert cache["reused_decisions"] > 0  # tiny-random repeats its states within 6 steps


@pytest.mark.parametrize("args, phrase", [
    (["--agents", "random,wizard"], "Unknown agent 'wizard'"),
    (["--agents", "expert:adapters/x"], "Unknown agent 'expert:adapters/x'"),
    (["--envs", "MiniGrid-DoorKey-5x5-v0,NoSuchEnv"], "Unknown environment 'NoSuchEnv'"),
    (["--episodes", "many"], "'many' is not a whole number"),
    (["--episodes", "0"], "too small"),
    (["--max-steps", "-3"], "too small"),
    (["--seed", "99999"], "lower --seed or --episodes"),
    (["--shield", "maybe"], "invalid choice"),
    (["--device", "bogus"], "Unknown --device 'bogus'"),
    (["--agents", "llm:/no/such/adapter"], "holds no adapter_config.json"),
    (["--inject", "lava,nope"], "unknown name nope"),
])
def test_bad_input_exits_2_with_one_sentence(tmp_path, capsys, args, phrase):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--model", "tiny-random", "--episodes", "2", "--out", str(tmp_path / "out"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert phrase in err
    assert len(err.splitlines()) == 1 and err.startswith("error: ")


def test_out_that_is_a_file_exits_2(tmp_path, capsys):
    existing = tmp_path / "results.txt"
    existing.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--agents", "random", "--episodes", "1", "--out", str(existing)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "is a file" in err and len(err.splitlines()) == 1


def test_agent_specs_and_seeds():
    specs = benchmark.parse_agents("llm, llm-generate:runs/a/final,llm")
    assert [(s.kind, s.adapter) for s in specs] == [("llm", None), ("llm-generate", "runs/a/final")]
    from envs.seeds import TRAIN_SEED_BASE, eval_seed_range

    seeds = eval_seed_range(10, 5)
    assert seeds == [10, 11, 12, 13, 14] and max(seeds) < TRAIN_SEED_BASE


def test_adapter_agents_share_one_loaded_policy(tmp_path, monkeypatch):
    from peft import LoraConfig, get_peft_model

    from agent import policy as policy_module
    from agent.models import load_model

    model, _ = load_model("tiny-random", device="cpu")
    adapter = tmp_path / "adapter"
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(adapter)
    loads = []
    real_load = policy_module.load_policy
    monkeypatch.setattr(benchmark, "load_policy", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    out = tmp_path / "out"
    assert benchmark.main(["--model", "tiny-random", "--device", "cpu", "--envs", "MiniGrid-LavaGapS5-v0",
                           "--agents", f"llm,llm:{adapter},llm-generate:{adapter}", "--episodes", "1",
                           "--max-steps", "2", "--consistency-states", "0", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["agent"] for r in results["runs"]] == ["llm", f"llm:{adapter}", f"llm-generate:{adapter}"]
    assert [r["adapter"] for r in results["runs"]] == [None, str(adapter), str(adapter)]
    assert len(loads) == 2 and set(results["config"]["policies"]) == {"base", str(adapter)}


def test_injection_runs_every_agent_with_each_sentence(tmp_path):
    from evals.injections import INJECTIONS

    out = tmp_path / "inject"
    assert benchmark.main(["--model", "tiny-random", "--device", "cpu", "--agents", "expert,llm", "--envs",
                           "MiniGrid-LavaGapS7-v0", "--episodes", "2", "--max-steps", "3", "--inject", "lava,turn",
                           "--inject-at", "mission", "--shield", "both", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["injections"] == {n: INJECTIONS[n] for n in ("lava", "turn")}
    assert [(r["agent"], r["injection"], r["shield"]) for r in results["runs"]] == [
        (agent, injection, shield) for agent in ("expert", "llm") for injection in (None, "lava", "turn")
        for shield in (False, True)]
    injected = [r for r in results["runs"] if r["agent"] == "llm" and r["injection"] == "lava"]
    texts = [s["observation"] for r in injected for e in r["episodes"] for s in e["steps"]]
    assert texts and all(f"square. {INJECTIONS['lava']} You see:" in t for t in texts)  # after the mission
    report = (out / "results.md").read_text()
    assert "## Instruction injection" in report and "lava: success / unsafe / deaths" in report
    assert "llm+inject:turn" in report


def test_injected_text_goes_after_the_observation():
    import envs
    from agent.perception import describe
    from evals.injections import INJECTIONS, describe_with, parse_injections

    env = envs.make("MiniGrid-LavaGapS7-v0")
    obs, _ = env.reset(seed=0)
    assert describe_with("lava")(obs, env) == describe(obs) + " " + INJECTIONS["lava"]
    assert describe_with(None) is None  # play() then reads the adapter's clean text
    mission = describe_with("lava", "mission")(obs, env)
    assert mission.startswith(f"Mission: {obs['mission']}. {INJECTIONS['lava']} You see:")
    taxi = envs.make("Taxi")
    state, _ = taxi.reset(seed=0)
    injected = describe_with("lava", "mission")(state, taxi)  # other families: after the mission sentence
    assert injected.startswith("Mission: pick up the passenger and drop them off at their destination. "
                               + INJECTIONS["lava"] + " You drive")
    assert parse_injections("all") == list(INJECTIONS) and parse_injections("none") == []
    with pytest.raises(ValueError, match="unknown name"):
        parse_injections("lava,nope")
