"""Case 2 (own optimizer, lr follows PAI's schedule) and Case 3 (own optimizer, lr left to the
user), with the learning rates computed by hand."""

from __future__ import annotations

import pytest
import torch

from tests.pai.helpers import fixed, mlp, regression_step, trainable_params
from torchrl_functional.pai import NetworkSpec, PAIConfigError, PAIGroup

IN = 4
# 3rd and 6th scores restructure (fixed switch every 3); the 5th is a drop: with
# ReduceLROnPlateau(patience=0, factor=0.5) PAI halves its lr; a restructure resets it.
SCORES = [0.0, 1.0, 2.0, 3.0, 2.0, 1.0]
RESTRUCTURED = [False, False, True, False, False, True]
PAI_FACTOR = [1.0, 1.0, 1.0, 1.0, 0.5, 1.0]


def make_group(out_dir, **extra_nets) -> PAIGroup:
    nets = {"actor": NetworkSpec(mlp([IN, 8, 2], 0), lr=1e-3), **extra_nets}
    return PAIGroup(
        "cases", nets, directory=out_dir, settings=fixed(3), scheduler_kwargs={"patience": 0, "factor": 0.5}
    )


def test_case2_lr_follows_the_pai_schedule_at_its_own_ratio(out_dir):
    meta = NetworkSpec(mlp([IN, 5, 1], 2), lr=1e-2, optimizer=torch.optim.SGD, optimizer_kwargs={"momentum": 0.9})
    group = make_group(out_dir, meta=meta)
    x = torch.randn(16, IN, generator=torch.Generator().manual_seed(0))
    sgd0 = group.optimizers["meta"]
    assert isinstance(sgd0, torch.optim.SGD) and sgd0 is not group.optimizer
    for score, restructured, factor in zip(SCORES, RESTRUCTURED, PAI_FACTOR):
        before = group.optimizers["meta"]
        regression_step(group, x)
        result = group.add_score(score)
        assert result.restructured == restructured
        sgd = group.optimizers["meta"]
        # PAI's lr is 1e-3 * factor; the SGD net keeps its ratio 10 to it (copying
        # PAI's param_groups[0]["lr"] would give 1e-3 * factor instead)
        assert result.lrs["actor"] == pytest.approx(1e-3 * factor, rel=1e-12)
        assert sgd.param_groups[0]["lr"] == pytest.approx(1e-2 * factor, rel=1e-12)
        assert result.lrs["meta"] == sgd.param_groups[0]["lr"]
        assert sgd.param_groups[0]["momentum"] == 0.9
        assert sgd is before  # the same object, refilled in place at restructures
        if restructured:  # fresh parameter list: new dendrites in, no stale state
            assert {id(p) for p in sgd.param_groups[0]["params"]} == trainable_params(group["meta"])
            assert len(sgd.state) == 0
    assert group.num_dendrites == 2
    # the SGD network has dendrites and its optimizer trains them
    regression_step(group, x)
    new = [p for n, p in group["meta"].named_parameters() if "dendrites_to_top.1" in n]
    assert new and all(id(p) in {id(q) for q in group.optimizers["meta"].param_groups[0]["params"]} for p in new)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in new)


