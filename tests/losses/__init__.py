"""Loss-specific tests. The LLM tests build their models and tokenizer from configs: nothing
may come from a model hub (set before anything imports huggingface_hub)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
