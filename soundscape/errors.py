"""One exception hierarchy for soundscape; the CLI turns each into a one-line message.

Anything a user can get wrong (a bad key name, a missing folder, a tampered ledger) raises a
subclass of :class:`SoundscapeError` with a message that says what is wrong and, where it
helps, what to do next. Anything else is a bug and keeps its traceback.
"""


class SoundscapeError(Exception):
    """Base class: a problem the user can act on. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ParameterError(SoundscapeError):
    """A user-supplied value is malformed or out of range (key, duration, motif, preset...)."""

    exit_code = 2


class OutputError(SoundscapeError):
    """The output cannot be written (missing or read-only folder, file exists without --overwrite)."""

    exit_code = 2


class AudioError(SoundscapeError):
    """Audio that cannot be read or is not audio."""


class LicenseError(SoundscapeError):
    """A license expression or policy that cannot be parsed, or a license conflict."""

    exit_code = 2


class LedgerError(SoundscapeError):
    """The ledger cannot be opened, is not a ledger, or a record is missing."""


class TamperError(LedgerError):
    """The ledger failed verification; the message names the first bad record."""

    exit_code = 3


class ModelError(SoundscapeError):
    """A model that is unknown, unsafe to load, or not an audiocraft checkpoint."""


class TrainingStopped(SoundscapeError):
    """A training run stopped early on request (SIGTERM), its checkpoint saved: ``--resume``."""

    # EX_TEMPFAIL from BSD sysexits.h: a temporary failure, the user is invited to retry.
    exit_code = 75


class NotClearedError(SoundscapeError):
    """An output or model does not clear under the requested policy."""

    exit_code = 4


class NeedsReviewError(SoundscapeError):
    """An output or model clears only once named conditions are settled (NEEDS REVIEW)."""

    exit_code = 5


class ProofError(SoundscapeError, ValueError):
    """A proof or checkpoint that does not verify; the message says which part failed.

    Also a ValueError, as it was when :mod:`soundscape.rights.merkle` stood alone.
    """

    exit_code = 3


class CredentialError(SoundscapeError):
    """A signing certificate or key that cannot be used, or a file that cannot be signed."""


class MissingExtraError(SoundscapeError):
    """An optional part of soundscape (a pip extra: musicgen, ray) is not installed."""

    exit_code = 2


class DataMissingError(SoundscapeError):
    """Data soundscape ships with (license terms, policies, the sample library) is not there."""
