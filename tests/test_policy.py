import pytest
import torch

from agent.actions import ACTION_PHRASES, parse_action
from agent.phrase_tree import PhraseTree
from agent.policy import LMPolicy
from agent.prompts import encode

OBSERVATIONS = [
    "Mission: get to the green goal square. You see: goal 2 forward.",
    "Mission: use the key to open the door and then get to the goal. You see: yellow key 1 left 2 forward; "
    "yellow door locked 3 right 1 forward. In front: nothing. You carry: nothing.",
    "x",
]


def naive_phrase_log_likelihoods(policy, observation):
    """Each phrase scored by a full forward pass over system + state + phrase."""
    prompt = policy.system_ids + policy.state_ids(observation)
    out = []
    for phrase in ACTION_PHRASES:
        ids = encode(policy.tokenizer, phrase)
        with torch.no_grad():
            logp = torch.log_softmax(policy.model(torch.tensor([prompt + ids])).logits[0].float(), -1)
        out.append(sum(logp[len(prompt) - 1 + i, t] for i, t in enumerate(ids)))
    return torch.stack(out)


def test_common_prefix_leaves_each_row_a_token():
    from agent.phrase_tree import common_prefix

    assert common_prefix([[1, 2, 3], [1, 2, 4, 5]]) == (1, 2)
    assert common_prefix([[1, 2], [1, 2, 3]]) == (1,)
    assert common_prefix([[7, 8], [9]]) == ()


