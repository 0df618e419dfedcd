import json

import pytest

from evals import throughput


def test_throughput_reports_every_method_and_agrees_on_argmax(capsys):
    assert throughput.main(["--model", "tiny-random", "--batch", "2", "--states", "4", "--naive-states", "2",
                            "--seconds", "0.1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    [row] = result["batches"]
    for key in ("naive_decisions_per_s", "repeated_decisions_per_s", "hf_kv_decisions_per_s",
                "optimised_decisions_per_s", "optimised_fp32_decisions_per_s"):
        assert row[key] > 0
    assert row["argmax_agreement_with_hf_kv"] == 1.0
    assert row["argmax_agreement_fp32_with_repeated"] == 1.0
    assert row["tokens_per_decision"]["optimised"] < row["tokens_per_decision"]["repeated"]
    assert result["matmul"]["fp32_gflops"] > 0


@pytest.mark.parametrize("baseline", ["repeated_scores", "kv_cached_scores"])
def test_baselines_match_policy_scores(tiny, baseline):
    import torch

    from agent.policy import LMPolicy

    policy = LMPolicy(*tiny, bf16=False)
    texts = throughput.sample_states(3)
    with torch.no_grad():
        base = getattr(throughput, baseline)(tiny[0], tiny[1], policy, texts)
        fast = policy.score(texts).phrase_log_likelihoods
    torch.testing.assert_close(base, fast, atol=1e-4, rtol=1e-4)


def test_a_disagreeing_scorer_fails_the_run(monkeypatch, capsys):
    def wrong(model, tokenizer, policy, texts):
        import torch

        return torch.eye(len(texts), 7)[:, [6, 5, 4, 3, 2, 1, 0]]  # never the policy's argmax order

    monkeypatch.setattr(throughput, "kv_cached_scores", wrong)
    assert throughput.main(["--model", "tiny-random", "--batch", "2", "--states", "4", "--naive-states", "2",
                            "--seconds", "0.1"]) == 1
    assert "chose different actions" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--batch", "x"], ["--batch", "0"], ["--seconds", "-1"]])
def test_bad_numbers_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        throughput.main(argv)
    assert exc.value.code == 2
