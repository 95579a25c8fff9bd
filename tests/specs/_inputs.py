"""Valid random inputs of the functional losses (constants: the tests add gradients).

Builders are ``(seed, dtype) -> TensorDict`` and deterministic given the seed. Shapes are
small: on-policy batches are 2 trajectories of 5 steps; off-policy batches are 6 replayed
transitions, Q-ensembles of 2 critics.
"""

from __future__ import annotations

import functools

import torch
from tensordict import TensorDict
from torch import distributions as D

BATCH = (2, 5)  # [trajectories, time]
N_ACTIONS = 3
ACTION_DIM = 2


def diag_normal(loc: torch.Tensor, scale: torch.Tensor) -> D.Distribution:
    """A diagonal Gaussian policy with argument checks off (they read values, which
    ``vmap``/``compile`` cannot do)."""
    return D.Independent(D.Normal(loc, scale, validate_args=False), 1, validate_args=False)


def categorical(logits: torch.Tensor) -> D.Distribution:
    return D.Categorical(logits=logits, validate_args=False)


# --------------------------------------------------------------------------- on-policy inputs


def on_policy_td(
    seed: int,
    dtype: torch.dtype = torch.float32,
    *,
    dist: str = "categorical",
    advantage: bool = False,
    old_actor: bool = False,
) -> TensorDict:
    """A collector-like batch for the on-policy losses: current policy parameters
    (``actor_output``), behaviour log-probs close to the current ones (ratios near 1, some
    clipped), rewards, done flags (one episode ends mid-batch) and critic values; with
    ``advantage=True`` a given advantage and value target instead of the GAE inputs."""
    g = torch.Generator().manual_seed(seed)
    shape = torch.Size(BATCH)

    def randn(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)

    if dist == "categorical":
        params = {"logits": randn(*shape, N_ACTIONS)}
        policy = categorical(**params)
        action = torch.randint(N_ACTIONS, shape, generator=g)
    else:
        params = {"loc": randn(*shape, ACTION_DIM), "scale": randn(*shape, ACTION_DIM).exp() * 0.5 + 0.3}
        policy = diag_normal(**params)
        action = policy.sample()
    log_prob = policy.log_prob(action) + 0.3 * randn(*shape)
    done = torch.zeros(*shape, 1, dtype=torch.bool)
    done[0, 2] = True
    done[:, -1] = True
    terminated = done.clone()
    terminated[1, -1] = False  # truncated: bootstraps from V(s')
    data = {
        "actor_output": params,
        "action": action,
        "action_log_prob": log_prob,
        "state_value": randn(*shape, 1),
    }
    if advantage:
        data["advantage"] = randn(*shape, 1)
        data["value_target"] = randn(*shape, 1)
    else:
        data["next"] = {
            "reward": randn(*shape, 1),
            "done": done,
            "terminated": terminated,
            "state_value": randn(*shape, 1),
        }
    if old_actor:
        data["old_actor_output"] = {k: v + 0.1 * randn(*v.shape) for k, v in params.items()}
    return TensorDict(data, batch_size=shape)


# --------------------------------------------------------------------------- off-policy inputs

OFF_B, ENSEMBLE, K_SAMPLES = 6, 2, 3  # replayed transitions, critics, CQL action samples


#: the ensemble entries ``[E, B, ...]`` of each kind of off-policy input
ENSEMBLE_KEYS: dict[str, tuple] = {
    "td3": ("state_action_value", ("next", "state_action_value"), "state_action_value_actor"),
    "td3bc": ("state_action_value", ("next", "state_action_value"), "state_action_value_actor"),
    "redq": ("state_action_value", ("next", "state_action_value"), "state_action_value_actor"),
    "sac": ("state_action_value", ("next", "state_action_value"), "state_action_value_actor"),
    "cql": ("state_action_value", ("next", "state_action_value"), "state_action_value_actor",
            "cql_random_value", "cql_current_value", "cql_next_value"),
    "sac_v1": ("target_state_action_value", "state_action_value_actor"),
    "discrete_sac": ("action_value", ("next", "action_value")),
    "iql": ("state_action_value", "target_state_action_value"),
    "discrete_iql": ("state_action_value", "target_state_action_value"),
}


