"""Actors, critics and batches for the on-policy layouts beyond one plain action head:
composite (multi-head) policies, action masking, multi-agent ``[B, T, N]`` data under
``("agents", ...)`` keys, and an actor that only offers ``get_dist``. Deterministic given
the seed, so TorchRL's class and ours can run on identical networks and data."""

from __future__ import annotations

import functools

import torch
from tensordict import TensorDict
from tensordict.nn import CompositeDistribution, NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.modules import IndependentNormal, MaskedCategorical, ProbabilisticActor, TanhNormal, ValueOperator

from tests.builders import OBS, Nets, assert_grads_close, assert_td_close, clone_nets, loss_sum

ACT = 2  # continuous dims of a head
N_DISC = 3  # discrete actions
N_AGENTS = 3


def _linear(g: torch.Generator, i: int, o: int) -> nn.Linear:
    layer = nn.Linear(i, o)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(o, i, generator=g) * 0.5)
        layer.bias.copy_(torch.randn(o, generator=g) * 0.1)
    return layer


class _Heads(nn.Module):
    """obs -> the parameters of each head: ``(loc, scale)`` of a continuous one, the logits of a
    discrete one (``"disc"``)."""

    def __init__(self, g: torch.Generator, heads: tuple[str, ...]) -> None:
        super().__init__()
        self.heads = heads
        self.body = nn.Sequential(_linear(g, OBS, 8), nn.Tanh())
        self.out = nn.ModuleList(
            _linear(g, 8, N_DISC) if h == "disc" else nn.Sequential(_linear(g, 8, 2 * ACT), NormalParamExtractor())
            for h in heads
        )

    def forward(self, obs):
        h = self.body(obs)
        outs = []
        for head, layer in zip(self.heads, self.out):
            outs.extend([layer(h)] if head == "disc" else layer(h))
        return tuple(outs)


def composite_nets(seed: int = 0, *, heads: tuple[str, ...] = ("cont", "disc"), tanh: bool = False) -> Nets:
    """A composite policy with one head per name in ``heads`` (``"disc"``: categorical, any other
    name: a continuous ``[ACT]`` head, TanhNormal with ``tanh``), written under
    ``("action", name)``, and a critic. ``heads=("cont",)`` with ``tanh`` is TorchRL's test layout."""
    g = torch.Generator().manual_seed(seed)
    cont = TanhNormal if tanh else IndependentNormal
    dist_map, name_map, out_keys = {}, {}, []
    for head in heads:
        dist_map[head] = torch.distributions.Categorical if head == "disc" else cont
        name_map[head] = ("action", head)
        out_keys += [("params", head, "logits")] if head == "disc" else [("params", head, "loc"), ("params", head, "scale")]
    module = TensorDictModule(_Heads(g, heads), in_keys=["observation"], out_keys=out_keys)
    actor = ProbabilisticActor(
        module, in_keys=["params"], out_keys=list(name_map.values()), return_log_prob=True,
        distribution_class=functools.partial(CompositeDistribution, distribution_map=dist_map, name_map=name_map),
    )
    critic = ValueOperator(nn.Sequential(_linear(g, OBS, 8), nn.Tanh(), _linear(g, 8, 1)), in_keys=["observation"])
    return Nets(actor, critic)


def composite_data(nets: Nets, batch: tuple[int, ...], seed: int = 0, *, with_advantage: bool = True) -> TensorDict:
    """Observations, per-head actions and behaviour log-probs near the current ones, the
    behaviour policy's parameters, rewards and flags (and an advantage/value target)."""
    g = torch.Generator().manual_seed(seed + 2000)
    shape = torch.Size(batch)
    obs = torch.randn(*shape, OBS, generator=g)
    data = TensorDict({"observation": obs, "next": {"observation": torch.randn(*shape, OBS, generator=g)}}, shape)
    with torch.no_grad():
        dist = nets.actor.get_dist(data.select("observation"))
        params = nets.actor.get_dist_params(data.select("observation"))["params"]
    action = TensorDict({}, shape)
    for name, head in dist.dists.items():
        if isinstance(head, torch.distributions.Categorical):
            a = torch.randint(N_DISC, shape, generator=g)
        else:
            a = torch.rand(*shape, ACT, generator=g) * 1.6 - 0.8
        action.set(name, a)
        lp = head.log_prob(a) + 0.3 * torch.randn(shape, generator=g)
        data.set(name[:-1] + (name[-1] + "_log_prob",), lp.detach())
    data.update(action)
    data["params"] = params.apply(lambda x: x + 0.05 * torch.randn(x.shape, generator=g))
    for name in data["params"].keys():
        if "scale" in data["params", name].keys():
            data["params", name, "scale"] = data["params", name, "scale"].abs() + 0.1
    _add_rewards(data, shape, g, with_advantage)
    return data


