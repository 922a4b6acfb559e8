"""Tests for r1jax.rewards.format."""

from __future__ import annotations

import time

import pytest

from r1jax.rewards.format import format_reward


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<think>reasoning</think><answer>42</answer>", 1.0),
        ("<think>a\nb\n</think>\n<answer>\n\\boxed{4}\n</answer>", 1.0),
        ("  <think>x</think>  <answer>y</answer>\n", 1.0),  # surrounding whitespace allowed
        ("<think></think><answer></answer>", 1.0),  # empty contents allowed
        ("<think>x</think>", 0.0),  # no answer
        ("<answer>y</answer>", 0.0),  # no think
        ("<answer>y</answer><think>x</think>", 0.0),  # wrong order
        ("<think>x</think> text <answer>y</answer>", 0.0),  # text between
        ("preamble <think>x</think><answer>y</answer>", 0.0),  # text before
        ("<think>x</think><answer>y</answer> trailing", 0.0),  # text after
        ("<think>x</think><think>z</think><answer>y</answer>", 0.0),  # two thinks
        ("<think>x</think><answer>y</answer><answer>z</answer>", 0.0),  # two answers
        ("<think>x <think> y</think><answer>y</answer>", 0.0),  # nested tag
        ("<think>x</think><answer>y <answer></answer>", 0.0),
        ("<think>x<answer>y</think></answer>", 0.0),  # interleaved
        ("<THINK>x</THINK><ANSWER>y</ANSWER>", 0.0),  # case-sensitive
        ("<think>x</think><answer>y", 0.0),  # truncated
        ("", 0.0),
    ],
)
def test_format_reward(completion, expected):
    assert format_reward(completion) == expected


def test_non_string():
    assert format_reward(None) == 0.0  # type: ignore[arg-type]
    assert format_reward(b"<think></think><answer></answer>") == 0.0  # type: ignore[arg-type]


def test_large_inputs_fast():
    t0 = time.monotonic()
    ok = "<think>" + "a" * 500_000 + "</think><answer>" + "b" * 500_000 + "</answer>"
    assert format_reward(ok) == 1.0
    assert format_reward("<think>" * 100_000) == 0.0
    assert format_reward("<think>" + " " * 500_000 + "</think>" + " " * 500_000 + "x") == 0.0
    assert time.monotonic() - t0 < 2.0
