"""Episode batches: a cue list in, every cue rendered, delivered, ledgered and resumable.

:mod:`soundscape.batch.cuelist` reads and validates cue lists; :mod:`soundscape.batch.runner`
plans the outputs, renders them in a local process pool or on Ray, and records them from the
driver, the single ledger writer.
"""