def off_policy_td(seed: int, dtype: torch.dtype = torch.float32, *, kind: str, nstep: bool = False,
                  batched: bool = False) -> TensorDict:
    """Replayed transitions with the network outputs each off-policy loss reads. Q-ensembles are
    ``[E, B, ...]`` (ensemble first) in a TensorDict without batch dimensions, or, with
    ``batched=True``, ``[B, E, ...]`` in a ``[B]``-batched one (TorchRL's replay layout).
    ``nstep=True`` adds n-step data: ``steps_to_next_obs`` in ``1..3``."""
    g = torch.Generator().manual_seed(seed)

    def randn(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)

    B, E, N, K = OFF_B, ENSEMBLE, N_ACTIONS, K_SAMPLES
    done = torch.zeros(B, 1, dtype=torch.bool)
    done[1] = done[2] = True
    terminated = done.clone()
    terminated[2] = False  # truncated: bootstraps from the next value
    data: dict = {"next": {"reward": randn(B, 1), "done": done, "terminated": terminated}}
    if kind in ("dqn", "discrete_cql"):
        data["action_value"] = randn(B, N)
        data["next"]["action_value"] = randn(B, N)
        data["action"] = torch.randint(N, (B,), generator=g)
    elif kind == "ddpg":
        data["state_action_value"] = randn(B, 1)
        data["next"]["state_action_value"] = randn(B, 1)
        data["state_action_value_actor"] = randn(B, 1)
    elif kind in ("td3", "sac", "cql"):
        data["state_action_value"] = randn(E, B, 1)
        data["next"]["state_action_value"] = randn(E, B, 1)
        data["state_action_value_actor"] = randn(E, B, 1)
        if kind != "td3":
            data["log_prob"] = randn(B)
            data["next"]["log_prob"] = randn(B)
            data["action"] = randn(B, ACTION_DIM)
        if kind == "cql":
            for name in ("cql_random_value", "cql_current_value", "cql_next_value"):
                data[name] = randn(E, B, K, 1)
            data["cql_current_log_prob"] = randn(B, K)
            data["cql_next_log_prob"] = randn(B, K)
            data["bc_log_prob"] = randn(B)
    elif kind == "sac_v1":
        data["state_action_value"] = randn(B, 1)
        data["state_value"] = randn(B, 1)
        data["next"]["state_value"] = randn(B, 1)
        data["target_state_action_value"] = randn(E, B, 1)
        data["target_log_prob"] = randn(B)
        data["state_action_value_actor"] = randn(E, B, 1)
        data["log_prob"] = randn(B)
        data["action"] = randn(B, ACTION_DIM)
    elif kind == "discrete_sac":
        data["action_value"] = randn(E, B, N)
        data["next"]["action_value"] = randn(E, B, N)
        data["logits"] = randn(B, N)
        data["next"]["logits"] = randn(B, N)
        data["action"] = torch.randint(N, (B,), generator=g)
    elif kind in ("iql", "discrete_iql"):
        width = 1 if kind == "iql" else N
        data["state_action_value"] = randn(E, B, width)
        data["target_state_action_value"] = randn(E, B, width)
        data["state_value"] = randn(B, 1)
        data["next"]["state_value"] = randn(B, 1)
        data["log_prob"] = randn(B)
        if kind == "discrete_iql":
            data["action"] = torch.randint(N, (B,), generator=g)
    elif kind == "td3bc":
        data["state_action_value"] = randn(E, B, 1)
        data["next"]["state_action_value"] = randn(E, B, 1)
        data["state_action_value_actor"] = randn(E, B, 1)
        data["action"] = randn(B, ACTION_DIM)
        data["action_actor"] = randn(B, ACTION_DIM)
    elif kind == "redq":  # three critics, the target's minimum over critics 0 and 2
        data["state_action_value"] = randn(3, B, 1)
        data["next"]["state_action_value"] = randn(3, B, 1)
        data["state_action_value_actor"] = randn(3, B, 1)
        data["log_prob"] = randn(B)
        data["next"]["log_prob"] = randn(B)
        data["action"] = randn(B, ACTION_DIM)
        data["critic_subset"] = torch.tensor([0, 2])
    else:  # pragma: no cover
        raise ValueError(kind)
    if nstep:
        data["steps_to_next_obs"] = torch.randint(1, 4, (B,), generator=g)
    td = TensorDict(data, batch_size=[])
    return to_batched(td, ENSEMBLE_KEYS.get(kind, ())) if batched else td


def to_batched(td: TensorDict, ensemble_keys: tuple, batch: tuple | None = None) -> TensorDict:
    """The same input in TorchRL's replay layout: a TensorDict of batch ``B`` (the reward's,
    or ``batch``, reshaping the leading batch dim), ensemble entries ``[*B, E, ...]``."""
    b = tuple(td["next", "reward"].shape[:-1])
    batch = tuple(batch or b)
    out = TensorDict(batch_size=batch)
    for key, x in td.items(True, True):
        if key in ensemble_keys:
            x = x.reshape(x.shape[0], *batch, *x.shape[1 + len(b):]).movedim(0, len(batch))
        else:
            x = x.reshape(*batch, *x.shape[len(b):])
        out.set(key, x)
    return out


