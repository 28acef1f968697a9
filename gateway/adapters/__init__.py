"""Adapters at the edges: the database, RabbitMQ, keys."""
