"""The private attributes of torch, tensordict and TorchRL that the package relies on, each
pinned here so that a version change fails loudly in one place instead of silently changing
numbers. Public API is used everywhere else."""

from __future__ import annotations

import inspect
import sys

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictParams
from torch import distributions as D
from torchrl.objectives import LossModule


def test_tensordict_params_keeps_its_tree_in_param_td():
    # modules/_binding.py swaps a loss module's parameters by assigning TensorDictParams._param_td
    params = TensorDictParams(TensorDict({"w": torch.nn.Parameter(torch.ones(2))}, []))
    assert isinstance(params._param_td, TensorDictBase)
    assert params._param_td["w"] is params["w"]
    swapped = params._param_td.copy()
    swapped["w"] = torch.zeros(2)
    params._param_td = swapped
    assert torch.equal(params["w"], torch.zeros(2))


def test_torch_kl_dispatch_and_registry():
    # functional/distributions.py: the analytic-KL lookup (also while torch.compile traces) and
    # the categorical pairs it computes itself
    assert callable(D.kl._dispatch_kl)
    assert isinstance(D.kl._KL_REGISTRY, dict)
    assert (D.Normal, D.Normal) in D.kl._KL_REGISTRY
    assert D.kl._dispatch_kl(D.Categorical, D.Categorical) is D.kl._kl_categorical_categorical
    assert D.kl._dispatch_kl(D.OneHotCategorical, D.OneHotCategorical) is D.kl._kl_onehotcategorical_onehotcategorical
    p = D.OneHotCategorical(logits=torch.zeros(3))
    assert isinstance(p._categorical, D.Categorical)


def test_nn_module_registries():
    # modules/_binding.py re-points parameters and buffers by name
    m = torch.nn.Linear(2, 2)
    m.register_buffer("b", torch.zeros(1))
    assert set(m._parameters) == {"weight", "bias"} and set(m._buffers) == {"b"} and m._modules == {}


def test_torchrl_loss_module_private_hooks():
    # modules/_onpolicy.py, modules/_offpolicy.py: the masks TorchRL's LossModule applies
    assert inspect.isfunction(LossModule._loss_mask_keys)
    # modules/llm/_inputs.py (run_log_probs): the device TorchRL's losses fall back to, for
    # every drop-in of the registry that runs its policy through it
    from tests.specs import SPECS

    runs = [s for s in SPECS if s.module is not None
            and "run_log_probs(" in inspect.getsource(sys.modules[s.module.__module__])]
    assert runs
    for spec in runs:
        assert "_device_fallback" in inspect.getsource(spec.torchrl.__init__), spec.torchrl.__name__


def _layouts():
    """TensorDicts of every kind a loss may be handed, with the keys to read from each."""
    from tensordict import LazyStackedTensorDict, NonTensorData

    plain = TensorDict({"a": torch.ones(3, 1), "next": {"reward": torch.zeros(3, 1), "agents": {"q": torch.ones(3, 2, 1)}},
                        "text": NonTensorData("hello", batch_size=[3])}, [3])
    keys = ["a", "b", ("a",), ("next", "reward"), ("next", "agents", "q"), ("next", "missing"), ("missing", "x"),
            ("next", ("agents", "q")), "next", ("next", "agents"), "text", ()]
    lazy = LazyStackedTensorDict.lazy_stack([plain[0].exclude("text"), plain[1].exclude("text")])
    nested_lazy = TensorDict({"next": lazy}, [2])
    params = TensorDictParams(TensorDict({"w": torch.nn.Parameter(torch.ones(2)), "sub": {"v": torch.ones(1)}}, []))
    return [(plain, keys), (lazy, keys), (nested_lazy, keys), (params, ["w", ("sub", "v"), "x", ("sub", "x")]),
            (TensorDict({}, []), keys)]


def _outcome(fn, *args, **kwargs):
    try:
        return "value", fn(*args, **kwargs)
    except Exception as err:  # the same exception type as TensorDict.get
        return "error", type(err)


def test_entry_reads_what_get_reads():
    # functional/_td.py: ``entry`` reads a plain TensorDict's storage (TensorDict._tensordict,
    # a dict of string keys) and must give TensorDict.get's answer (value, None or exception)
    # for every TensorDict type and key form a loss may meet
    from torchrl_functional.functional._td import entry

    assert isinstance(TensorDict({"a": torch.ones(1)}, [])._tensordict, dict)
    for td, keys in _layouts():
        for key in keys:
            got, want = _outcome(entry, td, key), _outcome(td.get, key, None)
            assert got[0] == want[0], (type(td).__name__, key, got, want)
            if got[0] == "error":
                assert got[1] is want[1], (key, got, want)
            elif isinstance(want[1], torch.Tensor):
                assert got[1] is want[1] or torch.equal(got[1], want[1]), (type(td).__name__, key)
            else:
                assert type(got[1]) is type(want[1]), (type(td).__name__, key, got, want)
                # a stored sub-TensorDict or non-tensor leaf is the same object; a lazy stack's
                # view is rebuilt by each get, equal
                assert got[1] is want[1] or bool((got[1] == want[1]).all()), (type(td).__name__, key)
        # the default is returned for an absent entry, as get's
        marker = object()
        assert entry(td, "absent_entry", marker) is td.get("absent_entry", marker)


