"""The workspace: where the ledger, keys and registered models live.

Precedence for every setting: command-line flag > environment variable > ``soundscape.toml``
in the workspace > default. The workspace is ``SOUNDSCAPE_HOME`` (or ``--home``), by default a
per-user data folder.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from soundscape.errors import DataMissingError, SoundscapeError

HOME_ENV = "SOUNDSCAPE_HOME"
SETTINGS_FILE = "soundscape.toml"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _data_folder(name: str) -> Path:
    """Where the data folder ``name`` (samples, licenses, examples) is.

    A wheel carries it inside the package, as ``soundscape/data/<name>`` (pyproject.toml's
    ``force-include``), found with importlib.resources; a checkout keeps it at the top of the
    repository. A folder found in neither place is caught by :func:`require_data` when used.
    """
    from importlib.resources import files

    packaged = Path(str(files("soundscape") / "data" / name))
    return packaged if packaged.is_dir() else PROJECT_ROOT / name


SAMPLES_DIR = _data_folder("samples")
LICENSES_DIR = _data_folder("licenses")
EXAMPLES_DIR = _data_folder("examples")
DOCS_DIR = _data_folder("docs")


def require_data(folder: Path, what: str) -> Path:
    """``folder`` if it exists; otherwise a loud error, never a silently empty result."""
    if not Path(folder).is_dir():
        raise DataMissingError(f"soundscape's {what} ({folder}) is missing: this installation is "
                               f"incomplete; reinstall soundscape (a wheel carries it as soundscape/data/)")
    return Path(folder)


def default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("soundscape", appauthor=False))


@dataclass(frozen=True)
class Workspace:
    """A soundscape workspace folder and the settings read from it."""

    home: Path
    settings: dict

    @property
    def ledger_url(self) -> str:
        """SQLAlchemy URL of the ledger: ``ledger_url`` in settings, else SQLite in the home."""
        env = os.environ.get("SOUNDSCAPE_LEDGER_URL")
        if env:
            return env
        url = self.settings.get("ledger_url")
        if url is not None and not isinstance(url, str):
            raise SoundscapeError(f"{self.home / SETTINGS_FILE}: ledger_url must be a quoted URL "
                                  "such as \"sqlite:///path/to/ledger.sqlite\"")
        return url or f"sqlite:///{self.home / 'ledger.sqlite'}"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def witness_dirs(self) -> tuple[Path, ...]:
        """Folders that keep the ledger's latest signed checkpoint besides ``keys/``: the
        ``witness_dir`` setting (env ``SOUNDSCAPE_WITNESS_DIR``), relative to the workspace."""
        value = self.setting("witness_dir")
        if value is None or value == "":
            return ()
        if not isinstance(value, str):
            raise SoundscapeError(f"{self.home / SETTINGS_FILE}: witness_dir must be a quoted "
                                  "folder path such as \"/mnt/team/ledger-witness\"")
        return (self.home / Path(value).expanduser(),)

    @property
    def report_templates(self) -> Path | None:
        """A studio's folder of HTML cue-sheet templates (``report_templates`` setting, env
        ``SOUNDSCAPE_REPORT_TEMPLATES``), relative to the workspace; None for the packaged ones."""
        value = self.setting("report_templates")
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise SoundscapeError(f"{self.home / SETTINGS_FILE}: report_templates must be a quoted "
                                  "folder path such as \"/srv/studio/cuesheet-templates\"")
        return self.home / Path(value).expanduser()

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    def setting(self, name: str, default=None):
        """A setting by name: env ``SOUNDSCAPE_<NAME>`` > soundscape.toml > default."""
        env = os.environ.get(f"SOUNDSCAPE_{name.upper()}")
        if env is not None:
            return env
        return self.settings.get(name, default)


def open_workspace(home: str | Path | None = None) -> Workspace:
    """Open (creating when missing) the workspace at ``home``, ``$SOUNDSCAPE_HOME`` or the default."""
    root = Path(home or os.environ.get(HOME_ENV) or default_home()).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SoundscapeError(f"cannot create workspace {root}: {exc.strerror}") from None
    settings: dict = {}
    path = root / SETTINGS_FILE
    if path.exists():
        try:
            settings = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SoundscapeError(f"{path}: not valid TOML ({exc})") from None
        except OSError as exc:
            raise SoundscapeError(f"cannot read the settings file {path}: "
                                  f"{exc.strerror or exc}") from None
    return Workspace(home=root, settings=settings)
