"""Behaviour cloning: deduplicated weighted CE, training lowers it, the adapter loads."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_weighted_ce_on_distinct_states_equals_ce_on_every_pair(tiny):
    from training.lora import trainable_policy
    from training.sft import collect_demos, label_counts, weighted_ce

    policy = trainable_policy("tiny-random", value_head=False, bf16=False, device="cpu")
    pairs = collect_demos("MiniGrid-DoorKey-5x5-v0", 60, deviation=0.3, seed=0)
    states, counts = label_counts(policy, pairs)
    assert len(states) < len(pairs)  # DoorKey repeats states: the whole point of deduplication
    every = policy.score_ids([policy.state_ids(t) for t, *_ in pairs]).log_probs
    per_pair = -every[torch.arange(len(pairs)), torch.tensor([a for _, a, *_ in pairs])].mean()
    torch.testing.assert_close(weighted_ce(policy, states, counts), per_pair, rtol=1e-5, atol=1e-5)


def test_demo_labels_are_the_experts_even_when_deviating():
    import envs
    from envs.expert import expert_action
    from training.sft import collect_demos

    pairs = collect_demos("MiniGrid-DoorKey-5x5-v0", 30, deviation=0.5, seed=3)
    assert len(pairs) == 30
    # Replaying is not possible without the executed actions, so check labels on the first state.
    from agent.perception import describe
    from envs import seeds

    env = envs.make("MiniGrid-DoorKey-5x5-v0")
    obs, _ = env.reset(seed=seeds.train_seed(0, 0, seeds.SFT_STREAM))
    assert pairs[0][:2] == (describe(obs), expert_action(env))


def test_sft_lowers_ce_and_writes_a_loadable_adapter(tmp_path):
    from agent.policy import load_policy
    from training.sft import collect_demos, dataset_loss, label_counts, main

    out = tmp_path / "sft"
    summary = main(["--model", "tiny-random", "--demos", "80", "--epochs", "3", "--batch-size", "8",
                    "--learning-rate", "1e-2", "--no-bf16", "--eval-episodes", "2", "--threads", "1", "--out", str(out)])
    assert summary["final_ce"] < summary["initial_ce"] - 0.05
    policy = load_policy("tiny-random", adapter=str(out / "final"), device="cpu", bf16=False)
    states, counts = label_counts(policy, collect_demos("MiniGrid-DoorKey-5x5-v0", 80, 0.2, seed=1))
    # The reloaded adapter computes the trained function, not the base model's.
    assert dataset_loss(policy, states, counts, 64) == pytest.approx(summary["final_ce"], abs=1e-4)
    assert (out / "metrics.csv").is_file() and (out / "summary.json").is_file()


def test_bad_cli_input_is_one_sentence_and_exit_2():
    result = subprocess.run([sys.executable, "training/sft.py", "--deviation", "1.5"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "--deviation" in result.stderr


@pytest.mark.parametrize("argv", [["--demos", "many"], ["--env", "NoSuchEnv"], ["--epochs", "0"],
                                  ["--demos", "0", "--pairs", str(ROOT / "data/textworld/coin-cooking-pairs-seed1.jsonl.gz")],
                                  ["--env", "FrozenLake-v1", "--demos", "0", "--pairs",
                                   str(ROOT / "data/textworld/coin-cooking-pairs-seed1.jsonl.gz")]])
def test_bad_cli_values_exit_2(argv, capsys):
    from training.sft import SFTConfig
    from agent.cli import parse

    with pytest.raises(SystemExit) as stop:
        parse(SFTConfig, argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_expert_labels_are_the_experts_at_the_learners_states():
    """DAgger's relabelling: the learner (here random) picks the actions, every visited state
    is labelled with what the expert would do there; replaying the episode checks each label."""
    import envs
    from agent.episodes import RandomAgent, play
    from agent.perception import describe
    from envs.expert import expert_action
    from envs.levels import TrainLevels, split_of
    from training.sft import ExpertLabels

    labels = ExpertLabels(RandomAgent(seed=0))
    episodes = play(labels, "MiniGrid-DoorKey-5x5-v0", [1_000_000, 1_000_001], max_steps=12, batch=1,
                    train_levels=True)  # batch 1: pairs in episode order
    # Each state once per episode, in the order first visited.
    firsts = [text for e in episodes for text in dict.fromkeys(s.observation for s in e.steps)]
    assert [text for text, *_ in labels.pairs] == firsts
    assert len(firsts) < sum(len(e.steps) for e in episodes)  # a random walk revisits states
    expected = {}
    for episode in episodes:
        env = TrainLevels(envs.make("MiniGrid-DoorKey-5x5-v0"))
        obs, info = env.reset(seed=episode.seed)
        assert split_of(info["level"], "MiniGrid-DoorKey-5x5-v0") == "train"
        for step in episode.steps:
            expected.setdefault((episode.seed, describe(obs)), expert_action(env))
            obs = env.step(step.executed)[0]
    assert [pair.label for pair in labels.pairs] == list(expected.values())


def test_dagger_round_from_an_adapter(tmp_path):
    from training.sft import main

    common = ["--model", "tiny-random", "--no-bf16", "--eval-episodes", "0", "--threads", "1", "--no-progress",
              "--epochs", "1"]
    main([*common, "--demos", "20", "--lora-rank", "4", "--lora-alpha", "8", "--out", str(tmp_path / "bc")])
    summary = main([*common, "--demos", "5", "--init-adapter", str(tmp_path / "bc" / "final"),
                    "--learner-episodes", "2", "--no-final-ce", "--out", str(tmp_path / "dagger")])
    assert summary["learner_pairs"] > 0 and summary["pairs"] == 5 + summary["learner_pairs"]
    assert summary["final_ce"] is None  # --no-final-ce skipped the closing pass
    assert 0.0 <= summary["learner_success"] <= 1.0
    assert (tmp_path / "dagger" / "final" / "adapter_config.json").is_file()
    # config.json says the rank the continued adapter has, not the --lora-rank default
    config = json.loads((tmp_path / "dagger" / "config.json").read_text())
    assert (config["lora_rank"], config["lora_alpha"]) == (4, 8)
    kept = (tmp_path / "dagger" / "learner_pairs.jsonl").read_text().splitlines()
    assert len(kept) == summary["learner_pairs"]

    # the next round: other levels for the learner, the same expert pairs, and the first round's pairs aggregated
    again = main([*common, "--demos", "5", "--init-adapter", str(tmp_path / "dagger" / "final"),
                  "--learner-episodes", "4", "--learner-seed", "7", "--learner-env", "DoorKey-5x5+DoorKey-6x6",
                  "--pairs", str(tmp_path / "dagger" / "learner_pairs.jsonl"),
                  "--no-final-ce", "--out", str(tmp_path / "round2")])
    assert again["earlier_pairs"] == len(kept)
    assert again["pairs"] == 5 + again["learner_pairs"] + len(kept)
    # the learner played --learner-env's two tasks, while --env (the demos) is DoorKey-5x5 alone
    assert set(again["learner_success_by_task"]) == {"MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-6x6-v0"}


def test_demos_carry_a_true_reason_that_names_the_experts_action():
    """Generate-mode targets: each answer's reason commits to the labelled action, and the
    grounded checks find no false claim in it against its own observation."""
    from agent.actions import ACTION_PHRASES, parse_action
    from evals.claims import false_claims, parse_scene
    from evals.metrics import split_reason
    from training.sft import collect_demos

    for env_id in ("MiniGrid-DoorKey-5x5-v0", "BabyAI-TextPutNextTrain-v0", "BabyAI-TextOpenTrain-v0"):
        for text, label, answer, _ in collect_demos(env_id, 60, deviation=0.2, seed=2):
            reason, action = split_reason(answer)
            assert action == ACTION_PHRASES[label]
            assert parse_action(reason) == ACTION_PHRASES[label], reason
            assert false_claims(reason, parse_scene(text)) == [], (text, reason)


def test_on_label_sees_the_env_of_each_pair():
    """One call per pair, at the state the pair describes: a mixture's task matches the mission."""
    from agent.perception import describe
    from envs.mixture import task_of
    from training.sft import collect_demos

    seen = []
    pairs = collect_demos("TextMixedTrainLocal", 40, 0.2, seed=1,
                          on_label=lambda env: seen.append((task_of(env), describe(env.unwrapped.gen_obs()))))
    assert [text for _, text in seen] == [pair.text for pair in pairs]
    assert len({task for task, _ in seen}) >= 2
    for task, text in seen:
        assert ("open the" in text) == (task == "open") and ("put " in text) == (task == "putnext"), (task, text)