def test_case3_keeps_its_lr_and_its_users_schedulers(out_dir):
    """Case 3: the group never changes the lr; schedulers the user attached to the (stable)
    optimizer keep driving it across restructures."""
    step = NetworkSpec(mlp([IN, 3], 3), lr=5e-3, optimizer=torch.optim.RMSprop, follow_pai_lr=False)
    plateau = NetworkSpec(mlp([IN, 3], 4), lr=1e-2, optimizer=torch.optim.Adam, follow_pai_lr=False)
    fixed_lr = NetworkSpec(mlp([IN, 3], 5), lr=2e-3, optimizer=torch.optim.SGD, follow_pai_lr=False)
    group = make_group(out_dir, step=step, plateau=plateau, fixed_lr=fixed_lr)
    schedulers = {
        "step": torch.optim.lr_scheduler.StepLR(group.optimizers["step"], step_size=1, gamma=0.5),
        "plateau": torch.optim.lr_scheduler.ReduceLROnPlateau(group.optimizers["plateau"], mode="max",
                                                              patience=0, factor=0.1),
    }
    x = torch.randn(16, IN, generator=torch.Generator().manual_seed(1))
    # by hand: StepLR halves at every score, restructures included; the plateau
    # scheduler cuts by 10 at each drop of the score (5th: 3 -> 2, 6th: 2 -> 1)
    expected_step = [5e-3 * 0.5 ** (k + 1) for k in range(len(SCORES))]
    expected_plateau = [1e-2, 1e-2, 1e-2, 1e-2, 1e-3, 1e-4]
    optimizers = dict(group.optimizers)
    for k, (score, restructured, factor) in enumerate(zip(SCORES, RESTRUCTURED, PAI_FACTOR)):
        regression_step(group, x)
        result = group.add_score(score)
        schedulers["step"].step()
        schedulers["plateau"].step(score)
        assert result.restructured == restructured
        assert result.lrs["actor"] == pytest.approx(1e-3 * factor, rel=1e-12)
        assert group.lrs()["step"] == pytest.approx(expected_step[k], rel=1e-12)
        assert group.lrs()["plateau"] == pytest.approx(expected_plateau[k], rel=1e-12)
        assert group.lrs()["fixed_lr"] == 2e-3
        for name in ("step", "plateau", "fixed_lr"):
            assert group.optimizers[name] is optimizers[name]
            assert {id(p) for p in group.optimizers[name].param_groups[0]["params"]} == trainable_params(group[name])
    assert group.num_dendrites == 2


def test_without_a_scheduler_pai_keeps_the_lrs(out_dir):
    group = PAIGroup(
        "nosched", {"actor": NetworkSpec(mlp([IN, 8, 2], 0), lr=1e-3), "critic": NetworkSpec(mlp([IN, 8, 1], 1), lr=4e-3)},
        directory=out_dir, settings=fixed(3), scheduler=None, optimizer=torch.optim.SGD,
        optimizer_kwargs={"momentum": 0.5},
    )
    assert group.scheduler is None and isinstance(group.optimizer, torch.optim.SGD)
    x = torch.randn(16, IN)
    for score, restructured in zip(SCORES, RESTRUCTURED):
        regression_step(group, x)
        result = group.add_score(score)
        assert result.restructured == restructured
        assert result.lrs == {"actor": 1e-3, "critic": 4e-3}  # the drop changes nothing
        assert all(g["momentum"] == 0.5 for g in group.optimizer.param_groups)
    assert group.num_dendrites == 2


def test_optimizer_configuration_errors(out_dir):
    net = mlp([IN, 2], 0)
    with pytest.raises(PAIConfigError, match="needs an optimizer of its own"):
        make_group(out_dir, x=NetworkSpec(net, lr=1e-3, follow_pai_lr=False))
    with pytest.raises(PAIConfigError, match="must not contain 'lr'"):
        make_group(out_dir, x=NetworkSpec(net, lr=1e-3, optimizer=torch.optim.SGD, optimizer_kwargs={"lr": 1.0}))
    with pytest.raises(PAIConfigError, match="at least one network must use the shared"):
        PAIGroup("x", {"a": NetworkSpec(net, lr=1e-3, optimizer=torch.optim.SGD)}, directory=out_dir)
    with pytest.raises(PAIConfigError, match="contradicts maximize"):
        PAIGroup("x", {"a": NetworkSpec(net, lr=1e-3)}, directory=out_dir, scheduler_kwargs={"mode": "min"})
    with pytest.raises(PAIConfigError, match="lr must be a positive"):
        PAIGroup("x", {"a": NetworkSpec(net, lr=0.0)}, directory=out_dir)
    with pytest.raises(PAIConfigError, match="must be a NetworkSpec"):
        PAIGroup("x", {"a": net}, directory=out_dir)
    with pytest.raises(PAIConfigError, match="same module"):
        PAIGroup("x", {"a": NetworkSpec(net, lr=1e-3), "b": NetworkSpec(net, lr=1e-3)}, directory=out_dir)
    assert list(out_dir.iterdir()) == []  # refused before anything was written
