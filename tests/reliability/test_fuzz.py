"""Bad-input fuzzing of every TensorDict loss.

For each loss and each valid input configuration, every entry is mutated in turn:
dropped, renamed (with and without the matching keys object), cast to a dtype of the
wrong kind or to another float precision, reshaped, made to require grad; extra entries
are added. Every case must either give the clean result (extra/unused entries, renamed
with keys, dtypes that mean the same numbers) or raise the library's own
``LossInputError`` whose message names the entry. Never a silently different number.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
from tensordict import TensorDict
from torch.distributions import Categorical, Normal

from tests.functional import (
    test_cql,
    test_ddpg,
    test_dqn,
    test_iql,
    test_sac,
    test_sac_v1,
    test_td3,
)
from tests.meta.cases import ENSEMBLE_KEYS, to_batched
from torchrl_functional.errors import LossInputError
from torchrl_functional.functional import (
    A2CKeys,
    CQLKeys,
    DDPGKeys,
    DiscreteSACKeys,
    DQNKeys,
    IQLKeys,
    PPOKeys,
    ReinforceKeys,
    SACKeys,
    SACV1Keys,
    TD3Keys,
    a2c_loss,
    clip_ppo_loss,
    cql_loss,
    ddpg_loss,
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


@dataclass
class Config:
    """One valid input of one loss."""

    name: str
    fn: Callable
    build: Callable[[], TensorDict]
    dist_class: object = None
    kwargs: dict = field(default_factory=dict)
    keys_cls: type | None = None


B, T, N = 3, 4, 3


def _g():
    return torch.Generator().manual_seed(0)


def discrete_given() -> TensorDict:
    g = _g()
    logits = torch.randn(B, N, generator=g)
    return TensorDict(
        {
            "actor_output": {"logits": logits},
            "old_actor_output": {"logits": logits + 0.1},
            "action": torch.randint(N, (B,), generator=g),
            "action_log_prob": torch.randn(B, generator=g),
            "advantage": torch.randn(B, 1, generator=g),
            "value_target": torch.randn(B, 1, generator=g),
            "state_value": torch.randn(B, 1, generator=g),
            "old_state_value": torch.randn(B, 1, generator=g),
        },
        [],
    )


def continuous_estimated() -> TensorDict:
    """Estimation needs time: the TensorDict's last batch dim (TorchRL's rule), so ``[B, T]``."""
    g = _g()
    done = torch.zeros(B, T, 1, dtype=torch.bool)
    done[0, 1] = True
    return TensorDict(
        {
            "actor_output": {"loc": torch.randn(B, T, 2, generator=g), "scale": torch.rand(B, T, 2, generator=g) + 0.5},
            "old_actor_output": {"loc": torch.randn(B, T, 2, generator=g), "scale": torch.rand(B, T, 2, generator=g) + 0.5},
            "action": torch.randn(B, T, 2, generator=g),
            "action_log_prob": torch.randn(B, T, generator=g),
            "state_value": torch.randn(B, T, 1, generator=g),
            "next": {
                "reward": torch.randn(B, T, 1, generator=g),
                "done": done,
                "terminated": done.clone(),
                "state_value": torch.randn(B, T, 1, generator=g),
            },
        },
        [B, T],
    )


def independent_normal(loc, scale):
    return torch.distributions.Independent(Normal(loc, scale), 1)


CONFIGS = []
for fn, keys_cls, extra in (
    (ppo_loss, PPOKeys, {}),
    (clip_ppo_loss, PPOKeys, {"clip_value": 0.2}),
    (klpen_ppo_loss, PPOKeys, {}),
    (a2c_loss, A2CKeys, {"clip_value": 0.2}),
    (reinforce_loss, ReinforceKeys, {}),
):
    CONFIGS.append(Config(f"{fn.__name__}/discrete_given", fn, discrete_given, Categorical, extra, keys_cls))
    CONFIGS.append(Config(f"{fn.__name__}/continuous_estimated", fn, continuous_estimated, independent_normal, {}, keys_cls))

def _layout(layout):
    from tests.meta.cases import layout_td

    return lambda: layout_td(0, layout=layout)


def _cases_kw(case_id):
    from tests.meta.cases import CASES

    case = next(c for c in CASES if c.id == case_id)
    kwargs = dict(case.kwargs)
    return kwargs.pop("dist_class"), kwargs


for _loss, _layout_name, _case in (
    (ppo_loss, "composite", "ppo_loss-composite"),
    (clip_ppo_loss, "masked", "clip_ppo_loss-masked"),
    (a2c_loss, "multi_agent", "a2c_loss-multi_agent"),
):
    _dist, _kw = _cases_kw(_case)
    CONFIGS.append(Config(f"{_loss.__name__}/{_layout_name}", _loss, _layout(_layout_name), _dist, _kw,
                          PPOKeys if _loss is not a2c_loss else A2CKeys))


def _detached(build):
    return lambda: build().detach()


CONFIGS += [
    Config("dqn_loss/one_hot_double", dqn_loss, _detached(lambda: test_dqn.make(one_hot=True, double=True, weights=True)),
           None, {"double_dqn": True, "action_space": "one_hot"}, DQNKeys),
    Config("dqn_loss/categorical", dqn_loss, _detached(test_dqn.make), None, {}, DQNKeys),
    Config("ddpg_loss", ddpg_loss, _detached(test_ddpg.make), None, {}, DDPGKeys),
    Config("td3_loss", td3_loss, _detached(test_td3.make), None, {}, TD3Keys),
    # log_alpha != 0 so that loss_alpha sees its inputs; an explicit target entropy, since with
    # "auto" the action's shape is the only thing read from it (any action shape is valid)
    Config("sac_loss", sac_loss, _detached(test_sac.make), None, {"log_alpha": 0.3, "target_entropy": -2.0}, SACKeys),
    Config("discrete_sac_loss", discrete_sac_loss, _detached(test_sac._discrete), None, {}, DiscreteSACKeys),
    Config("iql_loss", iql_loss, _detached(test_iql.make), None, {}, IQLKeys),
    Config("cql_loss", cql_loss, _detached(test_cql.make), None, {"log_alpha": 0.3, "target_entropy": -2.0}, CQLKeys),
]


def _nstep(build):
    """n-step data, as TorchRL's MultiStep writes it: ``steps_to_next_obs`` ``[B]`` (int64)."""
    def make():
        td = build()
        b = td["next", "reward"].shape[:-1]
        td["steps_to_next_obs"] = torch.arange(b.numel()).reshape(b) % 3 + 1
        return td
    return make


