"""Where a method's perturbation delta enters the model: a forward hook on the embedding layer."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

from trainables.spec import INJECTION_POINTS


class EmbeddingInjector:
    """Adds a perturbation delta to the embedding representation through a forward hook.

    `word_embeddings`: the output of the word-embedding lookup (before position embeddings and
    LayerNorm). `embeddings_output`: the embedding layer's output (after LayerNorm and dropout).
    Works for any Hugging Face encoder that exposes `get_input_embeddings()` / `base_model.embeddings`.
    """

    def __init__(self, model: nn.Module, injection: str = "word_embeddings"):
        if injection not in INJECTION_POINTS:
            raise ValueError(f"unknown injection point {injection!r}; allowed: {', '.join(INJECTION_POINTS)}")
        module, self.hidden_size = self._target(model, injection)
        self._delta: torch.Tensor | None = None
        self._detach = False
        self._handle = module.register_forward_hook(self._add_delta)

    @staticmethod
    def _target(model: nn.Module, injection: str) -> tuple[nn.Module, int]:
        if injection == "word_embeddings":
            module = model.get_input_embeddings()
            return module, module.embedding_dim
        embeddings = getattr(model.base_model, "embeddings", None)
        if embeddings is None:
            raise ValueError(f"{type(model).__name__} has no base_model.embeddings; use injection=word_embeddings")
        return embeddings, model.config.hidden_size

    def _add_delta(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        if self._delta is None:
            return None
        base = output.detach() if self._detach else output
        return base + self._delta.to(output.dtype)

    @contextlib.contextmanager
    def perturb(self, delta: torch.Tensor | None, detach: bool = False) -> Iterator[None]:
        """Add delta within the block; `detach`: no gradient reaches the layers below through this pass."""
        self._delta, self._detach = delta, detach
        try:
            yield
        finally:
            self._delta, self._detach = None, False

    def remove(self) -> None:
        self._handle.remove()
