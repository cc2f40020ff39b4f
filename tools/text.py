"""English text for calibrating and evaluating LLMs, shipped with every Python: the language reference.

`pydoc_data.topics.topics` (topic -> text, ~465 KB, 79 topics in 3.11) is split by topic: the
names sorted, every 4th (index % 4 == 0) is calibration, the rest evaluation. The reference repeats
passages across topics ('specialnames' holds 'customization', 'naming' is in 'execmodel'), so the
evaluation split also drops each paragraph (a block between blank lines) that occurs in the
calibration text: 5.7 KB of 342 KB in 3.11, after which no 64-token span of calibration text
occurs in the evaluation text (15 of 464 calibration windows did before). Each split's texts are
joined with blank lines, tokenized once and cut into non-overlapping windows. The text changes
between Python versions; `sha256(split)` says which text a number was measured on.
"""

from __future__ import annotations

import hashlib
from functools import cache

import torch

SPLITS = ("calibration", "evaluation")


def split_topics(split: str) -> list[str]:
    """The sorted topic names of `split`: calibration takes every 4th, evaluation the rest."""
    from pydoc_data.topics import topics

    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}' (splits: {', '.join(SPLITS)})")
    calibration = split == "calibration"
    return [name for i, name in enumerate(sorted(topics)) if (i % 4 == 0) == calibration]


@cache
def split_text(split: str) -> str:
    """The texts of `split`'s topics, in sorted order, joined with blank lines; evaluation's without
    the paragraphs the calibration text holds."""
    from pydoc_data.topics import topics

    texts = [topics[name] for name in split_topics(split)]
    if split == "evaluation":
        calibration = split_text("calibration")
        texts = ["\n\n".join(p for p in t.split("\n\n") if p.strip() not in calibration) for t in texts]
    return "\n\n".join(texts)


def sha256(split: str) -> str:
    """The sha256 of `split`'s text (UTF-8): equal digests, comparable numbers."""
    return hashlib.sha256(split_text(split).encode()).hexdigest()


def windows(tokenizer, split: str, tokens: int, count: int) -> list[torch.Tensor]:
    """The first `count` non-overlapping windows of `tokens` token ids of `split`, each int64 [1, tokens]."""
    ids = tokenizer(split_text(split), add_special_tokens=False)["input_ids"]
    have = len(ids) // tokens
    if count > have:
        raise ValueError(f"the {split} split has {len(ids)} tokens: {have} windows of {tokens}, not {count}; "
                         f"ask for fewer windows or shorter ones")
    return [torch.tensor(ids[i * tokens:(i + 1) * tokens], dtype=torch.int64)[None] for i in range(count)]
