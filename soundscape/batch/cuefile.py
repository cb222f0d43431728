"""Reading a cue list file (YAML or CSV) into raw fields, each with the line it was written on.

Nothing is validated here beyond the file's own syntax; :mod:`soundscape.batch.cuelist` judges
the fields. Problems are collected, not raised, so one pass reports them all.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

import yaml

from soundscape.batch.cuefields import CUE_FIELDS, PRODUCTION_FIELDS, Value


# A cue list of a whole season is a few thousand values; aliases (&a ... *a) that expand a small
# file into millions (the "billion laughs") are refused before anything is built from them.
MAX_EXPANDED_VALUES = 200_000
# A problem quotes what the file said, but never more than this (an expanded value could be huge).
MAX_MESSAGE_CHARS = 240


def shortened(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a cue list, located as precisely as the file allows."""

    file: str
    line: int | None
    cue: str | None
    field: str | None
    message: str
    allowed: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.cue is not None:
            parts.append(f"cue {self.cue}")
        if self.field:
            parts.append(self.field)
        text = ": ".join(parts) + f": {shortened(self.message)}"
        return text + (f" (allowed: {shortened(self.allowed)})" if self.allowed else "")


@dataclass
class RawCue:
    line: int | None
    fields: dict[str, Value] = field(default_factory=dict)


@dataclass
class RawList:
    production: dict[str, Value]
    production_line: int | None
    cues: list[RawCue]


class Collector:
    """Gathers problems for one file, in the order they are found."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []

    def add(self, line, cue, field_name, message, allowed=None) -> None:
        self.problems.append(Problem(self.file, line, cue, field_name, message, allowed))


def read_yaml(text: str, problems: Collector) -> RawList | None:
    """The raw production and cues of a YAML cue list (None when it cannot be read at all)."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problems.add(mark.line + 1 if mark else None, None, None,
                         f"not valid YAML: {getattr(exc, 'problem', None) or exc}")
            return None
        if root is None or not isinstance(root, yaml.MappingNode):
            problems.add(root.start_mark.line + 1 if root is not None else None, None, None,
                         "the file must be a mapping with 'production' and 'cues'")
            return None
        if expanded_size(root) > MAX_EXPANDED_VALUES:
            problems.add(None, None, None, f"the file expands to more than {MAX_EXPANDED_VALUES:,} "
                         f"values through YAML aliases (&name ... *name); write the values out")
            return None
        top = _mapping(loader, root, problems, None, allowed=("production", "cues"), where="top level")
        raw = RawList(production={}, production_line=None, cues=[])
        prod_node = top.get("production")
        if prod_node is None:
            problems.add(None, None, "production", "missing", "a 'production:' mapping")
        elif not isinstance(prod_node, yaml.MappingNode):
            problems.add(prod_node.start_mark.line + 1, None, "production", "must be a mapping of "
                         "production fields", ", ".join(PRODUCTION_FIELDS))
        else:
            raw.production_line = prod_node.start_mark.line + 1
            fields = _mapping(loader, prod_node, problems, None, allowed=None, where="production")
            raw.production = {k: _value(loader, v) for k, v in fields.items()}
        cues_node = top.get("cues")
        if cues_node is None:
            problems.add(None, None, "cues", "missing", "a 'cues:' list")
        elif not isinstance(cues_node, yaml.SequenceNode):
            problems.add(cues_node.start_mark.line + 1, None, "cues", "must be a list of cues")
        else:
            for item in cues_node.value:
                line = item.start_mark.line + 1
                if not isinstance(item, yaml.MappingNode):
                    problems.add(line, None, None, "a cue must be a mapping of cue fields",
                                 ", ".join(CUE_FIELDS))
                    continue
                cue_id = _peek_id(item)
                fields = _mapping(loader, item, problems, cue_id, allowed=None, where="cue")
                raw.cues.append(RawCue(line, {k: _value(loader, v) for k, v in fields.items()}))
        return raw
    finally:
        loader.dispose()


