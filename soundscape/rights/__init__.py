"""Rights: license terms, clearance policies, and the tamper-evident ledger of what went into every output."""
