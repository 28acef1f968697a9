"""Benchmarks that run the real gateway, bank simulator and broker and print figures
(scripts/bench_e2e, scripts/bench_relay). Figures only: nothing here asserts a speed."""
