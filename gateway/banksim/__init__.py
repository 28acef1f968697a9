"""The bank simulator: a partner bank's side of the link, used by the demo and the tests."""
