"""GAE and the PPO loss against values computed by hand (shared by the LM PPO and the MLP baseline)."""

import math

import pytest
import torch

from training.ppo import gae, ppo_loss, unique_states


def test_gae_matches_hand_computed_values_and_cuts_at_done():
    # T=3, one env; the episode ends after step 1, so step 1 does not bootstrap from step 2.
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [1.0], [0.0]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    adv, ret = gae(rewards, values, dones, torch.tensor([3.0]), gamma=0.9, lam=0.8)
    # t=2: 2 + 0.9*3 - 0 = 4.7; t=1: 0 - 1 = -1 (cut); t=0: (1 + 0.9*1 - 0.5) + 0.9*0.8*(-1) = 0.68
    torch.testing.assert_close(adv.squeeze(1), torch.tensor([0.68, -1.0, 4.7]))
    torch.testing.assert_close(ret.squeeze(1), torch.tensor([1.18, 0.0, 4.7]))


def test_ppo_loss_terms_match_hand_computed_values():
    log_probs = torch.log(torch.tensor([[0.25, 0.75]]))
    terms = ppo_loss(log_probs, values=torch.tensor([1.0]), actions=torch.tensor([0]),
                     old_log_probs=torch.log(torch.tensor([0.5])), old_values=torch.tensor([0.0]),
                     advantages=torch.tensor([2.0]), returns=torch.tensor([2.0]), clip_coef=0.2, vf_clip=0.5,
                     vf_coef=0.5, ent_coef=0.1, kl_coef=1.0, base_log_probs=torch.log(torch.tensor([[0.5, 0.5]])))
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    kl = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    # ratio 0.5 -> max(-2*0.5, -2*0.8) = -1; value clipped to 0.5 -> 0.5*max(1, 2.25) = 1.125
    assert terms.policy.item() == pytest.approx(-1.0)
    assert terms.value.item() == pytest.approx(1.125)
    assert terms.entropy.item() == pytest.approx(entropy)
    assert terms.kl_base.item() == pytest.approx(kl, abs=1e-6)
    assert terms.total.item() == pytest.approx(-1.0 + 0.5 * 1.125 - 0.1 * entropy + kl, abs=1e-6)
    assert terms.approx_kl.item() == pytest.approx(-0.5 + math.log(2))
    assert terms.clipfrac.item() == 1.0


def test_ppo_loss_without_value_clip_and_with_scale():
    log_probs = torch.log(torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    terms = ppo_loss(log_probs, torch.tensor([1.0, 1.0]), torch.tensor([0, 1]), torch.log(torch.tensor([0.5, 0.5])),
                     torch.tensor([0.0, 0.0]), torch.tensor([1.0, -1.0]), torch.tensor([3.0, 1.0]),
                     0.2, None, 1.0, 0.0, scale=4)
    # ratio 1 everywhere: pg = -1 + 1 = 0; value 0.5*(4 + 0) = 2; summed then divided by 4
    assert terms.policy.item() == pytest.approx(0.0)
    assert terms.value.item() == pytest.approx(0.5)
    assert terms.clipfrac.item() == 0.0


def test_unique_states_gathers_rows_back():
    states, rows = unique_states([(1,), (2, 3), (1,), (4,)])
    assert states == [(1,), (2, 3), (4,)] and rows.tolist() == [0, 1, 0, 2]