def expanded_size(root, *, limit: int = MAX_EXPANDED_VALUES) -> int:
    """How many values ``root`` holds once every alias is expanded (stops counting past ``limit``).

    The composer shares an aliased node rather than copying it, so sizes are memoised per node:
    counting costs one visit per distinct node, however far the aliases would expand. A node
    that contains itself counts as past the limit.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            return limit + 1
        on_path.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                break
        on_path.discard(key)
        sizes[key] = total
        return total

    return size(root)


def _peek_id(node) -> str | None:
    for key, value in node.value:
        if getattr(key, "value", None) == "id" and hasattr(value, "value") and isinstance(value.value, str):
            return value.value
    return None


def _mapping(loader, node, problems: Collector, cue_id, *, allowed, where: str) -> dict:
    """A mapping node's entries by key name, reporting non-text and duplicate keys."""
    out: dict = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            problems.add(line, cue_id, None, f"a key in the {where} is not a plain name")
            continue
        name = key_node.value
        if name in out:
            problems.add(line, cue_id, name, f"given twice in the same {where}", "each key once")
            continue
        if allowed is not None and name not in allowed:
            problems.add(line, cue_id, name, f"unknown key at the {where}", ", ".join(allowed))
            continue
        out[name] = value_node
    return out


def _value(loader, node) -> Value:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:null":
            return Value(None, None, line)
        try:
            return Value(loader.construct_object(node, deep=True), node.value, line)
        except (ValueError, yaml.YAMLError):
            # YAML's own reading failed (2027-02-30 as a timestamp): judge the text as typed.
            return Value(node.value, node.value, line)
    try:
        return Value(loader.construct_object(node, deep=True), None, line)
    except (ValueError, yaml.YAMLError):
        return Value([getattr(n, "value", None) for n in node.value]
                      if isinstance(node, yaml.SequenceNode) else {}, None, line)


# A header-block line "# key: value"; other comment lines are free text.
_HEADER_RE = re.compile(r"^#\s*([A-Za-z_]+)\s*:(.*)$")


def read_csv(text: str, problems: Collector) -> RawList | None:
    """One cue per row under a header row; ``# key: value`` lines before it give production fields."""
    lines = text.splitlines(keepends=True)
    raw = RawList(production={}, production_line=None, cues=[])
    index = 0
    while index < len(lines) and (lines[index].lstrip().startswith("#") or not lines[index].strip()):
        m = _HEADER_RE.match(lines[index].strip())
        if m:
            key, value = m.group(1), m.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1].strip()
            if key in raw.production:
                problems.add(index + 1, None, key, "given twice in the header block", "each key once")
            else:
                raw.production[key] = Value(value if value else None, value or None, index + 1)
                raw.production_line = raw.production_line or index + 1
        index += 1
    offset = index
    reader = csv.reader(io.StringIO("".join(lines[offset:])))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        problems.add(offset + 1, None, None, f"not valid CSV: {exc}")
        return None
    if header is None:
        problems.add(offset + 1 if lines else None, None, None, "no header row",
                     "a first row naming the cue columns: " + ", ".join(CUE_FIELDS))
        return raw
    columns = [h.strip() for h in header]
    header_line = offset + reader.line_num
    for i, name in enumerate(columns):
        if name in columns[:i]:
            problems.add(header_line, None, name, "column given twice", "each column once")
    last_line = reader.line_num
    try:
        for row in reader:
            start = offset + last_line + 1
            last_line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            cue = RawCue(start)
            for i, cell in enumerate(row):
                if i >= len(columns):
                    problems.add(start, None, None, f"row has {len(row)} cells but the header names "
                                 f"{len(columns)} columns")
                    break
                cell = cell.strip()
                if cell and columns[i] not in cue.fields:
                    cue.fields[columns[i]] = Value(cell, cell, start)
            raw.cues.append(cue)
    except csv.Error as exc:
        problems.add(offset + reader.line_num, None, None, f"not valid CSV: {exc}")
    return raw