def _batched(build, kind):
    """TorchRL's replay layout: a ``[B]``-batched TensorDict, ensembles ``[B, E, ...]``."""
    return lambda: to_batched(build(), ENSEMBLE_KEYS[kind])


CONFIGS += [
    Config("dqn_loss/nstep", dqn_loss, _nstep(_detached(test_dqn.make)), None, {}, DQNKeys),
    Config("td3_loss/batched_nstep", td3_loss, _batched(_nstep(_detached(test_td3.make)), "td3"), None, {}, TD3Keys),
    Config("iql_loss/batched", iql_loss, _batched(_detached(test_iql.make), "iql"), None, {"expectile": 1.0}, IQLKeys),
    Config("sac_v1_loss", sac_v1_loss, _nstep(_detached(test_sac_v1.make)), None,
           {"log_alpha": 0.3, "target_entropy": -2.0}, SACV1Keys),
    Config("discrete_sac_loss/skip_done_states", discrete_sac_loss, _detached(test_sac._discrete), None,
           {"skip_done_states": True, "log_alpha": 0.3}, DiscreteSACKeys),
]


# ----------------------------------------------------------------------------- mutations


def _leaves(td):
    return [k if isinstance(k, tuple) else (k,) for k in td.keys(True, True)]


def _key_field(keys_obj, key):
    """The keys-object field that names ``key`` (root or under "next"), if any."""
    for f in dataclasses.fields(keys_obj):
        value = getattr(keys_obj, f.name)
        value = value if isinstance(value, tuple) else (value,)
        if key == value or key == ("next",) + value or key[: len(value)] == value:
            return f.name, value
    return None, None


def mutations(cfg: Config):
    clean = cfg.build()
    keys_obj = cfg.keys_cls(**cfg.kwargs.get("keys", {})) if cfg.keys_cls else None
    batched = clean.batch_dims > 0  # the TensorDict itself refuses entries that break its batch
    for key in _leaves(clean):
        yield f"drop {key}", key, lambda td, key=key: td.exclude(key), None
        value = clean.get(key)
        if value.is_floating_point():
            yield f"{key} -> int64", key, lambda td, key=key: td.set(key, td.get(key).long()), None
            yield f"{key} -> bool", key, lambda td, key=key: td.set(key, td.get(key) > 0), None
            yield f"{key} -> float64", key, lambda td, key=key: td.set(key, td.get(key).double()), "close"
        else:
            yield f"{key} -> float32", key, lambda td, key=key: td.set(key, td.get(key).float()), None
        if value.ndim >= 1 and value.ndim > clean.batch_dims:
            yield f"{key} drop last dim", key, lambda td, key=key: td.set(key, td.get(key)[..., 0]), None
        yield f"{key} add dim 1", key, lambda td, key=key: td.set(key, td.get(key).unsqueeze(-1)), None
        yield f"{key} add dim 2", key, lambda td, key=key: td.set(
            key, td.get(key).unsqueeze(-1).expand(*td.get(key).shape, 2).clone()), None
        if not batched:
            yield f"{key} batch+1", key, lambda td, key=key: td.set(key, torch.cat([td.get(key), td.get(key)[:1]], 0)), None
        if value.is_floating_point():
            yield f"{key} requires grad", key, lambda td, key=key: td.set(key, td.get(key).clone().requires_grad_()), "grad"
        if keys_obj is not None:
            fname, prefix = _key_field(keys_obj, key)
            if fname is not None and len(prefix) == len(key) - (key[0] == "next" and prefix[0] != "next"):
                new = ("renamed_" + prefix[-1],)

                def rename(td, key=key, prefix=prefix, new=new):
                    moved = td.exclude(key)
                    target = (key[:-len(prefix)] + new) if key[0] == "next" and prefix[0] != "next" else new
                    moved.set(target, td.get(key))
                    return moved

                yield f"rename {key} (no keys)", key, rename, None
                yield f"rename {key} with keys", key, rename, ("keys", fname, new[0])


