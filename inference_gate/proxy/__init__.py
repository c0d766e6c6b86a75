"""The one wiring place: the `Gate`, which puts the core's rules, the store and the I/O shell together.

The recorder, the exchanges in flight, the prepared replies, faults and the ledger are the gate's parts.
"""
