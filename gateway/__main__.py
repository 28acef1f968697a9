"""`python -m gateway`: the same command line as `gateway` (how `gateway run` starts its
reports processes, with the interpreter it runs on)."""

from gateway.cli import main

main()
