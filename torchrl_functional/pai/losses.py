"""Keep TorchRL loss modules pointed at the current parameters of their networks.

A ``torchrl.objectives.LossModule`` (TorchRL's classes and the drop-in ones of
:mod:`torchrl_functional.modules`) copies each network's parameters into a
``TensorDictParams`` when it is built (``convert_to_functional``) and swaps them into the
network on every call. After PAI restructures a network in place, that copy is stale: the
new dendrite parameters are missing from ``loss.parameters()`` (an optimizer built from it
never trains them), they are not detached where the loss detaches the critic (value
estimation), and the buffers of the replaced dendrite modules are swapped back in.
:func:`refresh_loss_module` rebuilds those copies from the networks as they are now.
"""

from __future__ import annotations

from collections.abc import Collection

from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictParams
from torch import nn

from .errors import PAIConfigError

__all__ = ["refresh_loss_module", "functional_networks", "group_networks", "disable_value_estimator_vmap"]


def functional_networks(loss: nn.Module) -> list[str]:
    """Names ``X`` for which ``loss`` holds ``X_params`` built from the network ``loss.X``,
    in the order they were registered (the order of ``convert_to_functional`` calls).

    Args:
        loss: a TorchRL loss module.
    """
    names = []
    for key, value in loss._modules.items():
        if not key.endswith("_params") or key.startswith("target_") or not isinstance(value, TensorDictBase):
            continue
        base = key[: -len("_params")]
        if isinstance(loss.__dict__.get(base), nn.Module):
            names.append(base)
    return names


def group_networks(loss: nn.Module, modules: Collection[nn.Module], where: str) -> list[str]:
    """The networks ``X`` of ``loss`` (as :func:`functional_networks`) that hold modules of a
    group; refuse those whose parameters the loss stacks into copies of its own.

    A loss such as ``SACLoss``, ``TD3Loss``, ``REDQLoss``, ``CQLLoss`` or ``IQLLoss`` trains
    its own stacked copies of the Q network (``qvalue_network_params`` of shape
    ``[num_qvalue_nets, ...]``): the group's optimizer holds the network's parameters, not
    those copies, and PAI's dendrites grow on the network, which the loss never runs with
    its own parameters.

    Args:
        loss: a TorchRL loss module.
        modules: every module of the group's networks (submodules included).
        where: names the caller in the error message.

    Returns:
        The names ``X`` (``loss.X`` holds a group module) whose ``X_params`` the group must
        refresh after a restructure.

    Raises:
        PAIConfigError: ``X_params`` is a stacked set of parameters (``batch_size`` not empty).
    """
    ids = {id(m) for m in modules}
    out = []
    for name in functional_networks(loss):
        network = loss.__dict__[name]
        if not any(id(m) in ids for m in network.modules()):
            continue
        params = loss._modules[f"{name}_params"]
        if params.batch_size:
            what = f"{params.batch_size[0]} stacked copies"
            raise PAIConfigError(
                f"{where}: {type(loss).__name__} trains its own {what} of the parameters of "
                f"{name!r} ({name}_params), which holds a network of this group: the group's "
                "optimizer would never update them and PAI's dendrites on the network would not "
                "reach them. Supported instead: (1) keep that network out of the group (dendrites on "
                f"the others) and train {name}_params with an optimizer of your own; or (2) give "
                "each copy to the group as a network of its own (e.g. 'q1', 'q2'), compute the loss "
                "with the functional torchrl_functional.functional function, and use "
                "group.target(name) for target networks (see examples/sac_pai.py)"
            )
        out.append(name)
    return out


def _is_param(value) -> bool:
    return isinstance(value, nn.Parameter)


def refresh_loss_module(loss: nn.Module, names: Collection[str] | None = None) -> list[str]:
    """Rebuild ``loss.<net>_params`` (and ``target_<net>_params``) from the current networks.

    Follows ``LossModule.convert_to_functional``: parameters are held as is, except those
    the loss had detached because another network of the same loss owns them (a shared
    trunk with ``separate_losses=True``), which stay detached, including dendrite
    parameters PAI added to such a shared layer. Target copies keep their values for
    entries that still exist with the same shape; new entries start as copies of the
    current parameters. TorchRL's caches of detached parameters are cleared.

    Works for any loss built with ``functional=True`` (a no-op for ``functional=False``,
    whose networks are called directly). Target-network updaters (``SoftUpdate``...) hold
    references to the old target tensors: build them again after a refresh.

    Args:
        loss: a TorchRL loss module.
        names: the networks ``X`` to refresh (default: every network the loss holds
            parameters of). Networks the loss stacks or copies must not be listed.

    Returns:
        The names of the refreshed networks (e.g. ``["actor_network", "critic_network"]``).
    """
    names = functional_networks(loss) if names is None else [n for n in functional_networks(loss) if n in names]
    owned: set[int] = set()  # parameters already held (as Parameters) by an earlier network
    for name in names:
        module = loss.__dict__[name]
        old = loss._modules[f"{name}_params"]
        new = TensorDict.from_module(module, as_module=True)
        old_leaves = dict(old.items(True, True))
        new_keys = set(new.keys(True, True))
        # the loss detached some parameters at construction (compare_against): keep doing so
        detaching = any(
            not _is_param(value) and _is_param(new.get(key))
            for key, value in old_leaves.items()
            if key in new_keys
        )
        for key, value in list(new.items(True, True)):
            if not _is_param(value):
                continue
            old_value = old_leaves.get(key)
            if old_value is not None and not _is_param(old_value):
                new.set(key, value.data)
            elif old_value is None and detaching and id(value) in owned:
                new.set(key, value.data)
        for value in new.values(True, True):
            if _is_param(value):
                owned.add(id(value))
        setattr(loss, f"{name}_params", new)

        target_key = f"target_{name}_params"
        old_target = loss._modules.get(target_key)
        if old_target is not None:
            setattr(loss, target_key, _refresh_target(new, old_target))
    erase = getattr(loss, "_erase_cache", None)
    if callable(erase):
        erase()
    return names


def _refresh_target(params: TensorDictBase, old_target: TensorDictBase) -> TensorDictParams:
    """Target copies as ``convert_to_functional(create_target_params=True)`` makes them,
    keeping the old target values where the entry still exists with the same shape."""
    old_leaves = dict(old_target.items(True, True))

    def _target(key, value):
        kept = old_leaves.get(key)
        if kept is not None and kept.shape == value.shape:
            return kept
        return value.data.clone()

    target = TensorDictParams(params.named_apply(_target, nested_keys=True, filter_empty=False), no_convert=True)
    target.uninitialized_keys = set()
    return target


def disable_value_estimator_vmap(loss: nn.Module) -> bool:
    """Make the loss's value estimator loop instead of ``vmap`` over the critic.

    TorchRL's estimators (GAE, TD(lambda) ...) evaluate ``V(s)`` and ``V(s')`` with
    ``torch.vmap`` over stacked parameters. Layers with dendrites branch on tensor
    values in their forward pass (data-dependent control flow), which ``vmap`` rejects
    as soon as PAI has added dendrites. ``deactivate_vmap=True`` (a TorchRL option)
    computes the same values with a Python loop.

    Args:
        loss: a TorchRL loss module (its estimator is not created here if it has none yet).

    Returns:
        ``True`` if the loss has a value estimator with that option (now set).
    """
    estimator = getattr(loss, "_value_estimator", None)  # None until first used: not created here
    if estimator is None or not hasattr(estimator, "deactivate_vmap"):
        return False
    estimator.deactivate_vmap = True
    return True
