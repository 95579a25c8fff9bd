"""Tiny tabular TorchRL environments for the meta-gradient examples (no downloads).

:class:`TabularMDP` is a batched :class:`~torchrl.envs.EnvBase`: every sub-environment of
the batch may be a different finite MDP (deterministic transitions, Gaussian rewards),
given by tables of shape ``[*batch, S, A]``. Observations are one-hot states ``[*batch, S]``,
actions integers in ``[0, A)``. One instance steps a whole population of tasks at once,
which is what the LPG example needs (``[n_tasks, n_envs]``) and keeps rollouts cheap.

Builders:

- :func:`delayed_reward`: "a small reward now or a larger one ``delay`` steps later". The
  undiscounted return favours waiting; a discount below ``(r_now / r_later) ** (1 / delay)``
  makes an agent take the small one. The better discount is known in advance (MGRL).
- :func:`bandit`: a one-step task (every step ends an episode) with per-arm mean rewards.
- :func:`corridor`: a short corridor with the goal at one end and a small distractor
  reward at the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, OneHot, Unbounded
from torchrl.envs import EnvBase

__all__ = ["TabularTask", "TabularMDP", "delayed_reward", "bandit", "corridor", "stack_tasks"]


@dataclass
class TabularTask:
    """A finite MDP with deterministic transitions.

    Attributes:
        next_state: ``[S, A]`` long, successor of ``(s, a)``.
        reward: ``[S, A]`` float, mean reward of ``(s, a)``.
        terminal: ``[S, A]`` bool, whether ``(s, a)`` ends the episode.
        start: the initial state.
        reward_noise: standard deviation of the Gaussian noise added to rewards.
        max_steps: episodes are truncated after this many steps.
    """

    next_state: torch.Tensor
    reward: torch.Tensor
    terminal: torch.Tensor
    start: int = 0
    reward_noise: float = 0.0
    max_steps: int = 20

    @property
    def n_states(self) -> int:
        return self.next_state.shape[0]

    @property
    def n_actions(self) -> int:
        return self.next_state.shape[1]


def delayed_reward(delay: int = 4, r_now: float = 0.1, r_later: float = 0.3, max_steps: int = 32) -> TabularTask:
    """Each step, action 0 pays ``r_now`` at once and action 1 pays ``r_later`` ``delay`` steps
    later. The state holds the last ``delay`` actions (``2 ** delay`` states), so the MDP is
    Markov and every state is reached by exploring; episodes are truncated (not terminated)
    after ``max_steps``.

    Action 1 is better for the undiscounted return (``r_later > r_now`` per step); for a
    discount ``gamma`` it is better only above ``gamma* = (r_now / r_later) ** (1 / delay)``:
    the better discount is known in advance.
    """
    n_states = 2**delay
    s = torch.arange(n_states)
    a = torch.arange(2)
    # bit i of the state: the action taken i + 1 steps ago; the oldest bit pays now
    next_state = ((s[:, None] << 1) | a[None, :]) & (n_states - 1)
    pays = ((s >> (delay - 1)) & 1).to(torch.float32)
    reward = r_later * pays[:, None] + r_now * (a[None, :] == 0).to(torch.float32)
    terminal = torch.zeros(n_states, 2, dtype=torch.bool)
    return TabularTask(next_state, reward, terminal, max_steps=max_steps)


def bandit(means: list[float], n_states: int = 1, reward_noise: float = 0.1) -> TabularTask:
    """A multi-armed bandit: one state, ``len(means)`` arms, every pull ends the episode.

    ``n_states`` pads the state space (unused states) so that bandits and MDPs of the same
    size can be stacked into one batched environment.
    """
    n_actions = len(means)
    next_state = torch.zeros(n_states, n_actions, dtype=torch.long)
    reward = torch.tensor(means, dtype=torch.float32).expand(n_states, n_actions).clone()
    terminal = torch.ones(n_states, n_actions, dtype=torch.bool)
    return TabularTask(next_state, reward, terminal, reward_noise=reward_noise, max_steps=1)


def corridor(length: int = 4, n_actions: int = 3, goal_right: bool = True, r_goal: float = 1.0,
             r_distractor: float = 0.1, max_steps: int = 8, reward_noise: float = 0.0) -> TabularTask:
    """A corridor of ``length`` states starting in the middle; action 0 goes left, 1 right,
    any other action stays. Leaving at the goal end gives ``r_goal``, at the other end
    ``r_distractor``; both end the episode."""
    s = torch.arange(length)
    moves = torch.zeros(n_actions, dtype=torch.long)
    moves[0], moves[1] = -1, 1
    target = s[:, None] + moves[None, :]
    terminal = (target < 0) | (target >= length)
    reward = torch.zeros(length, n_actions)
    goal = target >= length if goal_right else target < 0
    reward[goal] = r_goal
    reward[terminal & ~goal] = r_distractor
    next_state = target.clamp(0, length - 1)
    return TabularTask(next_state, reward, terminal, start=length // 2, max_steps=max_steps,
                       reward_noise=reward_noise)


def stack_tasks(tasks: list[TabularTask], n_envs: int) -> dict[str, torch.Tensor]:
    """Tables of ``len(tasks)`` tasks (same ``S`` and ``A``), each repeated ``n_envs`` times:
    batch shape ``[n_tasks, n_envs]``."""
    shapes = {(t.n_states, t.n_actions) for t in tasks}
    if len(shapes) != 1:
        raise ValueError(f"tasks must share the number of states and actions, got {sorted(shapes)}")

    def stack(fn, dtype=None):
        x = torch.stack([torch.as_tensor(fn(t), dtype=dtype) for t in tasks])
        return x.unsqueeze(1).expand(len(tasks), n_envs, *x.shape[1:]).contiguous()

    return {
        "next_state": stack(lambda t: t.next_state),
        "reward": stack(lambda t: t.reward),
        "terminal": stack(lambda t: t.terminal),
        "start": stack(lambda t: t.start, torch.long),
        "reward_noise": stack(lambda t: t.reward_noise, torch.float32),
        "max_steps": stack(lambda t: t.max_steps, torch.long),
    }


class TabularMDP(EnvBase):
    """A batch of finite MDPs as one TorchRL environment.

    Args:
        tasks: one :class:`TabularTask` (broadcast to ``batch_size``) or the tables of
            :func:`stack_tasks` (batch shape ``[n_tasks, n_envs]``).
        batch_size: batch shape; for a single task, e.g. ``[n_envs]``.
        seed: seed of the environment's own generator (reward noise).

    Entries: ``"observation"`` one-hot ``[*batch, S]``, ``"action"`` long ``[*batch]``,
    ``("next", "reward")`` ``[*batch, 1]``, ``done``/``terminated``/``truncated`` ``[*batch, 1]``.
    """

    def __init__(self, tasks: TabularTask | dict, batch_size=(), seed: int = 0) -> None:
        if isinstance(tasks, TabularTask):
            batch_size = torch.Size(batch_size)
            tables = {
                "next_state": tasks.next_state, "reward": tasks.reward, "terminal": tasks.terminal,
                "start": torch.tensor(tasks.start), "reward_noise": torch.tensor(float(tasks.reward_noise)),
                "max_steps": torch.tensor(tasks.max_steps),
            }
            tables = {k: v.expand(*batch_size, *v.shape).contiguous() for k, v in tables.items()}
        else:
            tables = tasks
            batch_size = tables["start"].shape
        super().__init__(batch_size=batch_size)
        self.tables = tables
        self.n_states = tables["next_state"].shape[-2]
        self.n_actions = tables["next_state"].shape[-1]
        self.state = tables["start"].clone()
        self.steps = torch.zeros(batch_size, dtype=torch.long)
        self.observation_spec = Composite(
            observation=OneHot(self.n_states, shape=(*batch_size, self.n_states), dtype=torch.float32),
            shape=batch_size,
        )
        self.action_spec = Categorical(self.n_actions, shape=batch_size)
        self.reward_spec = Unbounded(shape=(*batch_size, 1))
        self.done_spec = Composite(
            done=Bounded(0, 1, shape=(*batch_size, 1), dtype=torch.bool),
            terminated=Bounded(0, 1, shape=(*batch_size, 1), dtype=torch.bool),
            truncated=Bounded(0, 1, shape=(*batch_size, 1), dtype=torch.bool),
            shape=batch_size,
        )
        self._generator = torch.Generator().manual_seed(seed)

    def _observation(self) -> torch.Tensor:
        return torch.nn.functional.one_hot(self.state, self.n_states).to(torch.float32)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        mask = None if tensordict is None else tensordict.get("_reset", None)
        if mask is None:
            self.state = self.tables["start"].clone()
            self.steps.zero_()
        else:
            mask = mask.reshape(self.batch_size)
            self.state = torch.where(mask, self.tables["start"], self.state)
            self.steps = torch.where(mask, torch.zeros_like(self.steps), self.steps)
        false = torch.zeros(*self.batch_size, 1, dtype=torch.bool)
        return TensorDict(
            {"observation": self._observation(), "done": false, "terminated": false.clone(),
             "truncated": false.clone()},
            batch_size=self.batch_size,
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get("action").reshape(self.batch_size).long()
        index = (*torch.meshgrid(*[torch.arange(n) for n in self.batch_size], indexing="ij"), self.state, action)
        reward = self.tables["reward"][index]
        noise = self.tables["reward_noise"]
        if bool((noise > 0).any()):
            reward = reward + noise * torch.randn(self.batch_size, generator=self._generator)
        terminated = self.tables["terminal"][index]
        self.state = self.tables["next_state"][index]
        self.steps = self.steps + 1
        truncated = (self.steps >= self.tables["max_steps"]) & ~terminated
        done = terminated | truncated
        return TensorDict(
            {
                "observation": self._observation(),
                "reward": reward.unsqueeze(-1).to(torch.float32),
                "done": done.unsqueeze(-1),
                "terminated": terminated.unsqueeze(-1),
                "truncated": truncated.unsqueeze(-1),
            },
            batch_size=self.batch_size,
        )

    def _set_seed(self, seed: int | None) -> None:
        self._generator.manual_seed(0 if seed is None else seed)
