"""Whether a camt.054 or camt.053 entry agrees with its own transaction details.

An entry states an amount, a currency and a direction; its TxDtls state theirs. A booked entry of
`540000 USD` whose detail says `540000 VND`, or of `1 VND` whose detail says `540000 VND`, must
settle nothing: the detail is not what the bank booked. No I/O; the rules say why in one line.
"""

from __future__ import annotations

from decimal import Decimal

from gateway.iso20022.model import Entry


def entry_problem(entry: Entry) -> str | None:
    """Why an entry disagrees with its details (currency, direction, total), or None."""
    reference = entry.account_servicer_ref or entry.entry_ref or "?"
    for index, detail in enumerate(entry.details, start=1):
        if detail.currency != entry.currency:
            return (
                f"entry {reference} is {entry.amount} {entry.currency} but its detail {index}"
                f" is in {detail.currency}"
            )
        if detail.credit_debit is not None and detail.credit_debit != entry.credit_debit:
            return (
                f"entry {reference} is a {entry.credit_debit} but its detail {index} is a"
                f" {detail.credit_debit}"
            )
    if entry.details:
        total = sum((detail.amount for detail in entry.details), Decimal(0))
        if total != entry.amount:
            return (
                f"entry {reference} is {entry.amount} {entry.currency} but its"
                f" {len(entry.details)} detail(s) add up to {total} {entry.currency}"
            )
    return None
