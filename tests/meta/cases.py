"""The table of functional losses covered by the meta-learning guarantees.

Each :class:`LossCase` says how to build a small valid input TensorDict for a loss and
which hyperparameters may be tensors with gradients. ``tests/meta/test_guarantees.py``
and ``tests/meta/test_meta_gradients.py`` run every guarantee (``torch.func.grad``,
``vmap`` vs a loop, ``torch.compile(fullgraph=True)`` vs eager, finite differences) on
every row, so covering a new loss is one entry in :data:`CASES`.

A builder ``make_td(seed, dtype)`` returns a TensorDict whose entries are constants
(no graph); the tests add gradients themselves. Shapes are kept small: a batch of 2
trajectories of 5 steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDict
from torch import distributions as D

from torchrl_functional.functional import (
    a2c_loss,
    clip_ppo_loss,
    cql_loss,
    ddpg_loss,
    discrete_cql_loss,
    discrete_iql_loss,
    discrete_sac_loss,
    dqn_loss,
    iql_loss,
    klpen_ppo_loss,
    ppo_loss,
    reinforce_loss,
    sac_loss,
    sac_v1_loss,
    td3_loss,
)

BATCH = (2, 5)  # [trajectories, time]
N_ACTIONS = 3
ACTION_DIM = 2


def diag_normal(loc: torch.Tensor, scale: torch.Tensor) -> D.Distribution:
    """A diagonal Gaussian policy with argument checks off (they read values, which
    ``vmap``/``compile`` cannot do)."""
    return D.Independent(D.Normal(loc, scale, validate_args=False), 1, validate_args=False)


def categorical(logits: torch.Tensor) -> D.Distribution:
    return D.Categorical(logits=logits, validate_args=False)


@dataclass(frozen=True)
class LossCase:
    """One row of the table.

    Attributes:
        id: test id.
        loss: the functional loss, called as ``loss(td, **kwargs, **{hyper: value})``.
        make_td: ``(seed, dtype) -> TensorDict``, a valid input of batch shape ``BATCH``.
        hypers: hyperparameters that may be tensors, with the value to evaluate them at.
        kwargs: other keyword arguments (the distribution class goes here).
        grad_inputs: entries of the input that carry gradients in real use (network
            outputs); the compile test checks gradients w.r.t. them too.
        compile: whether this row is the one compiled for its loss (compiling is slow:
            one row per loss).
        objective_keys: the outputs summed into the differentiated objective (default:
            every ``loss_*``). A loss whose math stops a hyperparameter's gradient on
            purpose (REINFORCE detaches the advantage in ``loss_actor``) lists the outputs
            where the gradient is defined, so finite differences can check it.
    """

    id: str
    loss: Callable[..., TensorDict]
    make_td: Callable[[int, torch.dtype], TensorDict]
    hypers: dict[str, float]
    kwargs: dict[str, Any] = field(default_factory=dict)
    grad_inputs: tuple = ()
    compile: bool = False
    objective_keys: tuple[str, ...] | None = None

    def total(self, out: TensorDict) -> torch.Tensor:
        """The scalar the guarantees differentiate: the sum of the objective outputs."""
        keys = self.objective_keys or [k for k in out.keys() if k.startswith("loss_")]
        return sum(out[k].sum() for k in keys)

    def objective(self, td: TensorDict, **hyper: Any) -> torch.Tensor:
        return self.total(self.loss(td, **self.kwargs, **hyper))


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


_gae = functools.partial(on_policy_td, advantage=False)
_given = functools.partial(on_policy_td, advantage=True)
_ACTOR = (("actor_output", "logits"), "state_value")
_ACTOR_NORMAL = (("actor_output", "loc"), ("actor_output", "scale"), "state_value")

CASES: list[LossCase] = [
    LossCase("ppo_loss-gae", ppo_loss, _gae, {"gamma": 0.9, "lmbda": 0.8, "entropy_coeff": 0.05},
             {"dist_class": categorical}, _ACTOR, compile=True),
    LossCase("clip_ppo_loss-gae", clip_ppo_loss, _gae,
             {"gamma": 0.9, "lmbda": 0.8, "clip_epsilon": 0.2, "critic_coeff": 0.5},
             {"dist_class": categorical}, _ACTOR, compile=True),
    LossCase("clip_ppo_loss-normal", clip_ppo_loss, functools.partial(_given, dist="normal"),
             {"clip_epsilon": 0.2, "entropy_coeff": 0.05},
             {"dist_class": diag_normal}, _ACTOR_NORMAL),
    LossCase("klpen_ppo_loss-gae", klpen_ppo_loss, functools.partial(_gae, old_actor=True),
             {"gamma": 0.9, "lmbda": 0.8, "beta": 0.7}, {"dist_class": categorical}, _ACTOR, compile=True),
    LossCase("a2c_loss-gae", a2c_loss, _gae, {"gamma": 0.9, "lmbda": 0.8, "entropy_coeff": 0.05},
             {"dist_class": categorical}, _ACTOR, compile=True),
    LossCase("a2c_loss-td_lambda", a2c_loss, _gae, {"gamma": 0.9, "lmbda": 0.8},
             {"dist_class": categorical, "value_estimator": "td_lambda"}, _ACTOR),
    LossCase("clip_ppo_loss-td0", clip_ppo_loss, _gae, {"gamma": 0.9, "clip_epsilon": 0.2},
             {"dist_class": categorical, "value_estimator": "td0"}, _ACTOR),
    LossCase("reinforce_loss-td1", reinforce_loss, _gae, {"gamma": 0.9},
             {"dist_class": categorical, "value_estimator": "td1"}, _ACTOR, objective_keys=("loss_value",)),
    LossCase("reinforce_loss-gae", reinforce_loss, _gae, {"gamma": 0.9, "lmbda": 0.8},
             {"dist_class": categorical, "loss_critic_type": "l2"}, _ACTOR, compile=True,
             objective_keys=("loss_value",)),
    LossCase("clip_ppo_loss-vtrace", clip_ppo_loss, _gae, {"gamma": 0.9, "clip_epsilon": 0.2},
             {"dist_class": categorical, "value_estimator": "vtrace", "rho_thresh": 0.9}, _ACTOR),
    LossCase("clip_ppo_loss-masked", clip_ppo_loss, functools.partial(layout_td, layout="masked"),
             {"gamma": 0.9, "lmbda": 0.8, "clip_epsilon": 0.2}, {"dist_class": masked_categorical}, _ACTOR),
    LossCase("ppo_loss-composite", ppo_loss, functools.partial(layout_td, layout="composite"),
             {"gamma": 0.9, "lmbda": 0.8, "entropy_coeff": 0.05},
             {"dist_class": composite, "keys": {"action": "action",
                                                "sample_log_prob": [("action", "move_log_prob"),
                                                                    ("action", "grip_log_prob")]}},
             (("actor_output", "params", "move", "loc"), "state_value")),
    LossCase("a2c_loss-multi_agent", a2c_loss, functools.partial(layout_td, layout="multi_agent"),
             {"gamma": 0.9, "lmbda": 0.8, "entropy_coeff": 0.05}, {"dist_class": categorical}, _ACTOR),
]


# --------------------------------------------------------------------------- off-policy inputs

OFF_B, ENSEMBLE, K_SAMPLES = 6, 2, 3  # replayed transitions, critics, CQL action samples


#: the ensemble entries ``[E, B, ...]`` of each kind of off-policy input
ENSEMBLE_KEYS: dict[str, tuple] = {
    "td3": ("state_action_value", ("next", "state_action_value"), "state_action_value_actor"),
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


def _off(kind: str):
    return functools.partial(off_policy_td, kind=kind)


CASES += [
    LossCase("dqn_loss", dqn_loss, _off("dqn"), {"gamma": 0.9}, {}, ("action_value",), objective_keys=("loss",)),
    LossCase("dqn_loss-td_lambda", dqn_loss, _off("dqn"), {"gamma": 0.9, "lmbda": 0.7},
             {"value_estimator": "td_lambda"}, ("action_value",), objective_keys=("loss",)),
    LossCase("ddpg_loss", ddpg_loss, _off("ddpg"), {"gamma": 0.9}, {},
             ("state_action_value", "state_action_value_actor"), compile=True),
    LossCase("td3_loss", td3_loss, _off("td3"), {"gamma": 0.9}, {},
             ("state_action_value", "state_action_value_actor")),
    LossCase("sac_loss", sac_loss, _off("sac"), {"gamma": 0.9}, {"log_alpha": -0.5},
             ("state_action_value", "state_action_value_actor", "log_prob"), compile=True),
    # alpha = exp(log_alpha) enters the critic target and the actor term detached (SAC's
    # stop-gradients): its gradient is defined through loss_alpha only
    LossCase("sac_loss-alpha", sac_loss, _off("sac"), {"log_alpha": -0.5}, {},
             ("log_prob",), objective_keys=("loss_alpha",)),
    LossCase("discrete_sac_loss", discrete_sac_loss, _off("discrete_sac"), {"gamma": 0.9}, {"log_alpha": -0.5},
             ("action_value", "logits"), compile=True),
    LossCase("discrete_sac_loss-alpha", discrete_sac_loss, _off("discrete_sac"), {"log_alpha": -0.5}, {},
             ("logits",), objective_keys=("loss_alpha",)),
    LossCase("iql_loss", iql_loss, _off("iql"), {"gamma": 0.9, "expectile": 0.7, "temperature": 3.0}, {},
             ("state_action_value", "state_value", "log_prob"), compile=True),
    LossCase("discrete_iql_loss", discrete_iql_loss, _off("discrete_iql"),
             {"gamma": 0.9, "expectile": 0.7, "temperature": 3.0}, {},
             ("state_action_value", "state_value", "log_prob"), compile=True),
    LossCase("cql_loss", cql_loss, _off("cql"), {"gamma": 0.9, "min_q_weight": 2.0}, {"log_alpha": -0.5},
             ("state_action_value", "cql_random_value", "log_prob", "bc_log_prob"), compile=True),
    LossCase("cql_loss-alpha", cql_loss, _off("cql"), {"log_alpha": -0.5}, {},
             ("log_prob",), objective_keys=("loss_alpha",)),
    LossCase("discrete_cql_loss", discrete_cql_loss, _off("discrete_cql"), {"gamma": 0.9}, {},
             ("action_value",), compile=True),
    LossCase("sac_v1_loss", sac_v1_loss, _off("sac_v1"), {"gamma": 0.9}, {"log_alpha": -0.5},
             ("state_action_value", "state_value", "log_prob"), compile=True),
    LossCase("sac_v1_loss-alpha", sac_v1_loss, _off("sac_v1"), {"log_alpha": -0.5}, {},
             ("log_prob",), objective_keys=("loss_alpha",)),
    # TorchRL's replay layouts: n-step data (MultiStep) and [B]-batched TensorDicts whose
    # ensembles follow the batch
    LossCase("td3_loss-batched", td3_loss, functools.partial(off_policy_td, kind="td3", batched=True),
             {"gamma": 0.9}, {}, ("state_action_value", "state_action_value_actor"), compile=True),
    LossCase("sac_loss-nstep-td_lambda", sac_loss, functools.partial(off_policy_td, kind="sac", nstep=True),
             {"gamma": 0.9, "lmbda": 0.8}, {"log_alpha": -0.5, "value_estimator": "td_lambda"},
             ("state_action_value", "log_prob")),
    LossCase("iql_loss-batched", iql_loss, functools.partial(off_policy_td, kind="iql", batched=True),
             {"gamma": 0.9, "expectile": 0.7, "temperature": 3.0}, {}, ("state_action_value", "state_value")),
    LossCase("dqn_loss-nstep", dqn_loss, functools.partial(off_policy_td, kind="dqn", nstep=True),
             {"gamma": 0.9}, {}, ("action_value",), compile=True, objective_keys=("loss",)),
]
