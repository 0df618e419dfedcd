"""Classic PPO from scratch: a small MLP on MiniGrid's symbolic observation (CleanRL style).

    python training/ppo_baseline.py --env MiniGrid-DoorKey-5x5-v0 --total-steps 300000 --out runs/mlp

The reference point for the LM agents: same env, same reward, same training and held-out
levels (`envs.levels`), same greedy success measure (the one episode loop) and the same
GAE and PPO loss as the LM (`training.ppo`). The input is the 7x7x3 egocentric
encoding (object, colour, state indices, one-hot) plus the direction, as in the classic
MiniGrid baselines; the network has no idea what the words mean, so it must learn
everything from reward.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX
from torch import nn

import envs
from agent import threads
from agent.cli import CommonConfig, check_out_folder, check_range, option, out_option, parse_and_run, switch
from agent.episodes import Decision, take_step
from envs import seeds as seed_policy
from envs.levels import check_splittable, training_env
from training import ppo
from training.evaluate import evaluate, validation_seeds
from training.logs import MetricLog, plot_learning_curve


@dataclass
class BaselineConfig(CommonConfig):
    seed: int = option(1, "seed of network init, sampling and minibatch order")
    out: str = out_option("runs/ppo-baseline", "run folder: metrics.csv, tensorboard/, summary.json, learning_curve.png")
    total_steps: int = option(300_000, "env steps over all envs")
    num_envs: int = option(16, "envs stepped in lockstep")
    num_steps: int = option(128, "steps per env per rollout")
    learning_rate: float = option(2.5e-4, "Adam learning rate, decayed linearly to 0")
    gamma: float = option(0.99, "discount factor")
    gae_lambda: float = option(0.95, "GAE lambda")
    update_epochs: int = option(4, "passes over each rollout")
    num_minibatches: int = option(4, "minibatches per pass")
    clip_coef: float = option(0.2, "PPO ratio clip")
    ent_coef: float = option(0.01, "entropy bonus")
    vf_coef: float = option(0.5, "value loss weight")
    max_grad_norm: float = option(0.5, "gradient clipping")
    eval_every: int = option(10_000, "env steps between greedy evaluations on validation levels")
    eval_episodes: int = option(100, "greedy evaluation on up to N distinct validation levels")
    all_levels: bool = switch("train on every level, held-out ones too (a transfer source, or a family too small "
                              "to split); evaluation then plays any levels, so it no longer measures unseen ones")

    def __post_init__(self):
        super().__post_init__()
        for name in ("total_steps", "num_envs", "num_steps", "update_epochs", "num_minibatches", "eval_every", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}.")
        check_range("--eval-episodes", self.eval_episodes, 1, seed_policy.MAX_EVAL_SEEDS)
        if not self.all_levels:
            check_splittable(self.env)
        check_out_folder(self.out)
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ValueError("--num-envs x --num-steps must divide by --num-minibatches; change one of them.")


def symbolic_features(obs) -> np.ndarray:
    """One-hot object/colour/state per cell (minigrid's own tables), plus the direction."""
    image = obs["image"].reshape(-1, 3).astype(np.int64)
    parts = [np.eye(len(OBJECT_TO_IDX))[image[:, 0]], np.eye(len(COLOR_TO_IDX))[image[:, 1]],
             np.eye(len(STATE_TO_IDX))[np.minimum(image[:, 2], len(STATE_TO_IDX) - 1)]]
    return np.concatenate([np.concatenate(parts, 1).ravel(), np.eye(4)[obs["direction"]]]).astype(np.float32)


class Agent(nn.Module):
    def __init__(self, size: int, actions: int = 7):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(size, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh())
        self.pi = nn.Linear(128, actions)
        self.v = nn.Linear(128, 1)

    def forward(self, x):
        h = self.body(x)
        return self.pi(h), self.v(h).squeeze(-1)


class GreedyMLP:
    """The network as an `agent.episodes` agent, so evaluation runs the one episode loop."""

    name = "mlp"

    def __init__(self, net: Agent):
        self.net = net

    def decide(self, observations, texts, env_list) -> list[Decision]:
        with torch.no_grad():
            logits, _ = self.net(torch.from_numpy(np.stack([symbolic_features(o) for o in observations])))
        return [Decision(int(a)) for a in logits.argmax(-1)]


def train(cfg: BaselineConfig) -> dict:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    env_id = envs.resolve_env_id(cfg.env)
    env_list = [training_env(env_id, cfg.all_levels) for _ in range(cfg.num_envs)]
    episode_count = [0] * cfg.num_envs
    stream = seed_policy.BASELINE_STREAM
    obs = [env.reset(seed=seed_policy.train_seed(i, 0, stream))[0] for i, env in enumerate(env_list)]
    agent = Agent(len(symbolic_features(obs[0])))
    optimizer = torch.optim.Adam(agent.parameters(), lr=cfg.learning_rate, eps=1e-5)
    batch = cfg.num_envs * cfg.num_steps
    updates = -(-cfg.total_steps // batch)
    log = MetricLog(out)
    rows, began, step, next_eval = [], time.time(), 0, 0
    seeds = validation_seeds(env_id, cfg.eval_episodes, cfg.all_levels)

    def record_eval():
        result = evaluate(GreedyMLP(agent), env_id, seeds)
        rows.append({"step": step, "success_rate": result.success_rate, "seconds": round(time.time() - began, 1)})
        log.write(step, {"eval/success_rate": rows[-1]["success_rate"], "charts/SPS": step / max(rows[-1]["seconds"], 1e-9)})
        print(f"step {step}: greedy success {rows[-1]['success_rate']:.2f} on {len(seeds)} "
              f"{'' if cfg.all_levels else 'validation '}levels", flush=True)

    for update in range(updates):
        optimizer.param_groups[0]["lr"] = cfg.learning_rate * (1 - update / updates)
        x = np.zeros((cfg.num_steps, cfg.num_envs, len(symbolic_features(obs[0]))), np.float32)
        actions, logps, values = (np.zeros((cfg.num_steps, cfg.num_envs), t) for t in (np.int64, np.float32, np.float32))
        rewards, dones = np.zeros((cfg.num_steps, cfg.num_envs), np.float32), np.zeros((cfg.num_steps, cfg.num_envs), np.float32)
        for t in range(cfg.num_steps):
            if step >= next_eval:
                record_eval()
                next_eval += cfg.eval_every
            x[t] = np.stack([symbolic_features(o) for o in obs])
            with torch.no_grad():
                logits, value = agent(torch.from_numpy(x[t]))
                dist = torch.distributions.Categorical(logits=logits)
                action = dist.sample()
            actions[t], logps[t], values[t] = action.numpy(), dist.log_prob(action).numpy(), value.numpy()
            for i, env in enumerate(env_list):
                outcome = take_step(env, obs[i], int(action[i]))
                obs[i], rewards[t, i], dones[t, i] = outcome.obs, outcome.reward, outcome.done
                if outcome.done:
                    episode_count[i] += 1
                    obs[i], _ = env.reset(seed=seed_policy.train_seed(i, episode_count[i], stream))
            step += cfg.num_envs
        with torch.no_grad():
            _, last_value = agent(torch.from_numpy(np.stack([symbolic_features(o) for o in obs])))
        advantages, returns = ppo.gae(torch.from_numpy(rewards), torch.from_numpy(values), torch.from_numpy(dones),
                                      last_value, cfg.gamma, cfg.gae_lambda)
        flat = lambda a: torch.as_tensor(a).reshape(batch, *a.shape[2:])
        bx, ba, blp, bv, badv, bret = flat(x), flat(actions), flat(logps), flat(values), flat(advantages), flat(returns)
        threads.follow()
        for _ in range(cfg.update_epochs):
            order = rng.permutation(batch)
            for mb in np.split(order, cfg.num_minibatches):
                logits, value = agent(bx[mb])
                adv = (badv[mb] - badv[mb].mean()) / (badv[mb].std() + 1e-8)
                terms = ppo.ppo_loss(torch.log_softmax(logits, -1), value, ba[mb], blp[mb], bv[mb], adv, bret[mb],
                                     cfg.clip_coef, None, cfg.vf_coef, cfg.ent_coef)
                optimizer.zero_grad()
                terms.total.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
                optimizer.step()
    record_eval()
    log.close()
    first = lambda level: next((r["step"] for r in rows if r["success_rate"] >= level), None)
    summary = {"config": asdict(cfg), "env": env_id, "steps_to_0.5": first(0.5), "steps_to_0.8": first(0.8),
               "steps_to_0.95": first(0.95), "final_success": rows[-1]["success_rate"], "seconds": rows[-1]["seconds"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot_learning_curve(out, f"MLP PPO from scratch on {env_id}")
    return summary


def main(argv=None) -> int:
    def run(cfg: BaselineConfig) -> int:
        print(json.dumps(train(cfg), indent=2))
        return 0

    return parse_and_run(BaselineConfig, run, argv, "python training/ppo_baseline.py", __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
