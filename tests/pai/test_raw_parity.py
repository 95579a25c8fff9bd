"""The group does what raw PAI 3.2.9 code (PAI's guide, written carefully) does, bit for bit:
weights, optimizer state and learning rates through several restructures, for Case 1
(one shared optimizer, alternating updates) and Case 2 (a network with SGD whose lr
follows PAI's schedule at its own ratio)."""

from __future__ import annotations

import torch
from torch import nn

from tests.pai.conftest import GPA
from tests.pai.helpers import mlp
from torchrl_functional.pai import NetworkSpec, PAIGroup, PAISettings
from torchrl_functional.pai._runtime import import_pai, pai_call

IN = 4
LR = {"A": 1e-2, "B": 3e-2}
SCORES = [0.0, 1.0, 2.0, 3.0, 2.5, 2.0, 4.0, 5.0, 6.0, 7.0]  # restructures at 3, 6, 9; a plateau cut
SCHED = {"mode": "max", "patience": 0, "factor": 0.5}


def nets() -> dict[str, nn.Module]:
    return {"A": mlp([IN, 6, 2], 0), "B": mlp([IN, 5, 1], 1)}


def data() -> torch.Tensor:
    return torch.randn(16, IN, generator=torch.Generator().manual_seed(3))


def losses(a: nn.Module, b: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """B's loss reads A's output: gradients flow through A, which B's update must not train."""
    return a(x).pow(2).mean(), (b(x) - a(x).sum(-1, keepdim=True)).pow(2).mean()


class Pair(nn.Module):
    def __init__(self, A: nn.Module, B: nn.Module) -> None:  # noqa: N803 - PAI's guide names
        super().__init__()
        self.A, self.B = A, B


def raw_pai(case: int) -> dict:
    """PAI's guide with the PAI 3.2.9 names, the settings the group uses, and exact
    ``requires_grad`` restoring in the freezing helpers."""
    gpa, upa = import_pai().gpa, import_pai().upa
    x, lrs = data(), []
    torch.manual_seed(0)
    with pai_call("raw PAI"):
        gpa.pc = pc = gpa.PAIConfig()
        gpa.pai_tracker = []
        pc.set_configuration_confirmed(True)
        pc.set_unwrapped_modules_confirmed(True)
        pc.set_testing_dendrite_capacity(False)
        pc.set_use_cuda(False)
        pc.set_device(torch.device("cpu"))
        pc.set_silent(True)
        pc.set_switch_mode(pc.DOING_FIXED_SWITCH)
        pc.set_n_epochs_to_switch(10)
        pc.set_fixed_switch_num(3)
        pc.set_first_fixed_switch_num(-1)
        pc.set_max_dendrites(100)
        pc.set_max_dendrite_tries(2)
        pc.set_find_best_lr(False)
        pc.set_test_saves(False)
        model = upa.perforate_model(Pair(**nets()), save_name="raw", making_graphs=False, maximizing_score=True)
        tracker = gpa.pai_tracker
        tracker.set_optimizer(torch.optim.Adam)
        tracker.set_scheduler(torch.optim.lr_scheduler.ReduceLROnPlateau)

        def setup():
            names = ("A", "B") if case == 1 else ("A",)
            opt_args = {"params": [{"params": list(getattr(model, n).parameters()), "lr": LR[n]} for n in names]}
            opt, _ = tracker.setup_optimizer(model, opt_args, dict(SCHED))
            sgd = None if case == 1 else torch.optim.SGD(
                [p for p in model.B.parameters() if p.requires_grad], lr=LR["B"] * (opt.param_groups[0]["lr"] / LR["A"])
            )
            return opt, sgd

        def set_training(net: nn.Module, mode: bool, saved: list[bool] | None = None) -> list[bool]:
            flags = [p.requires_grad for p in net.parameters()]
            for p, flag in zip(net.parameters(), saved or [mode] * len(flags)):
                p.requires_grad_(flag if saved else mode)
            return flags

        opt, sgd = setup()
        for score in SCORES:
            if case == 1:
                saved = set_training(model.A, False)
                opt.zero_grad()
                losses(model.A, model.B, x)[1].backward()
                opt.step()
                set_training(model.A, True, saved)
                saved = set_training(model.B, False)
                opt.zero_grad()
                losses(model.A, model.B, x)[0].backward()
                opt.step()
                set_training(model.B, True, saved)
            else:
                opt.zero_grad()
                sgd.zero_grad()
                sum(losses(model.A, model.B, x)).backward()
                opt.step()
                sgd.step()
            model, restructured, _ = tracker.add_validation_score(score, model)
            if restructured:
                opt, sgd = setup()
            elif case == 2:
                sgd.param_groups[0]["lr"] = LR["B"] * (opt.param_groups[0]["lr"] / LR["A"])
            lrs.append([g["lr"] for g in opt.param_groups] + ([] if sgd is None else [sgd.param_groups[0]["lr"]]))
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "adam": {names[id(p)]: s["exp_avg"].clone() for p, s in opt.state.items()},
        "lrs": lrs,
        "num_dendrites": tracker.member_vars["num_dendrites_added"],
    }