def masked_nets(seed: int = 0) -> Nets:
    """A ``MaskedCategorical`` policy: logits from the network, the mask from the data."""
    g = torch.Generator().manual_seed(seed)
    module = TensorDictModule(nn.Sequential(_linear(g, OBS, 8), nn.Tanh(), _linear(g, 8, N_DISC)),
                              in_keys=["observation"], out_keys=["logits"])
    actor = ProbabilisticActor(module, in_keys=["logits", "mask"], distribution_class=MaskedCategorical,
                               return_log_prob=True)
    critic = ValueOperator(nn.Sequential(_linear(g, OBS, 8), nn.Tanh(), _linear(g, 8, 1)), in_keys=["observation"])
    return Nets(actor, critic)


def masked_data(nets: Nets, batch: tuple[int, ...], seed: int = 0, *, with_advantage: bool = True) -> TensorDict:
    g = torch.Generator().manual_seed(seed + 3000)
    shape = torch.Size(batch)
    mask = torch.rand(*shape, N_DISC, generator=g) < 0.6
    mask[..., 0] = True  # at least one allowed action
    action = torch.multinomial(mask.reshape(-1, N_DISC).float(), 1, generator=g).reshape(shape)
    data = TensorDict({"observation": torch.randn(*shape, OBS, generator=g), "mask": mask, "action": action,
                       "next": {"observation": torch.randn(*shape, OBS, generator=g)}}, shape)
    with torch.no_grad():
        lp = nets.actor.get_dist(data.select("observation", "mask")).log_prob(action)
        logits = nets.actor.get_dist_params(data.select("observation", "mask"))["logits"]
    data["action_log_prob"] = lp + 0.3 * torch.randn(shape, generator=g)
    data["logits"] = logits + 0.1 * torch.randn(logits.shape, generator=g)
    _add_rewards(data, shape, g, with_advantage)
    return data


MARL_KEYS = {
    "action": ("agents", "action"),
    "sample_log_prob": ("agents", "action_log_prob"),
    "value": ("agents", "state_value"),
    "advantage": ("agents", "advantage"),
    "value_target": ("agents", "value_target"),
    "reward": ("agents", "reward"),
    "done": ("agents", "done"),
    "terminated": ("agents", "terminated"),
}


def marl_nets(seed: int = 0, dist: str = "normal") -> Nets:
    """Per-agent policy and critic on ``("agents", "observation")`` ``[B, T, N, OBS]``."""
    g = torch.Generator().manual_seed(seed)
    if dist == "categorical":
        module = TensorDictModule(nn.Sequential(_linear(g, OBS, 8), nn.Tanh(), _linear(g, 8, N_DISC)),
                                  in_keys=[("agents", "observation")], out_keys=[("agents", "logits")])
        actor = ProbabilisticActor(module, in_keys={"logits": ("agents", "logits")},
                                   out_keys=[MARL_KEYS["action"]], log_prob_key=MARL_KEYS["sample_log_prob"],
                                   distribution_class=torch.distributions.Categorical, return_log_prob=True)
    else:
        body = nn.Sequential(_linear(g, OBS, 8), nn.Tanh(), _linear(g, 8, 2 * ACT), NormalParamExtractor())
        module = TensorDictModule(body, in_keys=[("agents", "observation")],
                                  out_keys=[("agents", "loc"), ("agents", "scale")])
        actor = ProbabilisticActor(module, in_keys={"loc": ("agents", "loc"), "scale": ("agents", "scale")},
                                   out_keys=[MARL_KEYS["action"]], log_prob_key=MARL_KEYS["sample_log_prob"],
                                   distribution_class=IndependentNormal, return_log_prob=True)
    critic = ValueOperator(nn.Sequential(_linear(g, OBS, 8), nn.Tanh(), _linear(g, 8, 1)),
                           in_keys=[("agents", "observation")], out_keys=[MARL_KEYS["value"]])
    return Nets(actor, critic)


