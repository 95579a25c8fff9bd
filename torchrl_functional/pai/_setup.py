"""Converting a group's networks with PAI: a fresh, non-interactive configuration per
group, the group's settings applied, absolute paths, networks modified in place."""

from __future__ import annotations

from typing import Any

from torch import nn

from ._rundir import absolute_save_name, point_pai_at
from .config import SWITCH_MODES
from .errors import PAIConfigError

__all__ = ["perforate"]


def _replaced_by_pai(pc: Any, module: nn.Module) -> bool:
    """PAI converts (replaces) a module of one of these types wherever it sits."""
    types = tuple(t for t in [*pc.get_modules_to_perforate(), *pc.get_modules_to_replace()] if isinstance(t, type))
    return isinstance(module, types) or type(module).__name__ in pc.get_module_names_to_perforate()


def _bare_layer_error(group: Any, name: str, module: nn.Module) -> PAIConfigError:
    return PAIConfigError(
        f"PAIGroup({group.name!r}): network {name!r} is a single {type(module).__name__}, which PAI "
        "replaces by a new object (code holding the original would bypass the dendrites); "
        "wrap it: NetworkSpec(nn.Sequential(layer), ...), or give dendrites=False"
    )


def perforate(group: Any, model: nn.Module) -> None:
    """Configure a fresh ``GPA.pc`` from the group's settings and convert ``model``.

    Sets ``group._pc``, ``group._tracker`` and ``group._model``.

    Args:
        group: the :class:`~torchrl_functional.pai.PAIGroup` being built.
        model: the module holding the networks as attributes.

    Raises:
        PAIConfigError: an unknown ``PAISettings.extra`` name, or a network PAI would
            replace instead of modifying it in place.
    """
    gpa, upa = group._pai.gpa, group._pai.upa
    s = group.settings
    with group._call("perforate", activate=False):
        gpa.pc = pc = gpa.PAIConfig()
        gpa.pai_tracker = []
        point_pai_at(pc, group.run_directory, group.name)
        for key in s.extra:
            if f"_{key}" not in pc.__dict__ or f"set_{key}" not in pc.__dict__:
                raise PAIConfigError(f"PAIGroup({group.name!r}): unknown PAI setting {key!r} in PAISettings.extra")
        pc.set_configuration_confirmed(True)
        pc.set_unwrapped_modules_confirmed(True)
        pc.set_testing_dendrite_capacity(False)
        pc.set_use_cuda(group.device.type == "cuda")
        pc.set_device(group.device)
        pc.set_silent(not group.verbose)
        pc.set_switch_mode(getattr(pc, SWITCH_MODES[s.switch_mode]))
        pc.set_n_epochs_to_switch(s.n_epochs_to_switch)
        pc.set_fixed_switch_num(s.fixed_switch_num)
        pc.set_first_fixed_switch_num(s.first_fixed_switch_num)
        pc.set_max_dendrites(s.max_dendrites)
        pc.set_max_dendrite_tries(s.max_dendrite_tries)
        pc.set_find_best_lr(s.find_best_lr)
        pc.set_test_saves(s.save_intermediate)
        for key, value in s.extra.items():
            getattr(pc, f"set_{key}")(value)
        tracked = [f".{n}" for n, spec in group._specs.items() if not spec.dendrites]
        if tracked:
            pc.set_module_ids_to_track(tracked)
        for name, spec in group._specs.items():
            if spec.dendrites and _replaced_by_pai(pc, spec.module):
                raise _bare_layer_error(group, name, spec.module)
        converted = upa.perforate_model(
            model, doing_pai=True, save_name=group.name, making_graphs=s.graphs, maximizing_score=group.maximize
        )
        group._pc = gpa.pc
        group._tracker = gpa.pai_tracker
        group._model = converted if converted is not None else model
        absolute_save_name(group._pc, group._tracker, group.run_directory, group.name)
        group._tracker.set_optimizer(group._optimizer_cls)
        group._tracker.set_scheduler(group._scheduler_cls)
        for name, spec in group._specs.items():
            held = getattr(group._model, name)
            if held is not spec.module and (spec.dendrites or getattr(held, "main_module", None) is not spec.module):
                raise _bare_layer_error(group, name, spec.module)
            if spec.output_dimensions is not None:
                for layer in group._neuron_layers(name):
                    layer.set_this_output_dimensions([int(d) for d in spec.output_dimensions])