def adapter(case: int, out_dir) -> dict:
    x, lrs = data(), []
    torch.manual_seed(0)
    n = nets()
    specs = {"A": NetworkSpec(n["A"], lr=LR["A"]),
             "B": NetworkSpec(n["B"], lr=LR["B"], optimizer=None if case == 1 else torch.optim.SGD)}
    settings = PAISettings(switch_mode="fixed", fixed_switch_num=3, find_best_lr=False)
    with PAIGroup("adapter", specs, directory=out_dir, settings=settings,
                  scheduler_kwargs={"patience": 0, "factor": 0.5}) as group:
        for score in SCORES:
            if case == 1:  # no flag toggling: gradients into the named network only
                group.zero_grad()
                losses(group["A"], group["B"], x)[1].backward(inputs=group.parameters("B"))
                group.step()
                group.zero_grad()
                losses(group["A"], group["B"], x)[0].backward(inputs=group.parameters("A"))
                group.step()
            else:
                group.zero_grad()
                sum(losses(group["A"], group["B"], x)).backward()
                group.step()
            result = group.add_score(score)
            lrs.append([result.lrs["A"], result.lrs["B"]])
        names = {id(p): name for name, p in group.model.named_parameters()}
        return {
            "model": {k: v.clone() for k, v in group.model.state_dict().items()},
            "adam": {names[id(p)]: s["exp_avg"].clone() for p, s in group.optimizer.state.items()},
            "lrs": lrs,
            "num_dendrites": group.num_dendrites,
        }


def check_identical(raw: dict, ours: dict) -> None:
    assert raw["num_dendrites"] == ours["num_dendrites"] == 3
    assert raw["lrs"] == ours["lrs"]  # exactly
    assert len({tuple(r) for r in raw["lrs"]}) >= 2  # a plateau cut, then a restart
    assert raw["model"].keys() == ours["model"].keys()
    for key, value in raw["model"].items():
        if key != "tracker_string":  # PAI's tracker text (times, save name)
            assert torch.equal(value, ours["model"][key]), key
    assert raw["adam"].keys() == ours["adam"].keys() and raw["adam"]
    for key, value in raw["adam"].items():
        assert torch.equal(value, ours["adam"][key]), key


def test_case1_equals_raw_pai_bit_for_bit(out_dir, monkeypatch, pai_sandbox):
    monkeypatch.chdir(out_dir)  # raw PAI writes to ./raw/
    raw = raw_pai(case=1)
    monkeypatch.chdir(pai_sandbox)
    GPA.pc, GPA.pai_tracker = GPA.PAIConfig(), []
    check_identical(raw, adapter(case=1, out_dir=out_dir))


def test_case2_equals_raw_pai_bit_for_bit(out_dir, monkeypatch, pai_sandbox):
    monkeypatch.chdir(out_dir)
    raw = raw_pai(case=2)
    monkeypatch.chdir(pai_sandbox)
    GPA.pc, GPA.pai_tracker = GPA.PAIConfig(), []
    check_identical(raw, adapter(case=2, out_dir=out_dir))