def test_pack_builds_what_the_constructor_builds():
    # functional/_td.py: ``pack`` stores a source of tensors with TensorDict._new_unsafe; the
    # result must equal the constructor's (keys, values, batch size, device), and anything the
    # constructor would convert (numbers, tuple keys, another device) goes through it
    from torchrl_functional.functional._td import pack

    x, y = torch.randn(4, 2), torch.randn(4)
    for source, batch, device in (
        ({"loss": x.sum(), "td_error": y}, [], None),
        ({"a": x, "next": {"b": y}}, [4], None),
        ({"a": x, "next": {"b": y}}, torch.Size([4]), torch.device("cpu")),
        ({"a": 1.5, "b": x}, [], None),  # a number: converted by the constructor
        ({("next", "b"): y, "a": x}, [4], None),  # a tuple key: nested
    ):
        got, want = pack(dict(source), batch, device), TensorDict(dict(source), batch_size=batch, device=device)
        assert type(got) is TensorDict and got.batch_size == want.batch_size and got.device == want.device
        assert set(got.keys(True, True)) == set(want.keys(True, True))
        for key in want.keys(True, True):
            assert torch.equal(got.get(key), want.get(key)), key
        if all(isinstance(v, (torch.Tensor, dict)) for v in source.values()) and all(isinstance(k, str) for k in source):
            assert got.get("loss", got.get("a")) is source.get("loss", source.get("a"))  # stored, not copied


def test_gather_holds_what_select_holds():
    # modules/_offpolicy.py builds a loss's inputs with gather + pack instead of select + set:
    # the same leaves at the same paths, for leaves, sub-TensorDicts, absent and nested keys
    from torchrl_functional.functional._td import gather, pack

    td = TensorDict({"action": {"head0": torch.ones(3, 1), "head1": {"x": torch.zeros(3, 2)}}, "a": torch.ones(3, 1),
                     "next": {"reward": torch.zeros(3, 1), "done": torch.zeros(3, 1, dtype=torch.bool)}}, [3])
    keys = ["action", "a", ("next", "reward"), ("next", ("done",)), ("next", "terminated"), "missing", ("x", "y")]
    want = TensorDict(batch_size=[])
    for key, value in td.select(*keys, strict=False).items(True, True):
        want.set(key, value)
    got = pack(gather(td, keys))
    assert set(got.keys(True, True)) == set(want.keys(True, True))
    for key in want.keys(True, True):
        assert got.get(key) is want.get(key), key


def test_losses_read_and_pack_through_the_shortcuts():
    # one way to read an entry (entry) and to build a loss's outputs (pack) in the functional
    # losses; the ragged-sequence reader keeps TensorDict.get for a lazy stack's per-row lists
    import re
    from pathlib import Path

    import torchrl_functional.functional as functional

    root = Path(functional.__file__).parent
    found = {}
    for path in root.rglob("*.py"):
        if path.name == "_td.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\btd\.get\((?!key, None, as_list=True)", line) or re.search(r"\bTensorDict\(.*batch_size=\[\]\)", line):
                found[f"{path.relative_to(root)}:{n}"] = line.strip()
    assert found == {}


def test_rename_entry_renames_as_rename_key_does():
    # modules/model_based/world_model.py renames the observed reward/done in its copy with
    # rename_entry: the result (keys, values, order) or the exception must be rename_key_'s
    from tensordict import LazyStackedTensorDict

    from torchrl_functional.functional._td import rename_entry

    def fresh():
        return TensorDict({"a": torch.ones(2), "next": {"reward": torch.zeros(2, 1), "done": torch.ones(2, 1),
                                                        "true_done": torch.ones(2, 1), "agents": {"r": torch.ones(2)}}},
                          [2])

    cases = [
        (("next", "reward"), ("next", "true_reward"), False),
        (("next", "done"), ("next", "true_done"), False),  # overwrites
        (("next", "done"), ("next", "true_done"), True),  # refused: present
        (("next", "missing"), ("next", "x"), False),
        (("nothing", "reward"), ("nothing", "x"), False),
        (("next", "reward"), ("next", "reward"), False),
        (("next", "agents", "r"), ("next", "agents", "q"), True),
        ("a", "b", False),
        (("next", "reward"), ("other", "reward"), False),
        (("a", "x"), ("a", "y"), False),  # past a leaf
    ]
    for old, new, safe in cases:
        for build in (fresh, lambda: fresh().lock_(), lambda: LazyStackedTensorDict.lazy_stack([fresh()[0], fresh()[1]])):
            ours, theirs = build(), build()
            got, want = _outcome(rename_entry, ours, old, new, safe=safe), _outcome(theirs.rename_key_, old, new, safe)
            assert got[0] == want[0], (old, new, safe, type(ours).__name__, got, want)
            if got[0] == "error":
                assert got[1] is want[1], (old, new, safe, got, want)
                continue
            assert list(ours.keys(True, True)) == list(theirs.keys(True, True)), (old, new, safe)
            for key in theirs.keys(True, True):
                assert torch.equal(ours.get(key), theirs.get(key)), key
