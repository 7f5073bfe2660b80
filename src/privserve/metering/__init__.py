"""Per-key rate limits, token quotas and the usage ledger: what a request may cost, checked
before its work starts, and what it did cost, written before its response completes."""
