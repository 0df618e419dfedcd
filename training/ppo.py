"""PPO as pure functions of tensors: GAE and the loss, shared by the LM PPO and the MLP baseline.

Per sample: clipped policy-gradient term, clipped value loss, entropy bonus and an
optional exact KL(pi || pi_base) over the 7 actions (the frozen base is the LM without
its adapter). Minibatches are evaluated on their distinct states only and gathered back
to samples (`unique_states`), which gives the same loss and gradients as one row per
sample.

>>> unique_states([(1, 2), (3,), (1, 2)])
([(1, 2), (3,)], tensor([0, 1, 0]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def unique_states(keys: list[tuple[int, ...]]) -> tuple[list[tuple[int, ...]], torch.Tensor]:
    """Distinct keys in first-seen order and, per sample, the row of its key."""
    index: dict[tuple[int, ...], int] = {}
    rows = [index.setdefault(k, len(index)) for k in keys]
    return list(index), torch.tensor(rows, dtype=torch.long)


@dataclass
class LossTerms:
    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    kl_base: torch.Tensor
    approx_kl: torch.Tensor
    clipfrac: torch.Tensor


def ppo_loss(log_probs: torch.Tensor, values: torch.Tensor, actions: torch.Tensor, old_log_probs: torch.Tensor,
             old_values: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor, clip_coef: float,
             vf_clip: float | None, vf_coef: float, ent_coef: float, kl_coef: float = 0.0,
             base_log_probs: torch.Tensor | None = None, scale: float | None = None) -> LossTerms:
    """PPO loss over samples (rows: S x A log-probs, S values, ...), summed and divided by `scale`.

    `scale` is the minibatch size, so micro-batches of one minibatch add up to its mean;
    it defaults to the number of rows here.
    """
    scale = scale or len(actions)
    new_log_prob = log_probs.gather(1, actions[:, None]).squeeze(1)
    log_ratio = new_log_prob - old_log_probs
    ratio = log_ratio.exp()
    pg = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef))
    if vf_clip is not None and vf_clip > 0:
        clipped = old_values + (values - old_values).clamp(-vf_clip, vf_clip)
        v_loss = 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2)
    else:
        v_loss = 0.5 * (values - returns) ** 2
    probs = log_probs.exp()
    entropy = -(probs * log_probs).sum(-1)
    kl_base = (probs * (log_probs - base_log_probs)).sum(-1) if base_log_probs is not None else torch.zeros_like(entropy)
    total = (pg + vf_coef * v_loss - ent_coef * entropy + kl_coef * kl_base).sum() / scale
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).sum() / scale
        clipfrac = ((ratio - 1).abs() > clip_coef).float().sum() / scale
    return LossTerms(total, pg.sum() / scale, v_loss.sum() / scale, entropy.sum() / scale,
                     kl_base.sum() / scale, approx_kl, clipfrac)


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, next_value: torch.Tensor,
        gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over T x N; `dones[t]` cuts the bootstrap after step t.

    >>> adv, ret = gae(torch.tensor([[1.0]]), torch.tensor([[0.5]]), torch.tensor([[1.0]]), torch.tensor([9.0]), 0.9, 0.95)
    >>> adv.item(), ret.item()
    (0.5, 1.0)
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        following = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * following * alive - values[t]
        running = delta + gamma * lam * alive * running
        advantages[t] = running
    return advantages, advantages + values