def test_generate_mode_sft_lowers_the_answer_ce_and_plays_in_generate_mode(tmp_path):
    from training.sft import main

    summary = main(["--model", "tiny-random", "--mode", "generate", "--demos", "40", "--epochs", "3",
                    "--learning-rate", "1e-2", "--no-bf16", "--eval-episodes", "1", "--threads", "1", "--no-progress",
                    "--out", str(tmp_path / "gen")])
    assert summary["mode"] == "generate"
    assert summary["final_ce"] < summary["initial_ce"] - 0.5
    assert (tmp_path / "gen" / "final" / "adapter_config.json").is_file()


def _adapter_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_stopped_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    """--stop-after-steps mid-epoch, then --resume: the same final adapter, bit for bit, also
    for a DAgger round (its learner pairs are read back, not played again)."""
    from training.sft import main

    common = ["--model", "tiny-random", "--no-bf16", "--eval-episodes", "0", "--threads", "1", "--no-progress",
              "--demos", "24", "--epochs", "2", "--batch-size", "4", "--checkpoint-every", "2", "--no-final-ce"]
    full = main([*common, "--out", str(tmp_path / "full")])
    stopped = main([*common, "--stop-after-steps", "3", "--out", str(tmp_path / "parts")])
    assert stopped["stopped_at_step"] == 3 and not (tmp_path / "parts" / "final").exists()
    resumed = main(["--resume", str(tmp_path / "parts"), "--no-progress", "--threads", "1"])
    assert resumed["distinct_states"] == full["distinct_states"] and resumed["initial_ce"] == full["initial_ce"]
    a, b = _adapter_tensors(tmp_path / "full" / "final"), _adapter_tensors(tmp_path / "parts" / "final")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the run really moved (LoRA's B matrices start at zero): otherwise equality would prove nothing
    assert any(k.endswith("lora_B.weight") and a[k].abs().sum() > 0 for k in a)

    # the round also warms the learning rate up across the stop and skips the first CE pass
    dagger = [*common, "--init-adapter", str(tmp_path / "full" / "final"), "--learner-episodes", "2",
              "--warmup-steps", "2", "--no-initial-ce"]
    full_round = main([*dagger, "--out", str(tmp_path / "round")])
    assert full_round["initial_ce"] is None
    main([*dagger, "--stop-after-steps", "1", "--out", str(tmp_path / "round-parts")])
    resumed_round = main(["--resume", str(tmp_path / "round-parts"), "--no-progress", "--threads", "1"])
    assert resumed_round["learner_pairs"] == full_round["learner_pairs"] > 0
    assert resumed_round["learner_success"] == full_round["learner_success"]
    a, b = _adapter_tensors(tmp_path / "round" / "final"), _adapter_tensors(tmp_path / "round-parts" / "final")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_demos_only_writes_pairs_that_a_later_run_trains_on(tmp_path):
    from training.sft import collect_demos, load_pairs, main

    written = main(["--env", "MiniGrid-DoorKey-6x6-v0", "--demos", "15", "--seed", "3", "--demo-seed", "4",
                    "--demos-only", "--out", str(tmp_path / "demos")])
    assert written["pairs"] == 15 and not (tmp_path / "demos" / "final").exists()
    kept = load_pairs(tmp_path / "demos" / "expert_pairs.jsonl")
    assert kept == collect_demos("MiniGrid-DoorKey-6x6-v0", 15, 0.2, 3, level_seed=4)
    assert kept != collect_demos("MiniGrid-DoorKey-6x6-v0", 15, 0.2, 3)  # --demo-seed: other levels
    import gzip
    import shutil

    with open(written["expert_pairs"], "rb") as plain, gzip.open(tmp_path / "pairs.jsonl.gz", "wb") as packed:
        shutil.copyfileobj(plain, packed)
    assert load_pairs(tmp_path / "pairs.jsonl.gz") == kept  # a committed, gzipped file reads the same
    summary = main(["--model", "tiny-random", "--no-bf16", "--eval-episodes", "0", "--threads", "1", "--no-progress",
                    "--demos", "10", "--epochs", "1", "--no-final-ce", "--pairs", written["expert_pairs"],
                    "--out", str(tmp_path / "run")])
    assert summary["pairs"] == 10 + 15 and summary["earlier_pairs"] == 15
    alone = main(["--model", "tiny-random", "--no-bf16", "--eval-episodes", "0", "--threads", "1", "--no-progress",
                  "--demos", "0", "--epochs", "1", "--no-final-ce", "--pairs", str(tmp_path / "pairs.jsonl.gz"),
                  "--out", str(tmp_path / "alone")])
    assert alone["pairs"] == 15  # --demos 0: the committed pairs only, no game or level made


def test_warmup_sets_the_learning_rate_of_every_step(tmp_path):
    """The scheduler follows learning_rate_factor: the rate logged after epoch 1 is the
    factor at the step epoch 2 starts from, and no CE is logged at step 0 without the first pass."""
    import csv

    from training.sft import learning_rate_factor, main

    summary = main(["--model", "tiny-random", "--no-bf16", "--eval-episodes", "0", "--threads", "1", "--no-progress",
                    "--demos", "24", "--epochs", "2", "--batch-size", "4", "--warmup-steps", "5", "--no-initial-ce",
                    "--no-final-ce", "--learning-rate", "0.01", "--out", str(tmp_path / "run")])
    with open(tmp_path / "run" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    rates = [float(r["value"]) for r in rows if r["key"] == "charts/learning_rate"]
    steps_per_epoch = -(-summary["distinct_states"] // 4)
    assert steps_per_epoch > 5  # epoch 1 ends after the warm-up
    assert rates[0] == pytest.approx(0.01 * learning_rate_factor(steps_per_epoch, 2 * steps_per_epoch, 5))
    assert not any(r["step"] == "0" for r in rows)


def test_grouped_epoch_order_is_a_shuffled_permutation_of_whole_batches_that_pad_little():
    from training.sft import epoch_order

    lengths = [int(x) for x in torch.randint(20, 500, (2231,), generator=torch.Generator().manual_seed(0))]
    plain = epoch_order(2231, 16, torch.Generator().manual_seed(3))
    assert plain == torch.randperm(2231, generator=torch.Generator().manual_seed(3)).tolist()  # old runs unchanged
    grouped = epoch_order(2231, 16, torch.Generator().manual_seed(3), lengths)
    assert sorted(grouped) == list(range(2231)) and grouped == epoch_order(2231, 16, torch.Generator().manual_seed(3), lengths)
    assert grouped != epoch_order(2231, 16, torch.Generator().manual_seed(4), lengths)

    def padding(order):
        batches = [order[i:i + 16] for i in range(0, len(order), 16)]
        return sum(max(lengths[j] for j in b) * len(b) - sum(lengths[j] for j in b) for b in batches)

    assert padding(grouped) < padding(plain) / 5
    # the one short batch is last; the rest are shuffled, not sorted by length across the epoch
    batches = [grouped[i:i + 16] for i in range(0, 2231, 16)]
    assert len(batches[-1]) == 2231 % 16 and all(len(b) == 16 for b in batches[:-1])
    firsts = [lengths[b[0]] for b in batches[:-1]]
    assert firsts != sorted(firsts)
    assert epoch_order(0, 16, torch.Generator(), []) == []