def test_shared_prefix_rows_equal_naive_scoring(tiny):
    policy = LMPolicy(*tiny, bf16=False)
    texts = [OBSERVATIONS[1], OBSERVATIONS[1].replace("1 left", "2 left"), OBSERVATIONS[1][:60]]
    with torch.no_grad():
        scores = policy.score(texts)
        again = policy.score(texts)  # served from the cached shared prefix
    assert len(policy._prefix_cache) == 2  # system part + this batch's shared prefix
    for row, observation in enumerate(texts):
        torch.testing.assert_close(scores.phrase_log_likelihoods[row], naive_phrase_log_likelihoods(policy, observation),
                                   atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(scores.log_probs, again.log_probs)


def test_phrase_tree_shares_first_tokens():
    tree = PhraseTree.build([[1, 2], [1, 3], [4], [5, 6]])
    assert tree.tokens == [1, 2, 3, 4, 5, 6]
    assert tree.parents == [-1, 0, 0, -1, -1, 4]
    assert tree.paths == [[0, 1], [0, 2], [3], [4, 5]]


def test_tree_scoring_equals_naive_scoring_with_mixed_lengths(tiny):
    policy = LMPolicy(*tiny, bf16=False)
    scores = policy.score(OBSERVATIONS)
    for row, observation in enumerate(OBSERVATIONS):
        torch.testing.assert_close(scores.phrase_log_likelihoods[row], naive_phrase_log_likelihoods(policy, observation),
                                   atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(scores.probs.sum(-1), torch.ones(3))


def test_real_model_tree_scoring_equals_naive(smollm2):
    policy = LMPolicy(*smollm2, bf16=False)
    scores = policy.score(OBSERVATIONS[:2])
    for row, observation in enumerate(OBSERVATIONS[:2]):
        torch.testing.assert_close(scores.phrase_log_likelihoods[row], naive_phrase_log_likelihoods(policy, observation),
                                   atol=1e-3, rtol=1e-4)


def test_batch_rows_do_not_leak_into_each_other(tiny):
    policy = LMPolicy(*tiny, bf16=False)
    alone = policy.score([OBSERVATIONS[1]]).log_probs
    together = policy.score(OBSERVATIONS).log_probs[1:2]
    torch.testing.assert_close(alone, together, atol=1e-5, rtol=1e-5)


def test_mean_normalisation_divides_by_phrase_length(tiny):
    policy = LMPolicy(*tiny, bf16=False, normalization="mean")
    scores = policy.score(OBSERVATIONS[:1])
    lengths = torch.tensor([len(encode(policy.tokenizer, p)) for p in ACTION_PHRASES], dtype=torch.float)
    torch.testing.assert_close(scores.log_probs[0], torch.log_softmax(scores.phrase_log_likelihoods[0] / lengths, -1))
    with pytest.raises(ValueError, match="'sum' or 'mean'"):
        LMPolicy(*tiny, normalization="max")


def test_system_cache_is_reused_and_refreshed_when_weights_change(tiny):
    import copy

    model = copy.deepcopy(tiny[0])
    policy = LMPolicy(model, tiny[1], bf16=False)
    with torch.no_grad():
        before = policy.score(OBSERVATIONS[:1]).log_probs
        first = policy._prefix_cache[()]
        policy.score(OBSERVATIONS[:1])
        assert policy._prefix_cache[()] is first
        weight = next(p for p in model.parameters() if p.requires_grad)
        weight.add_(0.05)  # what an optimizer step does
        after = policy.score(OBSERVATIONS[:1]).log_probs
    assert policy._prefix_cache[()] is not first
    assert not torch.allclose(before, after)


def test_gradient_path_matches_cached_path(tiny):
    import copy

    from peft import LoraConfig, get_peft_model

    model = get_peft_model(copy.deepcopy(tiny[0]), LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    policy = LMPolicy(model, tiny[1], bf16=False, value_head=True)
    with torch.no_grad():
        cached = policy.score(OBSERVATIONS)
    fresh = policy.score(OBSERVATIONS)
    assert fresh.log_probs.requires_grad
    torch.testing.assert_close(fresh.log_probs.detach(), cached.log_probs, atol=1e-5, rtol=1e-5)
    fresh.log_probs[:, 0].sum().backward()
    lora_grads = [p.grad for n, p in model.named_parameters() if "lora_" in n]
    assert any(g is not None and g.abs().sum() > 0 for g in lora_grads)


def test_generate_keeps_raw_parsed_and_executed_apart(tiny):
    policy = LMPolicy(*tiny, bf16=False)
    gens = policy.generate(OBSERVATIONS[:2], max_new_tokens=6)
    for g in gens:
        assert isinstance(g.raw_text, str)
        assert g.parsed == parse_action(g.raw_text)
        if g.invalid:
            assert g.fallback in ACTION_PHRASES and g.action == ACTION_PHRASES.index(g.fallback)
        else:
            assert g.fallback is None and g.action == ACTION_PHRASES.index(g.parsed)


def test_bf16_choice_matches_fp32_on_fixed_states(smollm2):
    from agent.policy import bf16_is_fast

    if not bf16_is_fast(torch.device("cpu")):
        pytest.skip("this CPU has no native bf16")
    fp32 = LMPolicy(*smollm2, bf16=False).score(OBSERVATIONS)
    bf16 = LMPolicy(*smollm2, bf16=True).score(OBSERVATIONS)
    assert torch.equal(fp32.actions, bf16.actions)


def test_cached_lower_layers_give_the_full_pass_scores_and_gradients():
    """LoRA in the top layer only: the frozen layer below is run once per state and once for
    the system part, and kept (`LMPolicy._lower_hidden`, `_system_kv_split`); scores and LoRA
    gradients, the system part's included, equal the full forward pass's."""
    import torch

    from evals.throughput import sample_states
    from training.lora import trainable_parameters, trainable_policy

    policy = trainable_policy("tiny-random", rank=4, value_head=True, bf16=False, device="cpu", lora_layers=1)
    torch.manual_seed(0)
    for name, weight in policy.named_parameters():
        if "lora_B" in name:  # a non-zero adapter, so the top layer's LoRA matters
            with torch.no_grad():
                weight.normal_(0, 0.1)  # in place, as an optimizer step: the prefix is then rerun with gradients
    assert policy._frozen_layers() == 1
    ids = [policy.state_ids(t) for t in dict.fromkeys(sample_states(12))][:5]
    params = trainable_parameters(policy)

    def scores_and_grads():
        for p in params:
            p.grad = None
        out = policy.score_ids(ids)
        (out.log_probs[:, 2].sum() + out.values.sum()).backward()
        return out.log_probs.detach(), torch.cat([p.grad.flatten() for p in params])

    split = scores_and_grads()
    assert len(policy.lower) == len(ids)
    assert policy._system_lower, "the system part's lower layers should be kept too"
    again = scores_and_grads()  # now from the cache
    policy._frozen_layers = lambda: 0
    full = scores_and_grads()
    for got in (split, again):
        torch.testing.assert_close(got[0], full[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got[1], full[1], atol=1e-5, rtol=1e-4)


def test_lower_rows_kept_on_disk_are_read_back_by_a_new_policy_and_only_for_the_same_weights(tmp_path):
    """keep_lower_rows: a second policy over the same states reads the first one's rows from
    disk (a changed file changes its scores, so they really come from there) and matches a
    plain forward pass; other lower weights get another folder."""
    from evals.throughput import sample_states
    from training.lora import trainable_policy

    def policy_with_rows():
        policy = trainable_policy("tiny-random", rank=4, value_head=False, bf16=False, device="cpu", lora_layers=1)
        policy.keep_lower_rows(tmp_path)
        return policy

    first = policy_with_rows()
    ids = [first.state_ids(t) for t in dict.fromkeys(sample_states(12))][:4]
    with torch.no_grad():
        kept = first.score_ids(ids).log_probs
    folders = list(tmp_path.iterdir())
    assert len(folders) == 1 and len(list(folders[0].glob("*.pt"))) == len(ids)

    second = policy_with_rows()
    with torch.no_grad():
        torch.testing.assert_close(second.score_ids(ids).log_probs, kept, atol=1e-5, rtol=1e-5)
        second._frozen_layers = lambda: 0
        torch.testing.assert_close(second.score_ids(ids).log_probs, kept, atol=1e-5, rtol=1e-5)

    changed = sorted(folders[0].glob("*.pt"))
    for path in changed:
        torch.save(torch.load(path, weights_only=True) + 1.0, path)
    with torch.no_grad():
        assert not torch.allclose(policy_with_rows().score_ids(ids).log_probs, kept, atol=1e-3)

    other = policy_with_rows()
    with torch.no_grad():
        other.backbone.embed_tokens.weight.mul_(1.01)
        other.score_ids(ids[:1])
    assert len(list(tmp_path.iterdir())) == 2, "other lower weights must not read these rows"


def test_answer_log_probs_equal_a_plain_forward_pass_with_and_without_cached_lower_layers():
    """Teacher-forced answer likelihood (generate-mode training) = the sum of the answer's
    token log-probs in one plain forward pass over system + state + answer; gradients too."""
    from agent.prompts import REASON_SYSTEM
    from training.lora import trainable_parameters, trainable_policy

    policy = trainable_policy("tiny-random", rank=4, value_head=False, bf16=False, device="cpu", lora_layers=1,
                              system=REASON_SYSTEM)
    torch.manual_seed(0)
    for name, weight in policy.named_parameters():
        if "lora_B" in name:
            with torch.no_grad():
                weight.normal_(0, 0.1)
    states = [policy.state_ids(o) for o in OBSERVATIONS]
    answers = [encode(policy.tokenizer, a) for a in ("Reason: the goal is 2 forward, so I go forward.\nAction: go forward",
                                                      "Reason: x\nAction: turn left", "Action: done")]
    params = trainable_parameters(policy)

    def plain():
        total = []
        for s, a in zip(states, answers):
            ids = policy.system_ids + s + a
            logp = torch.log_softmax(policy.model(torch.tensor([ids])).logits[0].float(), -1)
            start = len(policy.system_ids) + len(s) - 1
            total.append(sum(logp[start + j, t] for j, t in enumerate(a)))
        return torch.stack(total)

    def with_grads(fn):
        for p in params:
            p.grad = None
        out = fn()
        out.sum().backward()
        return out.detach(), torch.cat([p.grad.flatten() for p in params])

    expected = with_grads(plain)
    split = with_grads(lambda: policy.answer_log_probs(states, answers))
    again = with_grads(lambda: policy.answer_log_probs(states, answers))  # lower layers from the cache
    policy._frozen_layers = lambda: 0
    full = with_grads(lambda: policy.answer_log_probs(states, answers))
    for got in (split, again, full):
        torch.testing.assert_close(got[0], expected[0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(got[1], expected[1], atol=1e-5, rtol=1e-3)


SETS = [("move left", "move down", "move right", "move up"), ("go north", "take apple", "open the door"),
        ("turn left", "go forward")]


def naive_set_log_likelihoods(policy, observation, phrases):
    """Each of `phrases` scored by a full forward pass over system + state + phrase."""
    prompt = policy.system_ids + policy.state_ids(observation)
    out = []
    for phrase in phrases:
        ids = encode(policy.tokenizer, phrase)
        with torch.no_grad():
            logp = torch.log_softmax(policy.model(torch.tensor([prompt + ids])).logits[0].float(), -1)
        out.append(sum(logp[len(prompt) - 1 + i, t] for i, t in enumerate(ids)))
    return torch.stack(out)


def test_each_row_scores_its_own_phrase_set_as_a_full_forward_pass(tiny):
    policy = LMPolicy(*tiny, bf16=False)
    scores = policy.score(OBSERVATIONS, SETS)
    assert scores.log_probs.shape == (3, 4)
    for row, (observation, phrases) in enumerate(zip(OBSERVATIONS, SETS)):
        own = scores.phrase_log_likelihoods[row, :len(phrases)]
        torch.testing.assert_close(own, naive_set_log_likelihoods(policy, observation, phrases), atol=1e-4, rtol=1e-4)
        assert torch.isinf(scores.log_probs[row, len(phrases):]).all()  # past its own set
        torch.testing.assert_close(scores.log_probs[row, :len(phrases)].exp().sum(), torch.tensor(1.0))
    # The fixed set given explicitly is the default path, bit for bit.
    assert torch.equal(policy.score(OBSERVATIONS, [ACTION_PHRASES] * 3).log_probs, policy.score(OBSERVATIONS).log_probs)


def test_rows_of_very_different_lengths_run_in_groups_and_come_back_in_order(tiny):
    from agent.policy import length_groups

    policy = LMPolicy(*tiny, bf16=False)
    observations = [OBSERVATIONS[0], " ".join([OBSERVATIONS[1]] * 6), OBSERVATIONS[2]]
    sizes = [len(policy.state_ids(o)) + len(policy._tree(s).inner) for o, s in zip(observations, SETS)]
    assert len(length_groups(sizes)) >= 2  # the long row runs apart from the short ones
    scores = policy.score(observations, SETS)
    assert scores.log_probs.shape == (3, 4) and scores.tokens > 0
    for row, (observation, phrases) in enumerate(zip(observations, SETS)):
        own = scores.phrase_log_likelihoods[row, :len(phrases)]
        torch.testing.assert_close(own, naive_set_log_likelihoods(policy, observation, phrases), atol=1e-4, rtol=1e-4)
        assert torch.isinf(scores.log_probs[row, len(phrases):]).all()
    assert length_groups([100, 124, 126, 500, 30]) == [[4], [0, 1], [2], [3]]
    # one group whose rows length_groups sorted: they still come back in the batch's order
    pair = ["Mission: go to the red door. You see a wall.", "Mission: go to the door. You see a wall."]
    sizes = [len(policy.state_ids(o)) + len(policy._tree(s).inner) for o, s in zip(pair, SETS[1:])]
    assert length_groups(sizes) == [[1, 0]]
    together = policy.score(pair, SETS[1:]).log_probs
    for row in range(2):
        torch.testing.assert_close(together[row, :len(SETS[1 + row])], policy.score(pair[row:row + 1], SETS[1 + row:2 + row]).log_probs[0])


def test_phrase_sets_through_cached_lower_layers_equal_the_full_pass():
    from training.lora import trainable_policy

    policy = trainable_policy("tiny-random", rank=4, value_head=False, bf16=False, device="cpu", lora_layers=1)
    ids = [policy.state_ids(t) for t in OBSERVATIONS]
    split = policy.score_ids(ids, SETS).log_probs.detach()
    again = policy.score_ids(ids, SETS).log_probs.detach()  # the lower rows now from the cache, keyed by tree
    other = policy.score_ids(ids, [SETS[1], SETS[2], SETS[0]]).log_probs.detach()  # same states, other trees
    known = len(policy.lower)
    alone = policy.score_ids(ids[2:], SETS[2:]).log_probs.detach()
    assert len(policy.lower) == known  # a state's rows are keyed by its own tree, not by the batch's others
    torch.testing.assert_close(alone[0], split[2, :2])
    policy._frozen_layers = lambda: 0
    torch.testing.assert_close(split, policy.score_ids(ids, SETS).log_probs.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, split)
    torch.testing.assert_close(other, policy.score_ids(ids, [SETS[1], SETS[2], SETS[0]]).log_probs.detach(),
                               atol=1e-5, rtol=1e-5)


def test_generate_parses_against_the_states_own_set(tiny):
    policy = LMPolicy(*tiny, bf16=False)
    [gen] = policy.generate(["Mission: reach the door."], phrases=[("go west", "go east")], max_new_tokens=3)
    assert gen.parsed in (None, "go west", "go east")
    assert gen.action in (0, 1) and (gen.fallback in ("go west", "go east") if gen.parsed is None else True)


def test_a_percept_cannot_open_a_chat_turn(tiny):
    """A game text carrying the template's markers (the benchmark's "chat" injection) reaches
    the model without them: the state part holds the template's markers only where the
    template put them, in the suffix."""
    from evals.injections import INJECTIONS

    policy = LMPolicy(*tiny)
    forged = "Mission: go to the door. " + INJECTIONS["chat"]
    specials = {t for t, info in policy.tokenizer.added_tokens_decoder.items() if info.special}
    suffix = encode(policy.tokenizer, policy.format.suffix)
    ids = policy.state_ids(forged)
    assert ids[-len(suffix):] == suffix and not specials & set(ids[:-len(suffix)])
    plain = "Mission: go to the door."
    assert policy.state_ids(plain) == encode(policy.tokenizer, plain + policy.format.suffix)
