"""Inputs and networks of the DreamerV3 specs: valid random inputs of the functions, and
TorchRL's class and ours built on identical small networks."""

from __future__ import annotations

import copy
import math

import torch
from tensordict import TensorDict
from tensordict.nn import (
    InteractionType,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictSequential,
)
from torch import nn
from torchrl.objectives import ValueEstimators

from ._spec import ModuleCase

BINS = 7  # two-hot support of the specs (TorchRL's default is 255)
CATS, CLASSES, EVENT = 2, 3, 4  # RSSM categoricals, their classes, reconstructed features
STATE, BELIEF, ACT = 6, 4, 2


def _gen(seed: int, dtype: torch.dtype):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, dtype=torch.float64).to(dtype)

    return g, randn, rand


# --------------------------------------------------------------------------- function inputs


def model_td(seed: int, dtype: torch.dtype = torch.float32, *, separate: bool = False) -> TensorDict:
    """A world model's output ``[2, 3]``: two-hot reward logits (or a scalar reward and a
    continue head with ``separate``), RSSM logits, one reconstruction head."""
    g, randn, rand = _gen(seed, dtype)
    b = (2, 3)
    nxt = {
        "true_reward": randn(*b, 1) * 3,
        "posterior_logits": randn(*b, CATS, CLASSES) * 2,
        "prior_logits": randn(*b, CATS, CLASSES) * 2,
        "pixels": rand(*b, EVENT),
        "reco_pixels": rand(*b, EVENT),
    }
    if separate:
        nxt["reward"] = randn(*b, 1) * 3
        nxt["continue_pred"] = randn(*b)
        nxt["terminated"] = torch.rand(*b, generator=g) < 0.3
    else:
        nxt["reward_logits"] = randn(*b, BINS)
    return TensorDict({"next": nxt}, batch_size=b)


def value_td(seed: int, dtype: torch.dtype = torch.float32, *, two_hot: bool = False) -> TensorDict:
    """Imagined states: ``[2, 4]`` (time last) with a scalar critic, or ``[6]`` with two-hot
    logits and the slow critic's value."""
    _, randn, _ = _gen(seed, dtype)
    if two_hot:
        return TensorDict({"lambda_target": randn(6, 1) * 3, "state_value_logits": randn(6, BINS),
                           "slow_state_value": randn(6, 1) * 3}, batch_size=[6])
    return TensorDict({"lambda_target": randn(2, 4, 1) * 3, "state_value": randn(2, 4, 1) * 3}, batch_size=[2, 4])


def value_weighted_td(seed: int, dtype: torch.dtype = torch.float32) -> TensorDict:
    td = value_td(seed, dtype, two_hot=True)
    td["discount_weight"] = _gen(seed + 1, dtype)[2](6, 1)
    return td


def replay_td(seed: int, dtype: torch.dtype = torch.float32) -> TensorDict:
    """A replayed sequence ``[2, 5]``: one episode ends at step 2 of the first sequence."""
    _, randn, _ = _gen(seed, dtype)
    done = torch.zeros(2, 5, 1, dtype=torch.bool)
    done[0, 2] = True
    return TensorDict({
        "state_value": randn(2, 5, 1) * 3,
        "bootstrap": randn(2, 5) * 3,
        "next": {"reward": randn(2, 5, 1), "done": done, "terminated": done.clone()},
    }, batch_size=[2, 5])


def actor_td(seed: int, dtype: torch.dtype = torch.float32, *, reinforce: bool = False) -> TensorDict:
    """An imagined trajectory ``[3, 4]``; with ``reinforce`` also continuations, the stopped
    action's log-prob and the baseline."""
    _, randn, rand = _gen(seed, dtype)
    b = (3, 4)
    td = TensorDict({"entropy": randn(*b, 1),
                     "next": {"reward": randn(*b, 1) * 2, "state_value": randn(*b, 1) * 3}}, batch_size=b)
    if reinforce:
        td["log_prob"] = randn(*b, 1)
        td["state_value"] = randn(*b, 1) * 3
        td["continuation"] = 0.5 + 0.5 * rand(*b, 1)
        td["next", "continuation"] = 0.5 + 0.5 * rand(*b, 1)
    return td


# --------------------------------------------------------------------------- module cases


