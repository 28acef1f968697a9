"""SQLite's in-process writer lock: held by one thread at a time, a preferred waiter first."""

from __future__ import annotations

import threading
import time

from gateway.adapters.persistence.sqlite import _WriterLock, prefer_this_thread


def test_a_preferred_thread_goes_before_threads_that_waited_longer() -> None:
    """While one thread holds the lock, a bulk writer starts waiting, then the urgent lane:
    on release the urgent lane has it first, then the bulk writer."""
    lock = _WriterLock()
    order: list[str] = []
    assert lock.acquire(timeout=1)

    def writer(name: str, preferred: bool) -> None:
        if preferred:
            prefer_this_thread()
        assert lock.acquire(timeout=10)
        order.append(name)
        lock.release()

    bulk = threading.Thread(target=writer, args=("bulk", False))
    bulk.start()
    time.sleep(0.1)
    urgent = threading.Thread(target=writer, args=("urgent", True))
    urgent.start()
    time.sleep(0.1)
    assert order == []  # both wait while the lock is held
    lock.release()
    bulk.join(5)
    urgent.join(5)
    assert order == ["urgent", "bulk"]


def test_reentrant_and_timed() -> None:
    """The holder may take it again; another thread gives up after its timeout."""
    lock = _WriterLock()
    assert lock.acquire(timeout=1) and lock.acquire(timeout=1)
    got: list[bool] = []
    other = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.1)))
    other.start()
    other.join(5)
    assert got == [False]
    lock.release()
    lock.release()
    again = threading.Thread(target=lambda: got.append(lock.acquire(timeout=1)))
    again.start()
    again.join(5)
    assert got == [False, True]
