"""Offline LLM fixtures: a word-level tokenizer and a tiny causal LM built from configs (no
download), TorchRL's LLM wrapper around them, chat data, and the synthetic padded/ragged
inputs of the functional LLM losses."""

from __future__ import annotations

import copy
import functools
import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from a hub

import torch  # noqa: E402
from tensordict import TensorDict, lazy_stack  # noqa: E402

VOCAB = 64
WORDS = 40  # w0 .. w39
SPECIAL = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "system", "user", "assistant"]


@functools.lru_cache(maxsize=1)
def tokenizer():
    """A fast word-level tokenizer (whitespace split, chat special tokens): assistant masks work."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = SPECIAL + [f"w{i}" for i in range(WORDS)]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<|im_end|>", unk_token="<unk>",
        additional_special_tokens=["<|im_start|>"],
    )


def tiny_model(seed: int = 0):
    """A one-layer Llama (hidden 16, vocabulary 64) in eval mode, random weights."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.manual_seed(seed)
    config = LlamaConfig(
        num_hidden_layers=1, hidden_size=16, intermediate_size=32, num_attention_heads=2, num_key_value_heads=2,
        vocab_size=VOCAB, max_position_embeddings=1024, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )
    return LlamaForCausalLM(config).eval()


def wrapper(model, pad_output: bool):
    """TorchRL's ``TransformersWrapper`` scoring chat histories (no generation)."""
    from torchrl.modules.llm import TransformersWrapper

    return TransformersWrapper(
        model, tokenizer=tokenizer(), input_mode="history", generate=False, pad_output=pad_output,
        chat_template_name="qwen",
    )


def chats(n: int, seed: int, min_words: int = 1, max_words: int = 6) -> list:
    g = torch.Generator().manual_seed(seed)

    def text():
        k = int(torch.randint(min_words, max_words + 1, (1,), generator=g))
        return " ".join(f"w{int(i)}" for i in torch.randint(WORDS, (k,), generator=g))

    return [
        [{"role": "system", "content": text()}, {"role": "user", "content": text()},
         {"role": "assistant", "content": text()}]
        for _ in range(n)
    ]


def history_td(n: int, seed: int, **kwargs):
    """A lazy stack of ``n`` chats (TorchRL's LLM data layout), ``("history", "full"/"prompt"/"response")``."""
    from torchrl.data.llm import History
    from torchrl.modules.llm.policies.common import ChatHistory

    history = History.from_chats(chats(n, seed, **kwargs))
    td = TensorDict(
        history=ChatHistory(full=history, prompt=history[..., :-1], response=history[..., -1:]), batch_size=(n,)
    )
    return lazy_stack(list(td.unbind(0)))


def scored(policy, td):
    """The wrapper's output on ``td`` (tokens, masks, log-probs), without gradients."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return policy(td.copy())


def collected_batch(
    pad_output: bool,
    n: int = 4,
    seed: int = 0,
    *,
    per_token_advantage: bool = False,
    ref: bool = True,
    nan_pad: bool = False,
    noise: float = 0.3,
    model_seed: int = 1,
    **chat_kwargs,
):
    """A GRPO batch as a collector writes it: tokens, masks and behaviour log-probs from a
    (slightly different) behaviour model, an advantage, reference log-probs, ``("next", ...)``."""
    g = torch.Generator().manual_seed(seed)
    behaviour = wrapper(tiny_model(model_seed), pad_output)
    data = scored(behaviour, history_td(n, seed, **chat_kwargs))

    def perturb(x):
        return x + noise * torch.randn(x.shape, generator=g)

    def per_sequence(fn, key):
        values = data.get(key, as_list=True)
        return [fn(v) for v in values]

    log_probs = per_sequence(perturb, ("log_probs", "full"))
    if nan_pad:  # TorchRL's alignment pads: non-finite behaviour log-probs
        for lp in log_probs:
            lp[0] = float("nan")
    lengths = [v.shape[-1] for v in log_probs]
    out = []
    for i, sub in enumerate(data.unbind(0)):
        sub = sub.clone()
        sub["log_probs", "full"] = log_probs[i]
        adv_shape = (lengths[i], 1) if per_token_advantage else (1, 1)
        sub["advantage"] = torch.randn(adv_shape, generator=g)
        if ref:
            sub["next", "ref_log_probs", "full"] = perturb(log_probs[i].nan_to_num(0.0))
            sub["next", "teacher_log_probs", "full"] = perturb(log_probs[i].nan_to_num(0.0))
        out.append(sub)
    return lazy_stack(out)


def module_pair(torchrl_cls, our_cls, pad_output: bool, model_seed: int = 2, **kwargs):
    """TorchRL's class and ours on two identical tiny models (separate gradients)."""
    model = tiny_model(model_seed)
    pair = []
    for cls in (torchrl_cls, our_cls):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pair.append(cls(wrapper(copy.deepcopy(model), pad_output), **kwargs))
    return tuple(pair)


# ----------------------------------------------------------------------------- synthetic inputs


def token_batch(
    seed: int,
    dtype: torch.dtype = torch.float32,
    *,
    batch: int = 4,
    length: int = 7,
    per_token_advantage: bool = False,
    ragged: bool = False,
    nan_pad: bool = False,
    drift: float = 0.4,
) -> TensorDict:
    """Synthetic inputs of the GRPO-family, SFT and distillation functions: ``[B, L]`` token
    log-probs (left-padded sequences of different lengths, ratios spread around 1 so that
    some tokens are clipped), masks, advantages, entropies, reference and teacher log-probs.

    ``ragged=True`` returns the same data as a lazy stack of unpadded sequences.
    """
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

    lengths = [length - (i % 3) for i in range(batch)]
    present = torch.arange(length) >= (length - torch.tensor(lengths)).unsqueeze(-1)
    cur = -randn(batch, length).abs() - 0.5
    mask = present & (torch.rand(batch, length, generator=g) > 0.25)
    mask[:, -1] = True
    entries = {
        "cur_log_prob": cur,
        ("log_probs", "full"): cur + drift * randn(batch, length),
        "advantage": randn(batch, length, 1) if per_token_advantage else randn(batch, 1, 1),
        "entropy": randn(batch, length).abs() + 0.5,
        ("next", "ref_log_probs", "full"): cur + 0.3 * randn(batch, length),
        ("next", "teacher_log_probs", "full"): cur + 0.5 * randn(batch, length),
    }
    for key, value in entries.items():  # padding positions hold 0, as TorchRL pads
        if value.shape[1] == length:
            entries[key] = torch.where(present.reshape(present.shape + (1,) * (value.ndim - 2)), value, 0.0)
    if nan_pad:  # the first position of every row: a non-finite behaviour log-prob (alignment pad)
        entries[("log_probs", "full")][:, 0] = float("nan")
    entries[("masks", "all_assistant_mask")] = mask
    td = TensorDict(entries, batch_size=[batch])
    if not ragged:
        return td
    sequences = []
    for i, n in enumerate(lengths):
        row = td[i]
        seq = TensorDict({}, batch_size=[])
        for key, value in row.items(True, True):
            seq.set(key, value if key == "advantage" and not per_token_advantage else value[length - n:])
        sequences.append(seq)
    return lazy_stack(sequences)
