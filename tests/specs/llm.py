"""Specs of the LLM post-training losses: ``grpo_loss``, ``dapo_loss``, ``cispo_loss``,
``sft_loss``, ``distillation_loss`` (TorchRL's ``torchrl.objectives.llm`` classes).

Functional layouts are padded ``[B, L]`` token batches (ragged inputs are covered by
``tests/losses/test_llm.py``); module cases run TorchRL's class and ours on two copies of
one tiny causal LM behind TorchRL's ``TransformersWrapper``, on padded and ragged data.
"""

from __future__ import annotations

import functools

from torchrl.objectives import llm as torchrl_llm

from torchrl_functional import modules
from torchrl_functional.functional import (
    DistillationKeys,
    GRPOKeys,
    SFTKeys,
    cispo_loss,
    dapo_loss,
    distillation_loss,
    grpo_loss,
    sft_loss,
)

from ._llm import collected_batch, module_pair, token_batch
from ._spec import Hyper, Layout, LossSpec, ModuleCase

NAN = float("nan")
POLICY_GRADS = ("cur_log_prob", "entropy")
POLICY_OUTPUTS = ("loss_objective", "loss_entropy", "loss_kl_to_ref", "loss_kl_to_inference")
#: 8 sequences x 512 tokens, the registry benchmark's size for the LLM module rows
LLM_BENCH = (8, 512)


def _batch(**kwargs):
    return functools.partial(token_batch, **kwargs)


def policy_layouts(clip=None) -> tuple[Layout, ...]:
    clip = {} if clip is None else {"clip_epsilon": clip}
    return (
        Layout("token_mean", _batch(), {**clip}, POLICY_GRADS, compile=True),
        Layout("prompt_mean_kl", _batch(per_token_advantage=True),
               {**clip, "aggregation": "prompt_mean", "kl_to_ref_coeff": 0.1, "kl_to_inference_coeff": 0.05},
               POLICY_GRADS),
        Layout("none_kl_mask", _batch(), {**clip, "aggregation": "none", "kl_mask_threshold": 0.05},
               POLICY_GRADS),
        Layout("no_entropy", _batch(per_token_advantage=True, length=5),
               {**clip, "entropy_bonus": False, "reduction": "none"}, ("cur_log_prob",)),
    )


POLICY_HYPERS = (
    Hyper("clip_epsilon", 0.2, invalid=(-0.1, 1.0, NAN)),
    Hyper("entropy_coeff", 0.05, layouts=("token_mean", "prompt_mean_kl", "none_kl_mask")),
    Hyper("kl_to_ref_coeff", 0.1, invalid=(-0.5, NAN)),
    Hyper("kl_to_inference_coeff", 0.05, invalid=(-1.0,)),
    Hyper("kl_mask_threshold", 0.3, invalid=(-1.0, NAN), tensor=False),
    Hyper("aggregation", 0.0, invalid=("sequence_mean",), tensor=False),
)


# ----------------------------------------------------------------------------- module cases


