"""Imitation-learning losses: values against independent float64 computations, TorchRL's
padding/masking rules, and bad input. Parity with TorchRL's classes (values and every parameter
gradient) runs in tests/registry/test_parity.py over the module cases of tests/specs/imitation.py."""

from __future__ import annotations

import pytest
import torch

from tests.specs import _imitation as I
from tests.specs._inputs import diag_normal
from torchrl_functional.errors import (
    EntryDtypeError,
    EntryRequiresGradError,
    EntryShapeError,
    HyperparameterError,
    MaskShapeError,
    MissingEntryError,
)
from torchrl_functional.functional import (
    BCKeys,
    act_loss,
    bc_loss,
    ddpm_add_noise,
    diffusion_bc_loss,
    dt_loss,
    online_dt_loss,
    sample_diffusion_inputs,
)

# ----------------------------------------------------------------------------- BC


def test_bc_regression_matches_a_loop():
    td = I.bc_td(0, torch.float64, pad=True)
    pred, expert, pad = td["action_pred"], td["action"], td["is_pad"]
    total, count = 0.0, 0
    for i in range(pred.shape[0]):
        if pad[i]:
            continue
        for j in range(pred.shape[1]):
            d = abs(float(pred[i, j] - expert[i, j]))
            total += 0.5 * d * d if d < 1 else d - 0.5
            count += 1
    got = bc_loss(td, loss_function="smooth_l1", keys=BCKeys(pad_mask="is_pad"))["loss_bc"]
    assert got.item() == pytest.approx(total / count, rel=1e-12)
    # reduction="none" with a padding mask: the flat unpadded elements (TorchRL's convention)
    flat = bc_loss(td, loss_function="l1", reduction="none", keys=BCKeys(pad_mask="is_pad"))["loss_bc"]
    torch.testing.assert_close(flat, (pred - expert).abs()[~pad].reshape(-1))


def test_bc_nll_and_cross_entropy_by_hand():
    td = I.bc_td(1, torch.float64, variant="nll")
    p = td["actor_output"]
    want = -torch.distributions.Normal(p["loc"], p["scale"]).log_prob(td["action"]).sum(-1).mean()
    torch.testing.assert_close(bc_loss(td, dist_class=diag_normal)["loss_bc"], want)
    td = I.bc_td(1, torch.float64, variant="cross_entropy")
    logits, a = td["action_pred"], td["action"][..., 0]
    want = torch.stack([torch.logsumexp(logits[i], 0) - logits[i, a[i]] for i in range(len(a))]).sum()
    torch.testing.assert_close(bc_loss(td, loss_function="cross_entropy", reduction="sum")["loss_bc"], want)


def test_bc_validity_mask_keeps_shape_and_mean_counts_valid_rows():
    td = I.bc_td(2, torch.float64, batch=(2, 3))
    td["collector", "mask"] = torch.tensor([[True, False, True], [True, True, False]])
    out = bc_loss(td, loss_function="l2", reduction="none")["loss_bc"]
    assert out.shape == (2, 3, I.ACT) and (out[~td["collector", "mask"]] == 0).all()
    mean = bc_loss(td, loss_function="l2")["loss_bc"]
    sq = (td["action_pred"] - td["action"]) ** 2
    torch.testing.assert_close(mean, sq[td["collector", "mask"]].sum() / (4 * I.ACT))
    torch.testing.assert_close(bc_loss(td, loss_function="l2", loss_mask_key=None)["loss_bc"], sq.mean())


def test_bc_callable_loss_function_is_reduced():
    td = I.bc_td(3, torch.float64)
    out = bc_loss(td, loss_function=lambda p, e: (p - e).abs().sum(-1), reduction="sum")["loss_bc"]
    torch.testing.assert_close(out, (td["action_pred"] - td["action"]).abs().sum())


def test_bc_bad_input():
    td = I.bc_td(0)
    with pytest.raises(MissingEntryError, match="action_pred"):
        bc_loss(td.exclude("action_pred"), loss_function="l2")
    with pytest.raises(EntryShapeError, match="action_pred"):
        bc_loss(td.set("action_pred", td["action_pred"][..., :2]), loss_function="l2")
    with pytest.raises(EntryRequiresGradError, match="'action'"):
        bc_loss(I.bc_td(0).set("action", torch.ones(6, I.ACT, requires_grad=True)), loss_function="l1")
    with pytest.raises(EntryDtypeError, match="'action'"):
        bc_loss(I.bc_td(0, variant="cross_entropy").set("action", torch.zeros(6, 1)), loss_function="cross_entropy")
    with pytest.raises(HyperparameterError, match="loss_function"):
        bc_loss(I.bc_td(0), loss_function="huber")
    with pytest.raises(HyperparameterError, match="dist_class"):
        bc_loss(I.bc_td(0, variant="nll"))
    # a padding mask finer than a log-prob: TorchRL's RuntimeError, as a library error
    nll = I.bc_td(0, variant="nll").set("is_pad", torch.zeros(6, I.ACT, dtype=torch.bool))
    with pytest.raises(MaskShapeError, match="more dimensions") as info:
        bc_loss(nll, dist_class=diag_normal, keys=BCKeys(pad_mask="is_pad"))
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(TypeError, match="pad_mask"):
        BCKeys(pad_mask=3)


