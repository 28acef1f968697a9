"""The gateway's domain: orders, money, states and postings. No I/O is imported here."""
