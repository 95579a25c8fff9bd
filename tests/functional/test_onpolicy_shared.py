"""What every on-policy loss (the registry's ``"on_policy"`` specs) shares: the value estimate
made inside the loss equals the precomputed one, the time dimension is found by name or
keyword, and the input is left untouched with no state kept."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical

from tests.builders import assert_td_close
from tests.specs import tagged
from torchrl_functional.functional import td0_return_estimate, td_lambda_return_estimate
from torchrl_functional.functional._offpolicy import option_names

from .onpolicy_common import logits_batch, trajectory_batch

ON_POLICY = tagged("on_policy")
#: the losses that also run on precomputed log-probabilities alone (a KL penalty needs the
#: behaviour distribution's parameters)
ON_LOG_PROB = [s for s in ON_POLICY if "kl_penalty" not in s.tags]


def _losses(out):
    return out.select(*(k for k in out.keys() if k.startswith("loss_")))


@pytest.mark.parametrize("spec", ON_LOG_PROB, ids=lambda s: s.name)
@pytest.mark.parametrize("estimator, kernel", [("td0", "td0"), ("td_lambda", "tdl")])
def test_value_estimator_choice(spec, estimator, kernel):
    td = trajectory_batch(dtype=torch.float32)
    v, nv = td["state_value"].detach(), td["next", "state_value"]
    r, d, t = td["next", "reward"], td["next", "done"], td["next", "terminated"]
    target = td0_return_estimate(0.9, nv, r, t) if kernel == "td0" else td_lambda_return_estimate(0.9, 0.7, nv, r, d, t)
    given = td.clone()
    given["advantage"], given["value_target"] = target - v, target
    assert_td_close(spec.function(td, value_estimator=estimator, gamma=0.9, lmbda=0.7), spec.function(given))


@pytest.mark.parametrize("spec", ON_LOG_PROB, ids=lambda s: s.name)
def test_time_named_dimension_is_used_for_estimation(spec):
    fn = spec.function
    td = trajectory_batch(dtype=torch.float32, B=3, T=5)
    swapped = td.transpose(0, 1)  # [T, B]
    swapped.names = ["time", None]
    got = _losses(fn(swapped, reduction="none"))
    ref = _losses(fn(td, reduction="none"))
    plain = td.transpose(0, 1)
    explicit = _losses(fn(plain, reduction="none", time_dim=0))  # the same with an explicit time_dim
    for key in ref.keys():
        torch.testing.assert_close(got[key], ref[key].transpose(0, 1))
        torch.testing.assert_close(explicit[key], ref[key].transpose(0, 1))


@pytest.mark.parametrize("spec", ON_POLICY, ids=lambda s: s.name)
def test_input_unchanged_and_no_state(spec):
    fn = spec.function
    td = logits_batch()
    td_traj = trajectory_batch(dtype=torch.float32)
    td["old_state_value"] = td["state_value"].detach() + 0.1
    for data, dist in ((td, Categorical), (td_traj.exclude("log_prob"), None)):
        if dist is None:
            data = data.clone()
            data["log_prob"] = td_traj["log_prob"]
            if spec not in ON_LOG_PROB:
                continue
            extra = {}
        else:
            extra = {"clip_value": 0.2}
        snapshot = data.clone()
        ids = {k: id(v) for k, v in data.items(True, True)}
        first = fn(data, dist, **extra)
        second = fn(data, dist, **extra)
        assert (data == snapshot).all()
        assert set(data.keys(True, True)) == set(snapshot.keys(True, True))
        assert ids == {k: id(v) for k, v in data.items(True, True)}
        assert_td_close(first, second, atol=0, rtol=0)
    assert not isinstance(fn, torch.nn.Module)
    assert not hasattr(fn, "__self__")


@pytest.mark.parametrize("spec", ON_POLICY, ids=lambda s: s.name)
def test_the_tag_promises_the_options(spec):
    """What the ``"on_policy"`` tag (``tests.specs.TAGS``) promises, and the KL penalty's beta."""
    params = option_names(spec.function)
    for name in ("dist_class", "reduction", "loss_critic_type", "clip_value", "value_estimator", "gamma", "lmbda",
                 "loss_mask_key", "diagnostics", "keys"):
        assert name in params, name
    assert ("beta" in params) == ("kl_penalty" in spec.tags)
