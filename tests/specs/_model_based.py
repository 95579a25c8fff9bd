"""Small Dreamer networks (world model, model-based environment, actor, value model) and
data for the model-based module cases, after TorchRL's own test builders (``test_dreamer.py``)
with tiny images: ``[3, 4, 4]`` pixels, a state of 5 and a belief (and RSSM hidden layer) of 6."""

from __future__ import annotations

import copy

import torch
from tensordict import TensorDict
from tensordict.nn import (
    InteractionType,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
)
from torch import nn
from torchrl.data import Unbounded
from torchrl.envs.model_based.dreamer import DreamerEnv
from torchrl.envs.transforms import TensorDictPrimer, TransformedEnv
from torchrl.modules import SafeSequential, WorldModelWrapper
from torchrl.modules.distributions.continuous import TanhNormal
from torchrl.modules.models.model_based import DreamerActor, RSSMPosterior, RSSMPrior, RSSMRollout
from torchrl.modules.models.models import MLP
from torchrl.testing.mocking_classes import ContinuousActionConvMockEnv

PIXELS = (3, 4, 4)
STATE, BELIEF, HIDDEN = 5, 6, 6
ACTION = PIXELS[-1]  # the mock environment's action size


def mock_env() -> TransformedEnv:
    env = TransformedEnv(ContinuousActionConvMockEnv(pixel_shape=list(PIXELS)))
    env.append_transform(TensorDictPrimer(random=False, default_value=0, state=Unbounded(STATE),
                                          belief=Unbounded(BELIEF)))
    return env


def world_model() -> WorldModelWrapper:
    """Encoder, RSSM rollout (prior + posterior), decoder and reward model (TorchRL's layout)."""
    env = mock_env()
    encoder = nn.Sequential(nn.Flatten(-3), nn.Linear(48, 8), nn.ELU())
    decoder = nn.Sequential(nn.Linear(STATE + BELIEF, 48), nn.Unflatten(-1, PIXELS))

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = decoder

        def forward(self, state, belief):
            return self.net(torch.cat([state, belief], -1))

    prior = RSSMPrior(hidden_dim=HIDDEN, rnn_hidden_dim=BELIEF, state_dim=STATE, action_spec=env.action_spec)
    posterior = RSSMPosterior(hidden_dim=HIDDEN, state_dim=STATE)
    rollout = RSSMRollout(
        TensorDictModule(prior, in_keys=["state", "belief", "action"],
                         out_keys=[("next", "prior_mean"), ("next", "prior_std"), "_", ("next", "belief")]),
        TensorDictModule(posterior, in_keys=[("next", "belief"), ("next", "encoded_latents")],
                         out_keys=[("next", "posterior_mean"), ("next", "posterior_std"), ("next", "state")]),
    )
    modeler = SafeSequential(
        TensorDictModule(encoder, in_keys=[("next", "pixels")], out_keys=[("next", "encoded_latents")]),
        rollout,
        TensorDictModule(Decoder(), in_keys=[("next", "state"), ("next", "belief")], out_keys=[("next", "reco_pixels")]),
    )
    reward = TensorDictModule(MLP(out_features=1, depth=2, num_cells=9, activation_class=nn.ELU),
                              in_keys=[("next", "state"), ("next", "belief")], out_keys=[("next", "reward")])
    model = WorldModelWrapper(modeler, reward)
    with torch.no_grad():
        model(world_model_data(0, (1, 2)))  # initialise the lazy layers
    return model


def world_model_data(seed: int, batch: tuple[int, int] = (2, 3)) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    b, t = batch
    return TensorDict(
        {
            "state": torch.zeros(b, t, STATE),
            "belief": torch.zeros(b, t, BELIEF),
            "pixels": torch.randn(b, t, *PIXELS, generator=g),
            "action": torch.randn(b, t, ACTION, generator=g).tanh(),
            "next": {
                "pixels": torch.randn(b, t, *PIXELS, generator=g),
                "reward": torch.randn(b, t, 1, generator=g),
                "done": torch.zeros(b, t, 1, dtype=torch.bool),
                "terminated": torch.zeros(b, t, 1, dtype=torch.bool),
            },
        },
        [b, t],
    )


def model_based_env() -> DreamerEnv:
    env = mock_env()
    prior = RSSMPrior(hidden_dim=HIDDEN, rnn_hidden_dim=BELIEF, state_dim=STATE, action_spec=env.action_spec)
    transition = SafeSequential(
        TensorDictModule(prior, in_keys=["state", "belief", "action"], out_keys=["_", "_", "state", "belief"])
    )
    reward = TensorDictModule(MLP(out_features=1, depth=2, num_cells=9, activation_class=nn.ELU),
                              in_keys=["state", "belief"], out_keys=["reward"])
    mb_env = DreamerEnv(world_model=WorldModelWrapper(transition, reward), prior_shape=torch.Size([STATE]),
                        belief_shape=torch.Size([BELIEF]))
    mb_env.set_specs_from_env(env)
    with torch.no_grad():
        mb_env.rollout(2)
    return mb_env


def actor_model() -> ProbabilisticTensorDictSequential:
    actor = ProbabilisticTensorDictSequential(
        TensorDictModule(DreamerActor(out_features=ACTION, depth=1, num_cells=9, activation_class=nn.ELU),
                         in_keys=["state", "belief"], out_keys=["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys="action",
                                      default_interaction_type=InteractionType.RANDOM, distribution_class=TanhNormal),
    )
    with torch.no_grad():
        actor(TensorDict({"state": torch.randn(1, STATE), "belief": torch.randn(1, BELIEF)}, [1]))
    return actor


def value_model() -> TensorDictModule:
    value = TensorDictModule(MLP(out_features=1, depth=1, num_cells=9, activation_class=nn.ELU),
                             in_keys=["state", "belief"], out_keys=["state_value"])
    with torch.no_grad():
        value(TensorDict({"state": torch.randn(1, STATE), "belief": torch.randn(1, BELIEF)}, [1]))
    return value


def actor_data(seed: int, batch: tuple[int, ...] = (4,)) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict({"state": torch.randn(*batch, STATE, generator=g),
                       "belief": torch.randn(*batch, BELIEF, generator=g)}, list(batch))


def value_data(seed: int, batch: tuple[int, int] = (4, 3)) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict(
        {"state": torch.randn(*batch, STATE, generator=g), "belief": torch.randn(*batch, BELIEF, generator=g),
         "lambda_target": torch.randn(*batch, 1, generator=g)},
        list(batch),
    )


def pair(torchrl_cls: type, our_cls: type, make_nets, *args, our_kwargs: dict | None = None, **kwargs):
    """TorchRL's class and ours on deep copies of the same networks."""
    torch.manual_seed(0)
    nets = make_nets()
    ref = torchrl_cls(*copy.deepcopy(nets), *args, **kwargs)
    mine = our_cls(*copy.deepcopy(nets), *args, **kwargs, **(our_kwargs or {}))
    return ref, mine
