"""KBNN bank gateway: payment orders in, signed ISO 20022 out, bank reports in, postings out."""

__version__ = "0.1.0"