def test_bc_vmap_over_tasks_with_padding_equals_loop():
    tds = [I.bc_td(s, pad=True) for s in range(3)]
    stacked = torch.stack(tds)
    keys = BCKeys(pad_mask="is_pad")
    got = torch.vmap(lambda td: bc_loss(td, loss_function="l1", keys=keys)["loss_bc"])(stacked)
    want = torch.stack([bc_loss(td, loss_function="l1", keys=keys)["loss_bc"] for td in tds])
    torch.testing.assert_close(got, want)


def test_bc_module_pad_mask_parity_none():
    """Ours and TorchRL's ``BCLoss`` with ``reduction="none"`` and a padding mask (flat output)."""
    from torchrl.objectives import BCLoss as TorchRLBCLoss

    from torchrl_functional.modules import BCLoss

    ref, mine = I.pair(TorchRLBCLoss, BCLoss, I.det_actor, loss_function="l1", reduction="none")
    for loss in (ref, mine):
        loss.set_keys(pad_mask="is_pad")
    data = I.obs_action_data(pad=True)(0)
    a, b = ref(data.clone())["loss_bc"], mine(data.clone())["loss_bc"]
    torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
    a.sum().backward()
    b.sum().backward()
    for (n, p), (_, q) in zip(ref.named_parameters(), mine.named_parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-6, atol=1e-6, msg=n)


# ----------------------------------------------------------------------------- DT, online DT


def test_dt_by_hand_and_target_detached():
    td = I.dt_td(0, torch.float64, mask=True)
    pred = td["action_pred"].clone().requires_grad_(True)
    target = td["action"].clone().requires_grad_(True)
    out = dt_loss(td.set("action_pred", pred).set("action", target), loss_function="smooth_l1")["loss"]
    d = (pred - target).abs()
    want = torch.where(d < 1, 0.5 * d**2, d - 0.5)[td["collector", "mask"]].sum() / (4 * I.ACT)
    torch.testing.assert_close(out, want)
    out.backward()
    assert target.grad is None and pred.grad.abs().sum() > 0


def test_online_dt_by_hand_with_a_generator():
    td = I.odt_td(0, torch.float64)
    loc, scale, a = td["actor_output", "loc"], td["actor_output", "scale"], td["action"]
    log_alpha = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    out = online_dt_loss(td, diag_normal, log_alpha=log_alpha, target_entropy=-2.0, samples_mc_entropy=4,
                         min_log_alpha=-1.0, max_log_alpha=0.1, generator=torch.Generator().manual_seed(5))
    eps = torch.randn((4, *a.shape), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    normal = torch.distributions.Normal(loc, scale)
    entropy = -normal.log_prob(loc + scale * eps).sum(-1).mean(0)
    alpha = torch.tensor(0.1, dtype=torch.float64).exp()
    torch.testing.assert_close(out["loss_log_likelihood"], -normal.log_prob(a).sum(-1).mean())
    torch.testing.assert_close(out["loss_entropy"], -(alpha * entropy).mean())
    torch.testing.assert_close(out["loss_alpha"], (0.3 * torch.ones((), dtype=torch.float64)).exp() * (entropy + 2).mean())
    torch.testing.assert_close(out["entropy"], entropy.mean())
    torch.testing.assert_close(out["alpha"], alpha)
    # the temperature's gradient comes from loss_alpha only
    assert not (out["loss_entropy"] + out["loss_log_likelihood"]).requires_grad
    g, = torch.autograd.grad(out["loss_alpha"], [log_alpha])
    torch.testing.assert_close(g, out["loss_alpha"])


def test_online_dt_reduction_none_scalar_modes():
    td = I.odt_td(1)
    out = online_dt_loss(td, diag_normal, reduction="none")
    assert set(out.keys()) == {"loss_log_likelihood", "loss_entropy", "loss_alpha"}
    assert out.batch_size == td.batch_size and out["loss_alpha"].shape == td.batch_size
    out = online_dt_loss(td, diag_normal, reduction="none", scalar_output_mode="non_tensor")
    assert float(torch.as_tensor(out["alpha"])) == 1.0 and "entropy" in out.keys()


def test_online_dt_vmap_over_tasks_equals_loop():
    tds = [I.odt_td(s, torch.float64) for s in range(3)]
    log_alpha = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)

    def run(td, la):
        torch.manual_seed(0)
        out = online_dt_loss(td, diag_normal, log_alpha=la, samples_mc_entropy=2)
        return out["loss_log_likelihood"] + out["loss_entropy"] + out["loss_alpha"]

    got = torch.vmap(run, randomness="same")(torch.stack(tds), log_alpha)
    want = torch.stack([run(td, la) for td, la in zip(tds, log_alpha)])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    grads = torch.vmap(torch.func.grad(run, argnums=1), randomness="same")(torch.stack(tds), log_alpha)
    loop = torch.stack([torch.func.grad(run, argnums=1)(td, la) for td, la in zip(tds, log_alpha)])
    torch.testing.assert_close(grads, loop, rtol=1e-12, atol=1e-12)


