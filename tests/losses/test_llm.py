"""The LLM losses: float64 loop references (values and gradients), dense = nested = ragged
inputs, finite differences for the asymmetric clip, vmap over groups, bad input; the drop-in
modules against TorchRL on what the registry's cases leave out (alignment pads, masks from
the chat template, group sizes, the documented options)."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict, lazy_stack
from torch.nn import functional as F
from torchrl.objectives import llm as trl

from tests.specs._llm import collected_batch, module_pair, token_batch
from tests.specs._modules import loss_sum
from torchrl_functional import modules
from torchrl_functional.errors import (
    EmptyMaskError,
    EntryDtypeError,
    EntryRequiresGradError,
    EntryShapeError,
    MissingEntryError,
)
from torchrl_functional.functional.llm import (
    cispo_loss,
    dapo_loss,
    distillation_loss,
    group_relative_advantage,
    grpo_loss,
    sft_loss,
)

DT = torch.float64
MASK, PREV = ("masks", "all_assistant_mask"), ("log_probs", "full")
REF, TEACHER = ("next", "ref_log_probs", "full"), ("next", "teacher_log_probs", "full")
GRADS = ("cur_log_prob", "entropy", "advantage")


def k3(d):
    return torch.expm1(d) - d


def policy_reference(td, *, cispo=False, clip=(0.2, 0.2), aggregation="token_mean", entropy_coeff=0.01,
                     kl_to_ref_coeff=None, kl_to_inference_coeff=None, kl_mask_threshold=None, detach=False):
    """GRPO/CISPO token by token with Python control flow (scalar torch ops keep gradients)."""
    cur, prev, mask, adv, ent, ref = (td[k] for k in ("cur_log_prob", PREV, MASK, "advantage", "entropy", REF))
    (B, L), zero = cur.shape, torch.zeros((), dtype=cur.dtype)
    lo, hi = torch.log1p(-torch.as_tensor(clip[0], dtype=DT)), torch.log1p(torch.as_tensor(clip[1], dtype=DT))
    cells, n_clipped, kl_approx = {}, 0.0, zero
    for b in range(B):
        for t in range(L):
            ok = bool(mask[b, t]) and math.isfinite(prev[b, t].item())
            c, p = (cur[b, t], prev[b, t]) if ok else (zero, zero)
            lw = c - p
            lwc = torch.clamp(lw, lo, hi)
            n_clipped += float(lwc.item() != lw.item())
            kl_approx = kl_approx + (p - c).detach()
            ok = ok and (kl_mask_threshold is None or 0.5 * lw.item() ** 2 <= kl_mask_threshold)
            a = adv[b, t if adv.shape[1] > 1 else 0, 0]
            if cispo:
                ratio = lwc.exp().detach() * torch.exp(lw - lw.detach()) if detach else lwc.exp()
                obj = -ratio * a
            else:
                g1, g2 = lw.exp() * a, lwc.exp() * a
                obj = -(g1 if g1.item() <= g2.item() else g2)  # ties: the unclipped branch, as TorchRL
            cells[b, t] = (ok, obj, -entropy_coeff * ent[b, t], c, p, ref[b, t], lw)

    def aggregate(i):
        if aggregation == "none":
            rows = [torch.stack([cells[b, t][i] if cells[b, t][0] else zero for t in range(L)]) for b in range(B)]
            return torch.stack(rows).unsqueeze(-1)
        if aggregation == "prompt_mean":
            rows = [[cells[b, t][i] for t in range(L) if cells[b, t][0]] for b in range(B)]
            return (sum(sum(r, zero) / max(1, len(r)) for r in rows) / B).reshape(1)
        valid = [v[i] for v in cells.values() if v[0]]
        return sum(valid, zero) / max(1, len(valid))

    weights = [v[6].detach().exp() for v in cells.values() if v[0]]
    out = {
        "loss_objective": aggregate(1), "loss_entropy": aggregate(2), "clip_fraction": n_clipped / (B * L),
        "kl_approx": kl_approx / (B * L), "entropy": ent.detach().sum() / (B * L),
        "ESS": sum(weights) ** 2 / sum(w**2 for w in weights) / len(weights),
    }
    for name, coeff, target in (("kl_to_ref", kl_to_ref_coeff, 5), ("kl_to_inference", kl_to_inference_coeff, 4)):
        if coeff is not None:
            kl = sum((k3(v[target] - v[3]) if v[0] else zero for v in cells.values()), zero) / (B * L)
            out["loss_" + name], out[name] = coeff * kl, kl.detach()
    return out


def leaves(td, keys=GRADS):
    td = td.clone()
    for key in keys:
        td.set(key, td.get(key).clone().requires_grad_(True))
    return td, [td.get(k) for k in keys]


def compare(out, ref, wrt):
    assert set(out.keys()) == set(ref), (sorted(out.keys()), sorted(ref))
    for key, value in ref.items():
        torch.testing.assert_close(out[key], torch.as_tensor(value, dtype=DT), rtol=1e-10, atol=1e-12,
                                   msg=lambda m, key=key: f"{key}: {m}")
    total_out = sum(v.sum() for k, v in out.items() if k.startswith("loss"))
    total_ref = sum(v.sum() for k, v in ref.items() if k.startswith("loss"))
    for got, want in zip(torch.autograd.grad(total_out, wrt, allow_unused=True),
                         torch.autograd.grad(total_ref, wrt, allow_unused=True)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


POLICY_CASES = [
    pytest.param(dict(), {}, id="grpo"),
    pytest.param(dict(aggregation="prompt_mean", kl_to_ref_coeff=0.1, kl_to_inference_coeff=0.05), {"per_token_advantage": True},
                 id="prompt_mean-kl"),
    pytest.param(dict(aggregation="none", kl_mask_threshold=0.05, clip=(0.1, 0.3)), {"nan_pad": True}, id="none-klmask-nan"),
    pytest.param(dict(cispo=True, clip=(0.1, 0.3), kl_to_ref_coeff=0.2), {}, id="cispo"),
    pytest.param(dict(cispo=True, detach=True, aggregation="prompt_mean"), {"per_token_advantage": True}, id="cispo-paper"),
]


@pytest.mark.parametrize("options, data", POLICY_CASES)
def test_policy_losses_match_a_float64_loop(options, data):
    td, wrt = leaves(token_batch(0, DT, **data))
    ref = policy_reference(td, **options)
    kwargs = {k: v for k, v in options.items() if k not in ("cispo", "clip", "detach")}
    kwargs["clip_epsilon"] = options.get("clip", 0.2)
    if options.get("cispo"):
        out = cispo_loss(td, detach_clipped_weight=options.get("detach", False), **kwargs)
    else:
        out = grpo_loss(td, **kwargs)
    compare(dict(out.items()), ref, wrt)


def test_dapo_is_grpo_with_clip_higher_defaults():
    td = token_batch(1, DT)
    want = grpo_loss(td, clip_epsilon=(0.2, 0.28))
    for key, value in dapo_loss(td).items():
        torch.testing.assert_close(value, want[key], rtol=0, atol=0)
    assert not torch.equal(grpo_loss(td)["loss_objective"], want["loss_objective"])


def test_asymmetric_clip_gradients_match_finite_differences():
    td = token_batch(5, DT, drift=0.6, per_token_advantage=True)  # tokens clipped at both bounds
    lo, hi = torch.tensor(0.15, dtype=DT, requires_grad=True), torch.tensor(0.25, dtype=DT, requires_grad=True)

    def total(a, b):
        out = grpo_loss(td, clip_epsilon=(a, b), kl_to_ref_coeff=0.1)
        return out["loss_objective"] + out["loss_entropy"] + out["loss_kl_to_ref"]

    grads = torch.autograd.grad(total(lo, hi), (lo, hi))
    eps = 1e-6
    fd = [(total(lo + eps, hi) - total(lo - eps, hi)) / (2 * eps), (total(lo, hi + eps) - total(lo, hi - eps)) / (2 * eps)]
    for g, f in zip(grads, fd):
        assert abs(f.item()) > 1e-4
        torch.testing.assert_close(g, f.detach(), rtol=1e-6, atol=1e-9)


def sft_reference(td, *, minor=False, beta=0.1, coeff=None, normalize=True, reduction="mean", n_tokens=None):
    lp, mask, ref = td[PREV], td[MASK], td[REF]
    B, L = lp.shape
    n_tokens = n_tokens or B * L
    count = [max(1, int(mask[b].sum())) for b in range(B)]
    s = torch.stack([sum((lp[b, t] for t in range(L) if mask[b, t]), torch.zeros((), dtype=DT)) for b in range(B)])
    s_ref = torch.stack([ref[b].sum() for b in range(B)])
    if normalize:
        s, s_ref = s / torch.tensor(count, dtype=DT), s_ref / torch.tensor(count, dtype=DT)
    per_seq = -F.logsigmoid(beta * (s - s_ref)) if minor else -s
    out = {"loss_sft": {"mean": per_seq.mean(), "sum": per_seq.sum(), "none": per_seq}[reduction]}
    if coeff is not None:
        kl = sum(k3(ref[b, t] - (lp[b, t] if mask[b, t] else 0.0)) for b in range(B) for t in range(L)) / n_tokens
        kl = kl.detach() if minor else kl
        out.update(loss_kl_to_ref=coeff * kl, kl_to_ref=kl.detach())
    return out


@pytest.mark.parametrize("options", [dict(), dict(coeff=0.1, normalize=False, reduction="sum"),
                                     dict(minor=True, beta=0.5, reduction="none"), dict(minor=True, coeff=0.1)])
def test_sft_matches_a_float64_loop(options):
    td, wrt = leaves(token_batch(3, DT), (PREV,))
    out = sft_loss(td, loss_function="minor_sft" if options.get("minor") else "sft", beta=options.get("beta", 0.1),
                   kl_to_ref_coeff=options.get("coeff"), normalize_by_seq_length=options.get("normalize", True),
                   reduction=options.get("reduction", "mean"))
    compare(dict(out.items()), sft_reference(td, **options), wrt)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
@pytest.mark.parametrize("normalize, reduction", [(True, "mean"), (False, "none")])
def test_distillation_matches_a_float64_loop(direction, normalize, reduction):
    td, wrt = leaves(token_batch(4, DT), (PREV,))
    lp, mask, teacher = td[PREV], td[MASK], td[TEACHER]
    per_seq = []
    for b in range(lp.shape[0]):
        d = [(teacher[b, t] - lp[b, t]) * (1 if direction == "reverse" else -1) for t in range(lp.shape[1]) if mask[b, t]]
        per_seq.append(sum((k3(x) for x in d), torch.zeros((), dtype=DT)) / (max(1, len(d)) if normalize else 1))
    per_seq = torch.stack(per_seq)
    ref = {"loss_distill": per_seq.mean() if reduction == "mean" else per_seq, "kl_to_teacher": per_seq.detach().mean()}
    out = distillation_loss(td, kl_direction=direction, normalize_by_seq_length=normalize, reduction=reduction)
    compare(dict(out.items()), ref, wrt)


def _nested(ragged):
    entries = {k: (ragged.get(k) if k == "advantage" else
                   torch.nested.as_nested_tensor(ragged.get(k, as_list=True), layout=torch.jagged))
               for k in ragged.keys(True, True)}
    return TensorDict(entries, batch_size=ragged.batch_size)


@pytest.mark.parametrize("fn, kwargs", [(grpo_loss, dict(kl_to_ref_coeff=0.1, kl_to_inference_coeff=0.1)),
                                        (cispo_loss, dict(aggregation="prompt_mean")), (distillation_loss, {}),
                                        (sft_loss, dict(loss_function="minor_sft"))])
def test_ragged_and_nested_inputs_equal_padded(fn, kwargs):
    dense, ragged = token_batch(5, DT), token_batch(5, DT, ragged=True)
    want = fn(dense, **kwargs)
    for td in (ragged, _nested(ragged)):
        for key, value in fn(td, **kwargs).items():
            torch.testing.assert_close(value, want[key], rtol=1e-12, atol=1e-12)


def test_sft_kl_averages_over_the_real_tokens_of_ragged_sequences():
    ragged = token_batch(6, DT, ragged=True)
    lengths = [len(x) for x in ragged.get(PREV, as_list=True)]
    out = sft_loss(ragged, kl_to_ref_coeff=0.1)
    want = sft_reference(token_batch(6, DT), coeff=0.1, n_tokens=sum(lengths))
    torch.testing.assert_close(out["kl_to_ref"], want["kl_to_ref"], rtol=1e-12, atol=1e-12)


def test_vmap_over_groups_with_the_group_relative_advantage():
    groups, n = 3, 4
    tds = [token_batch(10 + i, DT, batch=n) for i in range(groups)]
    rewards = torch.randn(groups, n, generator=torch.Generator().manual_seed(0), dtype=DT)
    eps = torch.tensor([0.1, 0.2, 0.3], dtype=DT)

    def loss(td, r, e):
        td = td.exclude("advantage").set("advantage", group_relative_advantage(r).reshape(n, 1, 1))
        return grpo_loss(td, clip_epsilon=e)["loss_objective"]

    batched = torch.vmap(loss)(torch.stack(tds), rewards, eps)
    torch.testing.assert_close(batched, torch.stack([loss(tds[i], rewards[i], eps[i]) for i in range(groups)]))


# ----------------------------------------------------------------------------- bad input


def test_bad_input_names_the_loss_and_the_entry():
    td = token_batch(7)
    cases = [
        (grpo_loss, {REF: torch.zeros(4, 8)}, dict(kl_to_ref_coeff=0.1), EntryShapeError, REF),
        (grpo_loss, {MASK: torch.ones(4, 1, dtype=torch.bool)}, {}, EntryShapeError, MASK),
        (grpo_loss, {MASK: torch.ones(4, 7, 1, dtype=torch.bool)}, {}, EntryShapeError, MASK),
        (grpo_loss, {MASK: td[MASK].float()}, {}, EntryDtypeError, MASK),
        (grpo_loss, {"advantage": torch.zeros(4, 7)}, {}, EntryShapeError, "advantage"),
        (grpo_loss, {"advantage": torch.zeros(4, 3, 1)}, {}, EntryShapeError, "advantage"),
        (grpo_loss, {PREV: td[PREV].clone().requires_grad_()}, {}, EntryRequiresGradError, PREV),
        (cispo_loss, {"entropy": torch.zeros(4, 6)}, {}, EntryShapeError, "entropy"),
        (sft_loss, {REF: torch.zeros(4, 6)}, dict(kl_to_ref_coeff=0.1), EntryShapeError, REF),
        (distillation_loss, {TEACHER: torch.zeros(4, 7, 2)}, {}, EntryShapeError, TEACHER),
    ]
    for fn, change, kwargs, error, key in cases:
        bad = td.clone()
        for k, v in change.items():
            bad.set(k, v)
        with pytest.raises(error) as info:
            fn(bad, **kwargs)
        assert info.value.loss == fn.__name__ and repr(key) in str(info.value), str(info.value)
    with pytest.raises(MissingEntryError, match="entropy_bonus=False"):
        grpo_loss(td.exclude("entropy"))


def test_ragged_sequences_of_mismatched_lengths_are_refused():
    ragged = token_batch(8, ragged=True)
    parts = list(ragged.unbind(0))
    parts[1] = parts[1].set(MASK, parts[1][MASK][1:])
    with pytest.raises(EntryShapeError, match=r"sequence lengths \[7, 5, 5, 7\] differ"):
        grpo_loss(lazy_stack(parts))
    dense_ref = ragged.get(REF, as_padded_tensor=True, padding_side="left")
    mixed = lazy_stack([p.exclude(REF) for p in ragged.unbind(0)])
    for p, r in zip(mixed.tensordicts, dense_ref):
        p.set(REF, r)  # every sequence's reference padded to the longest: no longer aligned
    with pytest.raises(EntryShapeError, match="sequence lengths"):
        sft_loss(mixed, kl_to_ref_coeff=0.1)


def test_ragged_input_is_left_untouched():
    ragged = token_batch(9, ragged=True)
    before = {k: [x.clone() for x in ragged.get(k, as_list=True)] for k in ragged.keys(True, True)}
    grpo_loss(ragged, kl_to_ref_coeff=0.1)
    sft_loss(ragged, kl_to_ref_coeff=0.1)
    for k, values in before.items():
        assert all(torch.equal(a, b) for a, b in zip(ragged.get(k, as_list=True), values)), k


# ----------------------------------------------------------------------------- modules


def run_both(torchrl_cls, our_cls, pad_output, data, ours_kwargs=None, **kwargs):
    ref, mine = module_pair(torchrl_cls, our_cls, pad_output, **kwargs)
    mine = mine if not ours_kwargs else module_pair(torchrl_cls, our_cls, pad_output, **kwargs, **ours_kwargs)[1]
    return ref, mine, ref(data.copy()), mine(data.copy())


def assert_parity(ref, mine, out_ref, out_mine):
    assert type(out_ref) is type(out_mine)
    for key in out_ref.keys():
        torch.testing.assert_close(out_mine.get(key), out_ref.get(key), rtol=1e-5, atol=1e-6)
    loss_sum(out_ref).backward()
    loss_sum(out_mine).backward()
    for (name, p), (_, q) in zip(ref.named_parameters(), mine.named_parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("pad_output", [True, False])
def test_grpo_module_skips_non_finite_behaviour_log_probs(pad_output):
    data = collected_batch(pad_output, nan_pad=True)
    assert_parity(*run_both(trl.GRPOLoss, modules.GRPOLoss, pad_output, data, masking_strategy="generic",
                            kl_mask_threshold=0.05, kl_to_inference_coeff=0.1))


@pytest.mark.parametrize("group", [2, 4])
def test_grpo_module_with_group_relative_advantages(group):
    data = collected_batch(False, n=8)
    rewards = torch.randn(8 // group, group, generator=torch.Generator().manual_seed(group))
    data["advantage"] = group_relative_advantage(rewards).reshape(8, 1, 1)
    assert_parity(*run_both(trl.DAPO, modules.DAPO, False, data, clip_epsilon=(0.2, 0.28), kl_to_ref_coeff=0.05))


@pytest.mark.parametrize("cls", ["SFTLoss", "DistillationLoss"])
def test_masks_from_the_chat_template(cls):
    data = collected_batch(False).exclude("masks")
    kwargs = {"kl_to_ref_coeff": 0.1} if cls == "SFTLoss" else {}
    assert_parity(*run_both(getattr(trl, cls), getattr(modules, cls), False, data, **kwargs))


def test_advantage_padding_side_left_aligns_per_token_advantages():
    data = collected_batch(False, per_token_advantage=True)
    ref, mine, out_ref, out_mine = run_both(trl.GRPOLoss, modules.GRPOLoss, False, data,
                                            ours_kwargs={"advantage_padding_side": "left"})
    aligned = data.copy()
    aligned["advantage"] = data.get("advantage", as_padded_tensor=True, padding_side="left")
    out_aligned = ref(aligned)
    torch.testing.assert_close(out_mine.loss_objective, out_aligned.loss_objective, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out_ref.loss_objective, out_aligned.loss_objective)  # TorchRL's default shifts them


def test_cispo_paper_gradient_keeps_clipped_tokens():
    data = collected_batch(True, noise=1.0)
    ref, mine, out_ref, out_mine = run_both(trl.CISPOLoss, modules.CISPOLoss, True, data,
                                            ours_kwargs={"detach_clipped_weight": True}, clip_epsilon=0.05)
    torch.testing.assert_close(out_mine.loss_objective, out_ref.loss_objective, rtol=1e-5, atol=1e-6)
    assert out_ref.clip_fraction > 0
    g_ref = torch.autograd.grad(out_ref.loss_objective, list(ref.parameters()), allow_unused=True)
    g_mine = torch.autograd.grad(out_mine.loss_objective, list(mine.parameters()), allow_unused=True)
    assert any(a is not None and not torch.allclose(a, b) for a, b in zip(g_ref, g_mine))


def test_module_errors_name_the_module_and_the_entry():
    _, grpo = module_pair(trl.GRPOLoss, modules.GRPOLoss, True)
    with pytest.raises(MissingEntryError, match="GRPOLoss: 'advantage'"):
        grpo(collected_batch(True).exclude("advantage"))
    _, sft = module_pair(trl.SFTLoss, modules.SFTLoss, False, kl_to_ref_coeff=0.1)
    with pytest.raises(MissingEntryError, match="SFTLoss"):
        sft(collected_batch(False, ref=False))
    _, distill = module_pair(trl.DistillationLoss, modules.DistillationLoss, False)
    data = collected_batch(False)
    masks = data.get(MASK, as_list=True)
    masks[0] = torch.zeros_like(masks[0])
    for sub, m in zip(data.tensordicts, masks):
        sub.set(MASK, m)
    with pytest.raises(EmptyMaskError, match=r"DistillationLoss: .*sequence\(s\) \[0\]"):
        distill(data)
