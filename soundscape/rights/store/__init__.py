"""The ledger's storage: append-only rows, signed checkpoints, full verification (see database.py)."""

from soundscape.rights.store.database import Batch, Store
from soundscape.rights.store.keys import load_or_create_key, public_pem
from soundscape.rights.store.schema import (LOOKUP_KEYS, Checkpoint, StoredRecord, lookup_columns,
                                            utc_now)
from soundscape.rights.store.verify import VerifyReport

__all__ = ["LOOKUP_KEYS", "Batch", "Checkpoint", "Store", "StoredRecord", "VerifyReport",
           "load_or_create_key", "lookup_columns", "public_pem", "utc_now"]