class _WorldModel(nn.Module):
    """A small stand-in world model writing every entry ``DreamerV3ModelLoss`` reads."""

    def __init__(self, two_hot: bool) -> None:
        super().__init__()
        from torchrl.modules import SymExpTwoHot

        self.two_hot = two_hot
        self.prior = nn.Linear(STATE + BELIEF, CATS * CLASSES)
        self.posterior = nn.Linear(STATE + BELIEF + EVENT, CATS * CLASSES)
        self.decoder = nn.Linear(STATE + BELIEF, EVENT)
        self.reward = nn.Linear(STATE + BELIEF, BINS if two_hot else 1)
        self.decode = SymExpTwoHot(BINS)
        self.cont = nn.Linear(STATE + BELIEF, 1)

    def forward(self, td):
        x = torch.cat([td["state"], td["belief"]], -1)
        shape = (*td.shape, CATS, CLASSES)
        td.set(("next", "prior_logits"), self.prior(x).view(shape))
        td.set(("next", "posterior_logits"), self.posterior(torch.cat([x, td["next", "pixels"]], -1)).view(shape))
        td.set(("next", "reco_pixels"), self.decoder(x))
        reward = self.reward(x)
        if self.two_hot:
            td.set(("next", "reward_logits"), reward)
            reward = self.decode(reward)
        td.set(("next", "reward"), reward)
        td.set(("next", "continue_pred"), self.cont(x))
        return td


def _pair(make, torchrl_cls, our_cls, kwargs):
    torch.manual_seed(0)
    nets = make()
    return torchrl_cls(*copy.deepcopy(nets), **kwargs), our_cls(*copy.deepcopy(nets), **kwargs)


def model_case(case_id, torchrl_cls, our_cls, *, two_hot: bool, functional_call: bool = False,
               batch: tuple[int, ...] = (2, 3), **kwargs):
    options = {"reward_two_hot": two_hot, "num_reward_bins": BINS, **kwargs}

    def data(seed: int) -> TensorDict:
        g, randn, rand = _gen(seed, torch.float32)
        b = batch
        done = torch.rand(*b, 1, generator=g) < 0.3
        return TensorDict({"state": randn(*b, STATE), "belief": randn(*b, BELIEF), "action": randn(*b, ACT),
                           "next": {"pixels": rand(*b, EVENT) * 4, "reward": randn(*b, 1) * 3, "done": done,
                                    "terminated": done.clone()}}, batch_size=b)

    def rebatch(new_batch: tuple[int, ...]) -> ModuleCase:
        return model_case(case_id, torchrl_cls, our_cls, two_hot=two_hot, functional_call=functional_call,
                          batch=new_batch, **kwargs)

    return ModuleCase(case_id, lambda: _pair(lambda: (_WorldModel(two_hot),), torchrl_cls, our_cls, options),
                      data, functional_call=functional_call, rebatch=rebatch)


def _value_model(two_hot: bool):
    from torchrl.modules import SymExpTwoHot

    head = TensorDictModule(nn.Sequential(nn.Linear(STATE, 8), nn.Tanh(), nn.Linear(8, BINS if two_hot else 1)),
                            in_keys=["state"], out_keys=["state_value_logits" if two_hot else "state_value"])
    if not two_hot:
        return head
    return TensorDictSequential(head, TensorDictModule(SymExpTwoHot(BINS), in_keys=["state_value_logits"],
                                                       out_keys=["state_value"]))


def value_case(case_id, torchrl_cls, our_cls, *, two_hot: bool, batch, functional_call: bool = False, **options):
    kwargs = {"value_loss": "two_hot" if two_hot else "symlog_mse", "num_value_bins": BINS, **options}

    def build():
        ref, mine = _pair(lambda: (_value_model(two_hot),), torchrl_cls, our_cls, kwargs)
        if kwargs.get("slow_critic_regularization"):
            g = torch.Generator().manual_seed(5)
            with torch.no_grad():  # a slow critic that differs from the online one, alike in both
                for a, b in zip(ref.target_value_model_params.values(True, True),
                                mine.target_value_model_params.values(True, True)):
                    noise = 0.3 * torch.randn(a.shape, generator=g)
                    a.add_(noise)
                    b.add_(noise)
        return ref, mine

    def data(seed: int) -> TensorDict:
        _, randn, rand = _gen(seed, torch.float32)
        td = TensorDict({"state": randn(*batch, STATE), "lambda_target": randn(*batch, 1) * 3}, batch_size=batch)
        if len(batch) == 1:
            td["discount_weight"] = rand(*batch, 1)
        return td

    def rebatch(new_batch: tuple[int, ...]) -> ModuleCase:
        return value_case(case_id, torchrl_cls, our_cls, two_hot=two_hot, batch=new_batch,
                          functional_call=functional_call, **options)

    return ModuleCase(case_id, build, data, functional_call=functional_call, rebatch=rebatch)