def _extra_entries(td):
    g = torch.Generator().manual_seed(1)
    out = td.clone()
    b = tuple(td.batch_size)
    out["unrelated"] = torch.randn(*b, 7, generator=g)
    out["next", "unrelated_flag"] = torch.ones(*b, 2, dtype=torch.bool)
    out["meta", "note"] = torch.arange(3).expand(*b, 3)
    return out


def _results_equal(a, b, exact=True):
    if set(a.keys(True, True)) != set(b.keys(True, True)):
        return False
    for key in a.keys(True, True):
        x, y = a.get(key), b.get(key)
        if x.shape != y.shape:
            return False
        if exact:
            if not torch.equal(x, y) and not (torch.isnan(x) == torch.isnan(y)).all() or not torch.equal(
                torch.nan_to_num(x), torch.nan_to_num(y)
            ):
                return False
        elif not torch.allclose(x.double(), y.double(), rtol=1e-5, atol=1e-6, equal_nan=True):
            return False
    return True


def _run(cfg, td, keys=None):
    torch.manual_seed(0)
    kwargs = dict(cfg.kwargs)
    if keys is not None:
        kwargs["keys"] = keys
    if cfg.dist_class is None:
        return cfg.fn(td, **kwargs)
    return cfg.fn(td, cfg.dist_class, **kwargs)


def _names_entry(err: LossInputError, key) -> bool:
    text = str(err)
    candidates = {repr(key), repr(key[0]) if len(key) == 1 else repr(tuple(key))}
    for n in range(1, len(key)):
        candidates.add(repr(tuple(key[:n])) if n > 1 else repr(key[0]))
    renamed = "renamed_" + key[-1]
    return any(c in text for c in candidates) or renamed in text


CASES = [(cfg, *m) for cfg in CONFIGS for m in mutations(cfg)]


def test_case_count():
    # reported in the project notes; guards against the harness silently shrinking
    assert len(CASES) >= 1500, len(CASES)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_extra_entries_change_nothing(cfg):
    clean = _run(cfg, cfg.build())
    assert _results_equal(_run(cfg, _extra_entries(cfg.build())), clean)


@pytest.mark.parametrize(
    "cfg, label, key, mutate, expect",
    CASES,
    ids=[f"{c[0].name}: {c[1]}" for c in CASES],
)
def test_mutation_is_rejected_or_harmless(cfg, label, key, mutate, expect):
    clean_td = cfg.build()
    clean = _run(cfg, clean_td)
    try:
        mutated = mutate(cfg.build())
    except RuntimeError:
        # a batched TensorDict refuses an entry that does not start with its batch dims: the
        # mutation cannot reach the loss
        assert clean_td.batch_dims > 0, label
        return
    snapshot = mutated.clone()
    keys = None
    if isinstance(expect, tuple) and expect[0] == "keys":
        keys = cfg.keys_cls(**cfg.kwargs.get("keys", {})).replace(**{expect[1]: expect[2]})
    try:
        out = _run(cfg, mutated, keys)
    except LossInputError as err:
        assert _names_entry(err, key), f"{label}: the error does not name the entry: {err}"
        assert err.loss == cfg.fn.__name__, err
    else:
        if expect == "close":
            assert _results_equal(out, clean, exact=False), f"{label}: a float64 entry changed the result"
        elif key in (("priority_weight",), ("steps_to_next_obs",)) and (
                label.startswith("drop") or label.endswith("(no keys)")):
            # documented optional entries: without them the loss is unweighted / one-step, as TorchRL's
            assert _results_equal(out, _run(cfg, cfg.build().exclude(key))), label
        elif key == ("next", "terminated") and not _results_equal(out, clean):
            # documented default (TorchRL's): a missing "terminated" means "terminated = done"
            alt = cfg.build()
            alt["next", "terminated"] = alt["next", "done"]
            assert _results_equal(out, _run(cfg, alt)), f"{label}: neither the clean result nor terminated=done"
        else:
            assert _results_equal(out, clean), f"{label}: computed a different result instead of raising"
    # the input is never modified, whatever happened
    assert set(mutated.keys(True, True)) == set(snapshot.keys(True, True))
    for k in snapshot.keys(True, True):
        assert torch.equal(mutated.get(k), snapshot.get(k)), k
