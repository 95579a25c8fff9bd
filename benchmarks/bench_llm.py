"""LLM losses: TorchRL's class, our drop-in class and our function, forward + backward of the
loss alone, at 8 sequences x 512 tokens (padded, and ragged: a lazy stack of sequences of
512 down to ~400 tokens).

"The loss alone": the policy is a stub standing in for TorchRL's LLM wrapper, holding the
logits (GRPO) or the token log-probs (SFT, distillation) as a parameter, so no model runs;
both classes read the same data through it. The function row is what a custom loop runs on
the same tensors (GRPO: ``token_log_probs`` + ``token_entropy`` + ``grpo_loss`` from the
logits; SFT/distillation: the function on the log-probs). Interleaved medians, threads set
explicitly; ``ours / TorchRL`` < 1 means ours is faster.
"""

from __future__ import annotations

import argparse
import os
import warnings

import torch
from tensordict import TensorDict, lazy_stack
from torch import nn

from benchmarks.common import format_table, interleaved_medians

MASK, ATTENTION = ("masks", "all_assistant_mask"), ("masks", "all_attention_mask")


class StubPolicy(nn.Module):
    """TorchRL's LLM-wrapper interface over fixed outputs: ``get_dist`` (masked categorical
    over the logits) for GRPO, ``forward`` (the token log-probs) for SFT/distillation."""

    def __init__(self, logits: torch.Tensor, lengths: list[int] | None) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits)
        self.log_probs = nn.Parameter(logits.log_softmax(-1)[..., 0].detach().clone())
        self.lengths = lengths
        self.tokenizer = None

    def get_dist(self, td, **kwargs):
        from torchrl.modules.distributions import LLMMaskedCategorical

        mask = td.get(MASK, as_padded_tensor=True, padding_side="left", padding_value=False)
        return LLMMaskedCategorical(self.logits, mask)

    _get_sft_dist = _get_rlhf_dist = _get_generic_dist = get_dist

    def forward(self, td):
        if self.lengths is None:
            return TensorDict({("log_probs", "full"): self.log_probs}, batch_size=self.log_probs.shape[:1])
        length = self.log_probs.shape[-1]
        return lazy_stack([
            TensorDict({("log_probs", "full"): row[length - n:]}, batch_size=[]) for row, n in zip(self.log_probs, self.lengths)
        ])