def on_policy(**options):
    """``on_policy_td`` with ``options`` bound, as a ``(seed, dtype)`` builder."""
    return functools.partial(on_policy_td, **options)


def off_policy(kind: str, **options):
    """``off_policy_td`` for ``kind`` (and ``nstep``/``batched``), as a ``(seed, dtype)`` builder."""
    return functools.partial(off_policy_td, kind=kind, **options)


def flat_given(seed: int, dtype: torch.dtype = torch.float32, *, n: int = 3) -> TensorDict:
    """A ``[B]`` batch of a categorical policy with the advantage, value target and old
    values given (no time dimension), as a minibatch sampled from a replay buffer."""
    g = torch.Generator().manual_seed(seed)
    B = 3

    def randn(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)

    logits = randn(B, n)
    return TensorDict(
        {
            "actor_output": {"logits": logits},
            "old_actor_output": {"logits": logits + 0.1},
            "action": torch.randint(n, (B,), generator=g),
            "action_log_prob": randn(B),
            "advantage": randn(B, 1),
            "value_target": randn(B, 1),
            "state_value": randn(B, 1),
            "old_state_value": randn(B, 1),
        },
        [B],
    )


def masked_categorical(logits: torch.Tensor, mask: torch.Tensor) -> D.Distribution:
    """An action-masking policy (TorchRL's ``MaskedCategorical`` semantics): masked logits."""
    return D.Categorical(logits=logits.masked_fill(~mask, -1e9), validate_args=False)


def composite(params) -> D.Distribution:
    """A two-head policy: a diagonal Gaussian ``"move"`` and a categorical ``"grip"``."""
    from tensordict.nn import CompositeDistribution

    return CompositeDistribution(params, distribution_map={"move": diag_normal, "grip": categorical},
                                 name_map={"move": ("action", "move"), "grip": ("action", "grip")})


def layout_td(seed: int, dtype: torch.dtype = torch.float32, *, layout: str) -> TensorDict:
    """The input layouts beyond one plain head: ``"masked"`` (a bool ``mask`` parameter),
    ``"composite"`` (two heads, per-head log-probs) and ``"multi_agent"`` (a ``[B, T]``
    TensorDict whose entries are ``[B, T, N, ...]``, time at the TensorDict's last batch dim)."""
    td = on_policy_td(seed, dtype, advantage=False)
    g = torch.Generator().manual_seed(seed + 100)
    shape = torch.Size(BATCH)

    def randn(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)

    if layout == "masked":
        mask = torch.rand(*shape, N_ACTIONS, generator=g) < 0.7
        mask[..., 0] = True
        td["action"] = torch.zeros(shape, dtype=torch.long)
        td["actor_output", "mask"] = mask
        td["action_log_prob"] = masked_categorical(td["actor_output", "logits"], mask).log_prob(td["action"]) \
            + 0.3 * randn(*shape)
    elif layout == "composite":
        params = TensorDict({"move": {"loc": randn(*shape, ACTION_DIM), "scale": randn(*shape, ACTION_DIM).exp() * 0.5 + 0.3},
                             "grip": {"logits": randn(*shape, N_ACTIONS)}}, shape)
        dist = composite(params)
        move = params["move", "loc"] + params["move", "scale"] * randn(*shape, ACTION_DIM)
        action = TensorDict({"move": move, "grip": torch.randint(N_ACTIONS, shape, generator=g)}, shape)
        del td["actor_output"], td["action"], td["action_log_prob"]
        td["actor_output"] = {"params": params}
        td["action"] = action
        for head in ("move", "grip"):
            td["action", head + "_log_prob"] = dist.dists["action", head].log_prob(action[head]) + 0.3 * randn(*shape)
    else:  # multi_agent
        agents = shape + (4,)
        done = td["next", "done"].unsqueeze(-2).expand(*agents, 1).clone()
        logits = randn(*agents, N_ACTIONS)
        action = torch.randint(N_ACTIONS, agents, generator=g)
        td = TensorDict({
            "actor_output": {"logits": logits}, "action": action,
            "action_log_prob": categorical(logits).log_prob(action) + 0.3 * randn(*agents),
            "state_value": randn(*agents, 1),
            "next": {"reward": randn(*agents, 1), "done": done, "terminated": done.clone(), "state_value": randn(*agents, 1)},
        }, shape)
    return td


def layout(name: str):
    """``layout_td`` for ``name``, as a ``(seed, dtype)`` builder."""
    return functools.partial(layout_td, layout=name)
