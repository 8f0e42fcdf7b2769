"""Baseline: plain fine-tuning on English (the paper's mBERT row)."""

from __future__ import annotations

from trainables.methods.base import Method, MethodDescriptor, MethodOptions


class Baseline(Method):
    pass


class BaselineOptions(MethodOptions):
    pass


METHOD = MethodDescriptor(name="baseline", display="Baseline", paper_model="mBERT", order=0,
                          options=BaselineOptions, build=lambda options: Baseline())