def make_data(sequences: int, tokens: int, vocab: int, ragged: bool, seed: int = 0):
    """Collected data (tokens, masks, behaviour/reference/teacher log-probs, advantages) and
    the logits of the current policy, padded on the left as TorchRL pads."""
    g = torch.Generator().manual_seed(seed)
    lengths = [tokens - (i * tokens) // (5 * sequences) for i in range(sequences)] if ragged else [tokens] * sequences
    logits = torch.randn(sequences, tokens, vocab, generator=g)
    rows = []
    for n in lengths:
        assistant = torch.zeros(n, dtype=torch.bool)
        assistant[n // 4:] = True  # the response: the last three quarters
        lp = torch.randn(n, generator=g) - 3.0
        rows.append(TensorDict({
            ("history", "full"): torch.zeros(()),  # read (not used) by TorchRL's SFT/distillation
            ("tokens", "full"): torch.randint(vocab, (n,), generator=g),
            ("log_probs", "full"): lp,
            MASK: assistant,
            ATTENTION: torch.ones(n, dtype=torch.bool),
            "advantage": torch.randn(1, 1, generator=g),
            ("next", "ref_log_probs", "full"): lp + 0.1 * torch.randn(n, generator=g),
            ("next", "teacher_log_probs", "full"): lp + 0.1 * torch.randn(n, generator=g),
        }, batch_size=[]))
    # padded: equal lengths, as TorchRL's wrappers write them with pad_output=True
    return lazy_stack(rows), logits, (lengths if ragged else None)


def _loss_step(loss, data):
    def run():
        out = loss(data.copy())
        total = sum(v.sum() for k, v in out.items() if k.startswith("loss") and v is not None)
        total.backward()
        for p in loss.parameters():
            p.grad = None

    return run


def _check_same_numbers(ref, mine, data) -> None:
    """The rows time the same computation: both classes give the same outputs."""
    out_ref, out_mine = ref(data.copy()), mine(data.copy())
    for key in out_ref.keys():
        torch.testing.assert_close(out_mine.get(key), out_ref.get(key), rtol=1e-5, atol=1e-5)


def _function_step(kind: str, data, logits: torch.Tensor):
    from torchrl_functional.functional.llm import distillation_loss, grpo_loss, sft_loss, token_entropy, token_log_probs

    leaf = nn.Parameter(logits.clone())
    mask = data.get(MASK, as_padded_tensor=True, padding_side="left", padding_value=False)
    tokens = data.get(("tokens", "full"), as_padded_tensor=True, padding_side="left", padding_value=-100)
    base = TensorDict({
        ("log_probs", "full"): data.get(("log_probs", "full"), as_padded_tensor=True, padding_side="left"),
        MASK: mask,
        "advantage": data.get("advantage"),
        ("next", "ref_log_probs", "full"): data.get(("next", "ref_log_probs", "full"), as_padded_tensor=True,
                                                    padding_side="left"),
        ("next", "teacher_log_probs", "full"): data.get(("next", "teacher_log_probs", "full"),
                                                        as_padded_tensor=True, padding_side="left"),
    }, batch_size=mask.shape[:1])
    stub_log_probs = nn.Parameter(logits.log_softmax(-1)[..., 0].detach().clone())

    def run():
        td = base.copy()
        if kind == "grpo":
            td["cur_log_prob"] = token_log_probs(leaf, tokens, mask)
            td["entropy"] = token_entropy(leaf, mask)
            out = grpo_loss(td, kl_to_ref_coeff=0.1)
        else:
            td["log_probs", "full"] = stub_log_probs
            out = sft_loss(td, kl_to_ref_coeff=0.1) if kind == "sft" else distillation_loss(td)
        sum(v.sum() for k, v in out.items() if k.startswith("loss")).backward()
        leaf.grad = stub_log_probs.grad = None

    return run


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--sequences", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=256, help="vocabulary of the stub's logits (GRPO)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("RL_WARNINGS", "False")
    from torchrl.objectives import llm as torchrl_llm

    from torchrl_functional.modules import llm as ours

    sequences, tokens, vocab = (2, 16, 32) if args.smoke else (args.sequences, args.tokens, args.vocab)
    classes = {
        "grpo": (torchrl_llm.GRPOLoss, ours.GRPOLoss, {"kl_to_ref_coeff": 0.1}),
        "sft": (torchrl_llm.SFTLoss, ours.SFTLoss, {"kl_to_ref_coeff": 0.1, "tokenizer": object()}),
        "distillation": (torchrl_llm.DistillationLoss, ours.DistillationLoss, {}),
    }
    rows = []
    for kind, (torchrl_cls, our_cls, kwargs) in classes.items():
        for ragged in (False, True):
            data, logits, lengths = make_data(sequences, tokens, vocab, ragged)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = torchrl_cls(StubPolicy(logits, lengths), **kwargs)
                mine = our_cls(StubPolicy(logits, lengths), **kwargs)
            _check_same_numbers(ref, mine, data)
            times = interleaved_medians(
                {"torchrl": _loss_step(ref, data), "ours": _loss_step(mine, data),
                 "function": _function_step(kind, data, logits)},
                repeats=3 if args.smoke else args.repeats, inner=1 if args.smoke else 3, warmup=1 if args.smoke else 3,
            )
            rows.append({
                "loss": torchrl_cls.__name__, "layout": "ragged" if ragged else "padded",
                "batch": f"{sequences}x{tokens}", "torchrl_ms": times["torchrl"] * 1e3, "ours_ms": times["ours"] * 1e3,
                "function_ms": times["function"] * 1e3, "ratio": times["ours"] / times["torchrl"],
                "function_ratio": times["function"] / times["torchrl"],
            })
    print(format_table(
        ["loss", "layout", "batch", "TorchRL (ms)", "ours (ms)", "ours / TorchRL", "function (ms)", "function / TorchRL"],
        [[r["loss"], r["layout"], r["batch"], r["torchrl_ms"], r["ours_ms"], r["ratio"], r["function_ms"],
          r["function_ratio"]] for r in rows],
    ))
    return rows


if __name__ == "__main__":
    main()
