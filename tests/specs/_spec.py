"""The declarative record every loss is described by (one :class:`LossSpec` per loss).

The cross-cutting tests (``tests/registry/``) and the registry benchmark
(``benchmarks/bench_registry.py``) are parametrized over :data:`tests.specs.SPECS`; a loss
gets every guarantee (purity, bad-input fuzzing, grad vs finite differences, vmap vs loop,
``compile(fullgraph=True)``, ``functional_call`` on the module, parity with TorchRL, a
benchmark row) by being declared here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDict

MakeTD = Callable[[int, torch.dtype], TensorDict]

#: the tags a :class:`LossSpec` may carry, and what each promises about the function
TAGS = {
    "on_policy": "reads the policy-gradient batch (actor_output or log_prob, action, advantage or the "
                 "estimator's next entries, value_target, state_value) and takes reduction, loss_critic_type, "
                 "clip_value, value_estimator, gamma, lmbda, loss_mask_key, diagnostics, keys",
    "importance_ratio": "weighs by the ratio to the behaviour policy's action_log_prob",
    "kl_penalty": "penalises the KL to the behaviour distribution (old_actor_output) and returns the adapted beta",
    "replay": "reads a replayed transition (tests.specs._inputs.off_policy_td, its first layout) in TorchRL's "
              "replay conventions: n-step steps_to_next_obs, [*B]-batched ensembles, nested agent keys",
}


@dataclass(frozen=True)
class Hyper:
    """A hyperparameter of a functional loss.

    Attributes:
        name: keyword argument name.
        value: a valid value the guarantees evaluate at.
        invalid: values that must raise :class:`~torchrl_functional.errors.HyperparameterError`
            naming ``name``.
        tensor: whether a tensor with gradients is accepted (meta-gradients); ``False`` for
            integers and choices.
        objective: the outputs where its gradient is defined (default: every ``loss_*``), for
            losses whose math stops its gradient elsewhere on purpose.
        entry: whether a same-named ``[*B]``/``[*B, 1]`` entry of the input overrides it.
        layouts: ids of the layouts where it changes the loss (default: all).
    """

    name: str
    value: float
    invalid: tuple = ()
    tensor: bool = True
    objective: tuple[str, ...] | None = None
    entry: bool = False
    layouts: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Layout:
    """One valid input configuration of a functional loss.

    Attributes:
        id: short name (``"gae"``, ``"given_normal"``, ``"multiagent"``...).
        make_td: ``(seed, dtype) -> TensorDict``: a valid input whose entries are constants.
        kwargs: keyword arguments for this layout (``dist_class``, options).
        grad_inputs: entries that carry gradients in real use (network outputs).
        compile: the layout compiled with ``torch.compile(fullgraph=True)`` (one per loss).
        fuzz: run the bad-input mutations on it.
        vmap: run the ``vmap``-over-tasks guarantee on it.
    """

    id: str
    make_td: MakeTD
    kwargs: dict[str, Any] = field(default_factory=dict)
    grad_inputs: tuple = ()
    compile: bool = False
    fuzz: bool = True
    vmap: bool = True


@dataclass(frozen=True)
class ModuleCase:
    """A drop-in module configuration compared with TorchRL's class.

    Attributes:
        id: short name.
        build: ``() -> (torchrl_loss, our_loss)`` on networks with identical weights (and
            identical target parameters).
        data: ``(seed) -> TensorDict``: a batch the modules run on.
        skip: output entries not compared (documented differences only).
        sum_only: outputs compared by their sum only (documented per-sample differences).
        atol: absolute tolerance (float32; 1e-6 unless the math needs more).
        functional_call: use this case for the ``functional_call`` guarantee.
        rebatch: ``(batch) -> ModuleCase``: the same case on data of another batch shape
            (the registry benchmark runs the first case of each spec at realistic sizes).
    """

    id: str
    build: Callable[[], tuple[Any, Any]]
    data: Callable[[int], TensorDict]
    skip: tuple = ()
    sum_only: tuple = ()
    skip_grads: str | None = None
    atol: float = 1e-6
    functional_call: bool = False
    rebatch: Callable[[tuple[int, ...]], ModuleCase] | None = None


@dataclass(frozen=True)
class LossSpec:
    """Everything the cross-cutting tests need to know about one loss.

    Attributes:
        name: the functional loss's ``__name__``.
        function: the functional loss.
        keys: its keys class.
        layouts: valid inputs; the first is the default.
        hypers: hyperparameters with valid and invalid values.
        module: our drop-in class (``None`` for a function without one).
        torchrl: the TorchRL class it replaces.
        module_cases: ``() -> list[ModuleCase]`` (built lazily: it constructs networks).
        random: how randomness enters the function (``"generator"`` keyword, or the entries
            that hold drawn noise); empty when the loss is deterministic.
        grad_outputs: the outputs that carry gradients; every other output is detached.
        objective: outputs summed into the differentiated objective (default: ``loss*``).
        bench_batch: batch shape of the registry benchmark's row (its first module case).
        tags: properties the cross-cutting tests select specs by (see :data:`TAGS`), so that
            no test outside the loss's own file writes its name.
        mask_differs: outputs of the drop-in that differ from TorchRL's when the data carries a
            loss mask, by design (README "Where we differ": TorchRL drops or misapplies the mask
            there); the other outputs match TorchRL's with masks and priority weights in the data.
    """

    name: str
    function: Callable[..., TensorDict]
    keys: type
    layouts: Sequence[Layout]
    hypers: Sequence[Hyper] = ()
    module: type | None = None
    torchrl: type | None = None
    module_cases: Callable[[], list[ModuleCase]] | None = None
    random: tuple[str, ...] = ()
    grad_outputs: tuple[str, ...] = ()
    objective: tuple[str, ...] | None = None
    bench_batch: tuple[int, ...] = (256,)
    tags: frozenset[str] = frozenset()
    mask_differs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.tags <= TAGS.keys():
            raise ValueError(f"{self.name}: unknown tags {sorted(self.tags - TAGS.keys())}")
        if sum(layout.compile for layout in self.layouts) != 1:
            raise ValueError(f"{self.name}: exactly one layout must be marked compile=True")
        if self.module is not None and (self.torchrl is None or not issubclass(self.module, self.torchrl)):
            raise ValueError(f"{self.name}: {self.module} must subclass the TorchRL class it replaces")

    def layout(self, layout_id: str) -> Layout:
        return next(layout for layout in self.layouts if layout.id == layout_id)

    def call(self, td: TensorDict, layout: Layout, **kwargs: Any) -> TensorDict:
        return self.function(td, **{**layout.kwargs, **kwargs})

    def total(self, out: TensorDict, keys: tuple[str, ...] | None = None) -> torch.Tensor:
        """The scalar the guarantees differentiate: the sum of the objective outputs."""
        keys = keys or self.objective or tuple(k for k in out.keys() if k.startswith("loss"))
        return sum(out[k].sum() for k in keys)

    def hyper(self, name: str) -> Hyper:
        return next(h for h in self.hypers if h.name == name)