def test_dt_bad_input():
    with pytest.raises(EntryShapeError, match="action_pred"):
        dt_loss(I.dt_td(0).set("action_pred", torch.zeros(2, 3, 2)))
    with pytest.raises(HyperparameterError, match="loss_function"):
        dt_loss(I.dt_td(0), loss_function="l3")
    td = I.odt_td(0)
    with pytest.raises(EntryRequiresGradError, match="'action'"):
        online_dt_loss(td.set("action", td["action"].clone().requires_grad_()), diag_normal)
    with pytest.raises(HyperparameterError, match="samples_mc_entropy"):
        online_dt_loss(I.odt_td(0), diag_normal, samples_mc_entropy=0)
    with pytest.raises(HyperparameterError, match="target_entropy"):
        online_dt_loss(I.odt_td(0), diag_normal, target_entropy="learned")
    with pytest.raises(MissingEntryError, match="actor_output"):
        online_dt_loss(I.odt_td(0).exclude("actor_output"), diag_normal)


# ----------------------------------------------------------------------------- ACT, diffusion BC


def test_act_by_hand():
    td = I.act_td(0, torch.float64)
    chunk, pred, mu, lv = td["vla_action", "chunk"], td["action_pred"], td["mu"], td["log_var"]
    recon = torch.stack([(pred[i] - chunk[i]).abs().mean() for i in range(6)])
    kl = torch.stack([sum(0.5 * (mu[i, z] ** 2 + lv[i, z].exp() - 1 - lv[i, z]) for z in range(I.LATENT))
                      for i in range(6)])
    out = act_loss(td, kl_weight=0.7, reduction="none")
    torch.testing.assert_close(out["loss_act"], recon + 0.7 * kl)
    torch.testing.assert_close(out["loss_kl"], kl)
    out = act_loss(td, kl_weight=torch.tensor(0.7, dtype=torch.float64, requires_grad=True))
    assert not out["loss_reconstruction"].requires_grad and not out["loss_kl"].requires_grad
    torch.testing.assert_close(out["loss_act"], recon.mean() + 0.7 * kl.mean())


def test_act_bad_input():
    with pytest.raises(EntryShapeError, match="'mu'"):
        act_loss(I.act_td(0).set("mu", torch.zeros(6, 1, 2)))
    with pytest.raises(EntryShapeError, match="log_var"):
        act_loss(I.act_td(0).set("log_var", torch.zeros(6, 3)))
    with pytest.raises(HyperparameterError, match="kl_weight"):
        act_loss(I.act_td(0), kl_weight=-1.0)


def test_ddpm_kernels_by_hand_and_generator():
    action = torch.randn(5, 2, dtype=torch.float64)
    t1, n1 = sample_diffusion_inputs(action, 7, generator=torch.Generator().manual_seed(2))
    t2, n2 = sample_diffusion_inputs(action, 7, generator=torch.Generator().manual_seed(2))
    assert torch.equal(t1, t2) and torch.equal(n1, n2) and t1.shape == (5,) and n1.dtype == torch.float64
    assert int(t1.min()) >= 0 and int(t1.max()) < 7
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 7, dtype=torch.float64), 0)
    noisy = ddpm_add_noise(action, t1, n1, abar)
    for i in range(5):
        a = abar[t1[i]]
        torch.testing.assert_close(noisy[i], a.sqrt() * action[i] + (1 - a).sqrt() * n1[i])
    # the global-RNG path draws what TorchRL's DiffusionBCLoss draws (randint, then randn_like)
    torch.manual_seed(4)
    t, n = sample_diffusion_inputs(action, 7)
    torch.manual_seed(4)
    assert torch.equal(t, torch.randint(0, 7, (5,))) and torch.equal(n, torch.randn_like(action))


def test_diffusion_bc_by_hand_and_bad_input():
    td = I.diffusion_td(0, torch.float64)
    want = ((td["noise_pred"] - td["noise"]) ** 2).sum()
    torch.testing.assert_close(diffusion_bc_loss(td, reduction="sum")["loss_diffusion_bc"], want)
    with pytest.raises(EntryRequiresGradError, match="noise"):
        diffusion_bc_loss(td.clone().set("noise", td["noise"].clone().requires_grad_()))
    with pytest.raises(EntryShapeError, match="noise_pred"):
        diffusion_bc_loss(td.clone().set("noise_pred", td["noise_pred"][..., :1]))