def llm_case(case_id: str, torchrl_cls: type, our_cls: type, *, pad_output: bool, data: dict | None = None,
             functional_call: bool = False, n: int = 4, length: int | None = None, **kwargs) -> ModuleCase:
    """TorchRL's class and ours on one tiny LM; ``data`` options of :func:`collected_batch`."""
    data = data or {}

    def build():
        return module_pair(torchrl_cls, our_cls, pad_output, **kwargs)

    def make(seed: int):
        # three messages of w words and 3 template tokens each: about ``length`` tokens
        w = None if length is None else max(1, length // 3 - 3)
        words = {} if w is None else {"min_words": w, "max_words": w}
        return collected_batch(pad_output, n=n, seed=seed, **data, **words)

    def rebatch(batch: tuple[int, ...]) -> ModuleCase:
        sequences, tokens = (batch + (None,))[:2]
        return llm_case(case_id, torchrl_cls, our_cls, pad_output=pad_output, data=data, n=sequences,
                        length=tokens, **kwargs)

    layout = "padded" if pad_output else "ragged"
    return ModuleCase(f"{layout}-{case_id}", build, make, functional_call=functional_call, rebatch=rebatch)


def policy_cases(torchrl_cls: type, our_cls: type, clip=0.2):
    def cases():
        return [
            llm_case("token_mean", torchrl_cls, our_cls, pad_output=True, functional_call=True, clip_epsilon=clip),
            llm_case("kl-prompt_mean", torchrl_cls, our_cls, pad_output=False, clip_epsilon=clip,
                     kl_to_ref_coeff=0.1, kl_to_inference_coeff=0.05, aggregation="prompt_mean"),
            llm_case("rlhf-none", torchrl_cls, our_cls, pad_output=False, clip_epsilon=clip,
                     masking_strategy="rlhf", aggregation="none"),
            llm_case("generic-kl_mask", torchrl_cls, our_cls, pad_output=True, clip_epsilon=clip, masking_strategy="generic", kl_mask_threshold=0.05),
            llm_case("token-advantage-no_entropy", torchrl_cls, our_cls, pad_output=True,
                     data={"per_token_advantage": True}, clip_epsilon=clip, entropy_bonus=False),
            llm_case("token-advantage", torchrl_cls, our_cls, pad_output=False,
                     data={"per_token_advantage": True}, clip_epsilon=clip, kl_to_ref_coeff=0.2),
        ]

    return cases


def sft_cases():
    t, o = torchrl_llm.SFTLoss, modules.SFTLoss
    return [
        llm_case("sft", t, o, pad_output=True, functional_call=True),
        llm_case("sft-kl-sum", t, o, pad_output=False, kl_to_ref_coeff=0.1, reduction="sum"),
        llm_case("sft-unnormalized-none", t, o, pad_output=False, normalize_by_seq_length=False, reduction="none"),
        llm_case("minor_sft", t, o, pad_output=False, loss_function="minor_sft", beta=0.5),
        llm_case("minor_sft-kl", t, o, pad_output=True, loss_function="minor_sft", kl_to_ref_coeff=0.1),
    ]


def distillation_cases():
    t, o = torchrl_llm.DistillationLoss, modules.DistillationLoss
    return [
        llm_case("reverse", t, o, pad_output=True, functional_call=True),
        llm_case("forward-sum", t, o, pad_output=False, kl_direction="forward", reduction="sum"),
        llm_case("all_tokens-unnormalized", t, o, pad_output=False, assistant_only=False,
                 normalize_by_seq_length=False, reduction="none"),
    ]


SPECS = [
    LossSpec(
        "grpo_loss", grpo_loss, GRPOKeys, policy_layouts(), POLICY_HYPERS,
        modules.GRPOLoss, torchrl_llm.GRPOLoss, policy_cases(torchrl_llm.GRPOLoss, modules.GRPOLoss),
        grad_outputs=POLICY_OUTPUTS, bench_batch=LLM_BENCH,
    ),
    LossSpec(
        "dapo_loss", dapo_loss, GRPOKeys, policy_layouts(), POLICY_HYPERS,
        modules.DAPO, torchrl_llm.DAPO, policy_cases(torchrl_llm.DAPO, modules.DAPO, clip=(0.2, 0.28)),
        grad_outputs=POLICY_OUTPUTS, bench_batch=LLM_BENCH,
    ),
    LossSpec(
        "cispo_loss", cispo_loss, GRPOKeys, policy_layouts(clip=(0.1, 0.3)) + (
            Layout("paper_gradient", _batch(), {"detach_clipped_weight": True}, POLICY_GRADS),
        ),
        POLICY_HYPERS,
        modules.CISPOLoss, torchrl_llm.CISPOLoss, policy_cases(torchrl_llm.CISPOLoss, modules.CISPOLoss),
        grad_outputs=POLICY_OUTPUTS, bench_batch=LLM_BENCH,
    ),
    LossSpec(
        "sft_loss", sft_loss, SFTKeys,
        (
            Layout("sft", _batch(), {}, (("log_probs", "full"),), compile=True),
            Layout("sft_kl_sum", _batch(), {"kl_to_ref_coeff": 0.1, "reduction": "sum",
                                            "normalize_by_seq_length": False}, (("log_probs", "full"),)),
            Layout("minor_sft", _batch(), {"loss_function": "minor_sft", "reduction": "none"},
                   (("log_probs", "full"),)),
        ),
        (
            Hyper("kl_to_ref_coeff", 0.1, invalid=(-1.0, NAN), layouts=("sft", "sft_kl_sum")),
            Hyper("beta", 0.5, invalid=(0.0, -1.0, NAN), layouts=("minor_sft",)),
            Hyper("loss_function", 0.0, invalid=("dpo",), tensor=False),
        ),
        modules.SFTLoss, torchrl_llm.SFTLoss, sft_cases,
        grad_outputs=("loss_sft", "loss_kl_to_ref"), bench_batch=LLM_BENCH,
    ),
    LossSpec(
        "distillation_loss", distillation_loss, DistillationKeys,
        (
            Layout("reverse", _batch(), {}, (("log_probs", "full"),), compile=True),
            Layout("forward_sum", _batch(), {"kl_direction": "forward", "reduction": "sum",
                                             "normalize_by_seq_length": False}, (("log_probs", "full"),)),
            Layout("none", _batch(), {"reduction": "none"}, (("log_probs", "full"),)),
        ),
        (Hyper("kl_direction", 0.0, invalid=("sideways",), tensor=False),),
        modules.DistillationLoss, torchrl_llm.DistillationLoss, distillation_cases,
        grad_outputs=("loss_distill",), bench_batch=LLM_BENCH,
    ),
]