def _actor_nets(continuation: bool):
    from torchrl.data import Bounded, Composite, Unbounded
    from torchrl.envs.model_based.dreamer import DreamerEnv
    from torchrl.modules import WorldModelWrapper
    from torchrl.modules.distributions.continuous import TanhNormal
    from torchrl.modules.models.model_based import DreamerActor

    class _Transition(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(STATE + BELIEF + ACT, STATE + BELIEF)

        def forward(self, state, belief, action):
            out = torch.tanh(self.net(torch.cat([state, belief, action], -1)))
            return out[..., :STATE], out[..., STATE:]

    transition = TensorDictModule(_Transition(), in_keys=["state", "belief", "action"], out_keys=["state", "belief"])

    class _Cat(nn.Module):
        def __init__(self, out: int, sigmoid: bool = False) -> None:
            super().__init__()
            self.net, self.sigmoid = nn.Linear(STATE + BELIEF, out), sigmoid

        def forward(self, state, belief):
            out = self.net(torch.cat([state, belief], -1))
            return torch.sigmoid(out) if self.sigmoid else out

    reward = TensorDictModule(_Cat(1), in_keys=["state", "belief"], out_keys=["reward"])
    env = DreamerEnv(world_model=WorldModelWrapper(transition, reward), prior_shape=torch.Size([STATE]),
                     belief_shape=torch.Size([BELIEF]))
    env.observation_spec = Composite(state=Unbounded(STATE), belief=Unbounded(BELIEF))
    env.state_spec = env.observation_spec.clone()
    env.action_spec = Bounded(-1, 1, (ACT,))
    env.reward_spec = Unbounded((1,))
    actor = ProbabilisticTensorDictSequential(
        TensorDictModule(DreamerActor(out_features=ACT, depth=1, num_cells=8), in_keys=["state", "belief"],
                         out_keys=["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      default_interaction_type=InteractionType.RANDOM, distribution_class=TanhNormal),
    )
    value = TensorDictModule(_Cat(1), in_keys=["state", "belief"], out_keys=["state_value"])
    warm = TensorDict({"state": torch.zeros(1, STATE), "belief": torch.zeros(1, BELIEF)}, [1])
    with torch.no_grad():
        actor(warm.clone())
    cont = TensorDictModule(_Cat(1, sigmoid=True), in_keys=["state", "belief"], out_keys=["continuation"])
    return actor, value, env, (cont if continuation else None)


def actor_case(case_id, torchrl_cls, our_cls, *, continuation: bool = False, functional_call: bool = False,
               estimator=None, starts: int = 3, horizon: int = 4, **kwargs):
    def build():
        torch.manual_seed(0)
        actor, value, env, cont = _actor_nets(continuation)
        pair = []
        for cls in (torchrl_cls, our_cls):
            a, v, e, c = copy.deepcopy((actor, value, env, cont))
            loss = cls(a, v, e, continuation_model=c, imagination_horizon=horizon, **kwargs)
            if estimator is not None:
                hyper = {"lmbda": 0.8} if estimator == ValueEstimators.TDLambda else {}
                loss.make_value_estimator(estimator, gamma=0.9, **hyper)
            pair.append(loss)
        return tuple(pair)

    def data(seed: int) -> TensorDict:
        _, randn, _ = _gen(seed, torch.float32)
        return TensorDict({"state": randn(starts, STATE), "belief": randn(starts, BELIEF)}, batch_size=[starts])

    def rebatch(new_batch: tuple[int, ...]) -> ModuleCase:  # start states; the registry bench imagines 15 steps
        return actor_case(case_id, torchrl_cls, our_cls, continuation=continuation, functional_call=functional_call,
                          estimator=estimator, starts=math.prod(new_batch), horizon=15, **kwargs)

    return ModuleCase(case_id, build, data, functional_call=functional_call, rebatch=rebatch)
