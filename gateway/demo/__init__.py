"""Demo data: a realistic, deterministic month of the Phú Lương district treasury."""

from gateway.demo.month import DemoMonth, RevenueCollection, generate_month

__all__ = ["DemoMonth", "RevenueCollection", "generate_month"]