def marl_data(nets: Nets, batch: tuple[int, int], seed: int = 0, *, with_advantage: bool = True,
              dist: str = "normal") -> TensorDict:
    """A ``[B, T]`` TensorDict whose agent entries are ``[B, T, N, ...]`` (per-agent rewards/flags)."""
    g = torch.Generator().manual_seed(seed + 4000)
    shape = torch.Size(batch)
    agents = shape + (N_AGENTS,)
    data = TensorDict({
        "agents": TensorDict({"observation": torch.randn(*agents, OBS, generator=g)}, agents),
        "next": {"agents": TensorDict({"observation": torch.randn(*agents, OBS, generator=g)}, agents)},
    }, shape)
    if dist == "categorical":
        action = torch.randint(N_DISC, agents, generator=g)
    else:
        action = torch.rand(*agents, ACT, generator=g) * 1.6 - 0.8
    with torch.no_grad():
        lp = nets.actor.get_dist(data.select(("agents", "observation"))).log_prob(action)
        params = nets.actor.get_dist_params(data.select(("agents", "observation")))["agents"]
    for name in ("loc", "scale", "logits"):  # the behaviour policy's parameters (KL penalty)
        if name in params.keys():
            noise = 0.1 * torch.randn(params[name].shape, generator=g)
            data["agents", name] = params[name] * noise.exp() if name == "scale" else params[name] + noise
    data["agents", "action"] = action
    data["agents", "action_log_prob"] = lp + 0.3 * torch.randn(agents, generator=g)
    done = torch.rand(*agents, 1, generator=g) < 0.15
    data["next", "agents", "reward"] = torch.randn(*agents, 1, generator=g)
    data["next", "agents", "done"] = done
    data["next", "agents", "terminated"] = done & (torch.rand(*agents, 1, generator=g) < 0.5)
    if with_advantage:
        data["agents", "advantage"] = torch.randn(*agents, 1, generator=g)
        data["agents", "value_target"] = torch.randn(*agents, 1, generator=g)
    data["agents", "state_value"] = torch.randn(*agents, 1, generator=g)
    if not with_advantage:
        data["next", "agents", "state_value"] = torch.randn(*agents, 1, generator=g)
    return data


class GetDistActor(nn.Module):
    """An actor that is neither a ``ProbabilisticTensorDictModule`` nor a sequence of them:
    it only offers ``get_dist`` (TorchRL accepts it)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.net = nn.Sequential(_linear(g, OBS, 8), nn.Tanh(), _linear(g, 8, N_DISC))
        self.in_keys = ["observation"]

    def get_dist(self, td):
        return torch.distributions.Categorical(logits=self.net(td["observation"]))


def _add_rewards(data: TensorDict, shape: torch.Size, g: torch.Generator, with_advantage: bool) -> None:
    done = torch.rand(*shape, 1, generator=g) < 0.15
    data["next", "reward"] = torch.randn(*shape, 1, generator=g)
    data["next", "done"] = done
    data["next", "terminated"] = done & (torch.rand(*shape, 1, generator=g) < 0.5)
    data["state_value"] = torch.randn(*shape, 1, generator=g)
    if with_advantage:
        data["advantage"] = torch.randn(*shape, 1, generator=g)
        data["value_target"] = torch.randn(*shape, 1, generator=g)
    else:
        data["next", "state_value"] = torch.randn(*shape, 1, generator=g)


def torchrl_forward(loss):
    """TorchRL's ``forward`` without the ``dispatch`` wrapper: TorchRL's A2C ``in_keys`` fails
    on a list of action keys (several heads) before ``forward`` runs."""
    fn = type(loss).forward
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return lambda td: fn(loss, td)


def parity(torchrl_cls, our_cls, nets, data, *, build=None, seed=11, unwrap=False):
    """TorchRL's class and ours built by ``build(cls, nets)`` on copies of ``nets``, run on
    ``data`` under one seed: outputs and every parameter gradient equal; returns
    ``(ref, mine, out_ours)``."""
    build = build or (lambda cls, n: cls(n.actor, n.critic))
    ref, mine = build(torchrl_cls, clone_nets(nets)), build(our_cls, clone_nets(nets))
    torch.manual_seed(seed)
    out_ref = (torchrl_forward(ref) if unwrap else ref)(data.clone())
    torch.manual_seed(seed)
    out_ours = mine(data.clone())
    assert_td_close(out_ours, out_ref)
    loss_sum(out_ref).backward()
    loss_sum(out_ours).backward()
    assert_grads_close(mine, ref)
    return ref, mine, out_ours
