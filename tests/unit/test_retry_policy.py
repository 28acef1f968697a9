"""Retry delays of messages that met a transient fault."""

from __future__ import annotations

from gateway.adapters.rabbitmq import RetryPolicy


def test_the_delay_doubles_up_to_its_ceiling() -> None:
    """0.5, 1, 2, 4 ... seconds, never above max_delay."""
    policy = RetryPolicy(first_delay=0.5, max_delay=3.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
