"""Drop-in parity with TorchRL 0.14.1 on every module case of the registry: every output
entry, every parameter gradient (float32, 1e-6), the priority written into the data, and
nothing else written into the caller's data (where TorchRL writes, ours writes the same)."""

from __future__ import annotations

import pytest
import torch

from tests.specs import SPECS
from tests.specs._modules import assert_grads_close, assert_outputs_close, loss_sum, run_pair


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))


CASES = [pytest.param(s, c, id=f"{s.name}-{c.id}") for s in SPECS if s.module is not None for c in s.module_cases()]


@pytest.mark.parametrize("spec, case", CASES)
def test_values_and_gradients_match_torchrl(spec, case):
    ref, mine, data, d_ref, d_mine, out_ref, out_mine = run_pair(case)
    assert type(mine) is spec.module and type(ref) is spec.torchrl
    assert_outputs_close(case, out_mine, out_ref)
    # ours writes into the caller's data only what TorchRL writes there (the priority for
    # prioritized replay), with the same values; existing entries are left as they were
    written = set(d_mine.keys(True, True)) - set(data.keys(True, True))
    assert written <= set(d_ref.keys(True, True)), sorted(map(str, written))
    for key in written:
        torch.testing.assert_close(d_mine.get(key), d_ref.get(key), atol=case.atol, rtol=1e-5)
    priority = getattr(ref.tensor_keys, "priority", None)
    if priority is not None and priority in d_ref.keys(True, True):
        assert priority in written
    for key in data.keys(True, True):
        # as_list: a lazy stack of sequences of different lengths (LLM data) is compared per sequence
        assert _same(d_mine.get(key, as_list=True), data.get(key, as_list=True)), key
    loss_sum(out_ref).backward()
    loss_sum(out_mine).backward()
    assert_grads_close(case, mine, ref)
    # state TorchRL updates in forward (KL coefficient, clamped temperature) is updated alike
    for name, buffer in ref.named_buffers():
        if name in ("beta", "log_alpha") or name.startswith(("value_norm.", "advantage_norm.")):
            torch.testing.assert_close(dict(mine.named_buffers())[name], buffer)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.module is not None], ids=lambda s: s.name)
def test_same_keys_as_torchrl(spec):
    case = spec.module_cases()[0]
    ref, mine = case.build()
    # (TorchRL's model-based classes declare neither: then ours do not either)
    assert list(getattr(mine, "out_keys", None) or []) == list(getattr(ref, "out_keys", None) or [])
    assert sorted(map(str, getattr(mine, "in_keys", None) or [])) == sorted(map(str, getattr(ref, "in_keys", None) or []))
    assert hasattr(mine, "out_keys") == hasattr(ref, "out_keys")


@pytest.mark.parametrize("spec", [s for s in SPECS if s.module is not None], ids=lambda s: s.name)
def test_masks_and_priority_weights_as_torchrl(spec):
    """The data also carries a collector mask and priority weights (as replay buffers and
    collectors write them): ours honours exactly what TorchRL's class honours, no more."""
    case = spec.module_cases()[0]
    ref, mine = case.build()
    data = case.data(4)
    if not data.batch_dims:
        pytest.skip("data without batch dimensions")
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(data.batch_size, generator=g) > 0.3
    mask.view(-1)[0] = True
    data.set(("collector", "mask"), mask)
    data.set("priority_weight", torch.rand(data.batch_size, generator=g) + 0.5)
    torch.manual_seed(11)
    out_ref = ref(data.clone())
    torch.manual_seed(11)
    out_mine = mine(data.clone())
    for key in spec.mask_differs:  # README "Where we differ": checked in the loss's own tests
        out_mine, out_ref = out_mine.exclude(key), out_ref.exclude(key)
    assert_outputs_close(case, out_mine, out_ref)
