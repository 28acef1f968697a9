"""Sub-commands of `gateway`, one module per area; gateway/cli.py registers them."""
