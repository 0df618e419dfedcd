"""Every decoder family scores like a plain forward pass: tiny random models of seven
families saved as plain folders (the default model's tokenizer), as a user would bring them."""

import pytest
import torch

from agent.actions import ACTION_PHRASES
from agent.prompts import encode

FAMILIES = ("llama", "qwen2", "qwen3", "mistral", "phi3", "gemma3_text", "gpt2")
TEXTS = ["Mission: get to the goal. You see: goal 2 forward.",
         "Mission: open the door. You see: locked yellow door 1 left; yellow key 1 forward. In front: a yellow key."]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from agent.models import resolve

    tokenizer = AutoTokenizer.from_pretrained(resolve("tiny-random"))
    common = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    configs = {
        "llama": common, "qwen2": common, "qwen3": {**common, "head_dim": 8}, "mistral": common, "phi3": common,
        # a short sliding window, so that the sliding layers matter on these prompts
        "gemma3_text": {**common, "head_dim": 8, "sliding_window": 16,
                        "layer_types": ["sliding_attention", "sliding_attention", "full_attention"]},
        "gpt2": dict(vocab_size=len(tokenizer), n_embd=32, n_layer=3, n_head=4, n_positions=2048,
                     eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id),
    }
    root = tmp_path_factory.mktemp("families")
    for family, kwargs in configs.items():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(family, **kwargs))
        model.save_pretrained(root / family)
        tokenizer.save_pretrained(root / family)
    return root


def plain_forward(model, prompt, answer):
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([prompt + answer])).logits[0].float(), -1)
    return sum(float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(answer))


@pytest.mark.parametrize("family", FAMILIES)
def test_scores_equal_a_plain_forward_over_the_whole_prompt(folders, family):
    from agent.models import load_model
    from agent.policy import LMPolicy

    model, tokenizer = load_model(str(folders / family))
    policy = LMPolicy(model, tokenizer, bf16=False)
    got = policy.score(TEXTS).phrase_log_likelihoods
    for row, text in enumerate(TEXTS):
        prompt = policy.system_ids + policy.state_ids(text)
        want = torch.tensor([plain_forward(model, prompt, encode(tokenizer, p)) for p in ACTION_PHRASES])
        torch.testing.assert_close(got[row], want, atol=1e-4, rtol=1e-4)
        answer = encode(tokenizer, "Action: go forward")
        torch.testing.assert_close(policy.answer_log_probs([policy.state_ids(text)], [answer])[0],
                                   torch.tensor(plain_forward(model, prompt, answer)), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_training_path_scores_like_the_adapted_model_and_trains_only_lora(folders, family):
    from training.lora import trainable_parameters, trainable_policy

    policy = trainable_policy(str(folders / family), rank=4, value_head=False, bf16=False, device="cpu", lora_layers=1)
    for name, weight in policy.model.named_parameters():
        if "lora_B" in name:  # a non-zero adapter, so LoRA matters in the comparison
            with torch.no_grad():
                weight.normal_(0, 0.1)
    ids = [policy.state_ids(t) for t in TEXTS]
    got = policy.score_ids(ids).phrase_log_likelihoods.detach()
    for row, s in enumerate(ids):
        want = [plain_forward(policy.model, policy.system_ids + s, encode(policy.tokenizer, p)) for p in ACTION_PHRASES]
        torch.testing.assert_close(got[row], torch.tensor(want), atol=1e-4, rtol=1e-4)
    base = {n: p.detach().clone() for n, p in policy.model.named_parameters() if not p.requires_grad}
    lora = {n: p.detach().clone() for n, p in policy.model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(trainable_parameters(policy), lr=1e-2)
    for _ in range(3):  # a few BC steps on label "go forward"
        loss = -policy.score_ids(ids).log_probs[:, 2].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = dict(policy.model.named_parameters())
    assert all(torch.equal(after[n], w) for n, w in base.items())
    assert any(not torch.equal(after[n], w) for n, w in lora.items())


@pytest.mark.parametrize("family", FAMILIES)
def test_run_and_sft_take_a_model_folder(folders, family, tmp_path, capsys):
    import json

    from agent.run import main as run
    from training.sft import main as sft

    assert run(["--env", "DoorKey", "--model", str(folders / family), "--max-steps", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["decisions"] == 2
    summary = sft(["--env", "DoorKey", "--model", str(folders / family), "--demos", "24", "--epochs", "1",
                   "--eval-episodes", "1", "--no-progress", "--out", str(tmp_path / "bc")])
    assert summary["final_ce"] < summary["initial_ce"]
