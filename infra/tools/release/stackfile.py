"""Round-trip edits of a ``Pulumi.<stack>.yaml``: comments, key order and quoting survive.

Only the release fields are ever touched — ``image``, ``canary.weight``,
``canary.image`` and ``releaseId`` under the project namespace. Every edit is
validated with the same config model the Pulumi program uses
(:func:`infra.config.model.load_stack_file`) before the file is replaced, atomically,
so a refused change leaves the file byte-for-byte as it was.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import ScalarString

from infra.config.fields.canary_weight import effective_weight
from infra.config.model import CONFIG_NAMESPACE, load_stack_file
from infra.errors import ConfigError, ReleaseError, StackFileError

STACK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
KEY_IMAGE = f"{CONFIG_NAMESPACE}:image"
KEY_CANARY = f"{CONFIG_NAMESPACE}:canary"
KEY_RELEASE = f"{CONFIG_NAMESPACE}:releaseId"
# (mapping, sequence, offset) indents tried in turn: the first that reproduces the
# file byte-for-byte is used, so an edit never reformats lines it does not change.
_INDENTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4))


@dataclass(frozen=True)
class CanaryState:
    """The canary track as the stack file holds it."""

    weight: int
    image: str | None


@dataclass(frozen=True)
class ReleaseState:
    """The release fields of one stack file; ``None`` means the key is absent."""

    image: str | None
    canary: CanaryState | None
    release_id: str | None

    @property
    def canary_weight(self) -> int:
        """The canary weight deployed: 0 when no canary (or no canary image) is configured."""
        return effective_weight(self.canary.weight, self.canary.image) if self.canary else 0

    @property
    def canary_image(self) -> str | None:
        """Canary image, if any."""
        return self.canary.image if self.canary else None

    def to_json(self) -> dict[str, Any]:
        """The history-file form (absent keys are omitted, not null)."""
        out: dict[str, Any] = {}
        if self.image is not None:
            out["image"] = self.image
        if self.canary is not None:
            out["canary"] = {"weight": self.canary.weight, "image": self.canary.image}
        if self.release_id is not None:
            out["releaseId"] = self.release_id
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReleaseState:
        """Inverse of :meth:`to_json`."""
        canary = data.get("canary")
        return cls(
            image=data.get("image"),
            canary=CanaryState(int(canary["weight"]), canary.get("image")) if canary is not None else None,
            release_id=data.get("releaseId"),
        )


def _represent_null(representer: RoundTripRepresenter, _data: None) -> Any:
    # ruamel writes None as an empty value; the stack files spell it `null`.
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def _yaml(indent: tuple[int, int, int]) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=indent[0], sequence=indent[1], offset=indent[2])
    yaml.representer.add_representer(type(None), _represent_null)
    return yaml


def stack_path(root: Path, stack: str, flag: str = "--stack") -> Path:
    """``<root>/Pulumi.<stack>.yaml``, refusing names that are not stack names (under ``flag``'s name)."""
    if not STACK_NAME.fullmatch(stack):
        raise ReleaseError(f"{flag}: {stack!r} is not a stack name (lowercase letters, digits, '-', '_')")
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise ReleaseError(f"{flag}: no stack file {path.name} in {root}")
    return path


class StackFile:
    """One stack file, read once; :meth:`render` produces edited text without writing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text(encoding="utf-8")
        self._yaml = self._pick_yaml()

    def _pick_yaml(self) -> YAML:
        for indent in _INDENTS:
            yaml = _yaml(indent)
            if self._dump(yaml, self._load(yaml)) == self.text:
                return yaml
        raise ReleaseError(
            f"{self.path.name}: cannot edit without reformatting it (ruamel.yaml does not reproduce it "
            "byte-for-byte); use consistent 2-space indentation and `null` for empty values"
        )

    def _load(self, yaml: YAML) -> CommentedMap:
        try:
            doc = yaml.load(self.text)
        except YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise StackFileError(f"{self.path.name}{line}: not valid YAML: {problem}") from None
        if not isinstance(doc, CommentedMap) or not isinstance(doc.get("config"), CommentedMap):
            raise ReleaseError(f"{self.path.name}: expected a top-level `config:` mapping")
        return doc

    @staticmethod
    def _dump(yaml: YAML, doc: CommentedMap) -> str:
        buf = io.StringIO()
        yaml.dump(doc, buf)
        return buf.getvalue()

    @property
    def stack(self) -> str:
        """The stack name, from the file name."""
        return self.path.name[len("Pulumi.") : -len(".yaml")]

    def state(self) -> ReleaseState:
        """The release fields as the file holds them now."""
        config = self._load(self._yaml)["config"]
        canary = config.get(KEY_CANARY)
        canary_state = None
        if isinstance(canary, dict):
            canary_state = CanaryState(int(canary.get("weight", 0)), _str_or_none(canary.get("image")))
        return ReleaseState(
            image=_str_or_none(config.get(KEY_IMAGE)),
            canary=canary_state,
            release_id=_str_or_none(config.get(KEY_RELEASE)),
        )

    def render(self, state: ReleaseState) -> str:
        """The file's text with the release fields set to ``state``; nothing else changes."""
        doc = self._load(self._yaml)
        config = doc["config"]
        _put(config, KEY_IMAGE, state.image)
        if state.canary is None:
            config.pop(KEY_CANARY, None)
        else:
            canary = config.get(KEY_CANARY)
            if not isinstance(canary, CommentedMap):
                canary = CommentedMap()
                config[KEY_CANARY] = canary
            _put(canary, "weight", state.canary.weight)
            if state.canary.image is not None or "image" in canary:
                _put(canary, "image", state.canary.image, keep_null=True)
        _put(config, KEY_RELEASE, state.release_id)
        return self._dump(self._yaml, doc)

    def validate(self, text: str) -> None:
        """Validate ``text`` as this stack file with the program's config model.

        Raises :class:`~infra.errors.ConfigError` naming the real file.
        """
        with tempfile.TemporaryDirectory(prefix="release-validate-") as tmp:
            probe = Path(tmp) / self.path.name
            probe.write_text(text, encoding="utf-8")
            try:
                load_stack_file(probe)
            except ConfigError as exc:
                raise ConfigError(exc.problems, str(self.path)) from None

    def write(self, text: str) -> None:
        """Replace the file atomically (same directory, same mode)."""
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
            os.chmod(tmp, self.path.stat().st_mode & 0o777)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.text = text


def _put(mapping: CommentedMap, key: str, value: object, keep_null: bool = False) -> None:
    """Set or (for None) remove ``key``, keeping the old value's quoting style."""
    if value is None and not keep_null:
        mapping.pop(key, None)
        return
    old = mapping.get(key)
    if isinstance(value, str) and isinstance(old, ScalarString):
        value = type(old)(value)
    if old == value and type(old) is type(value):
        return
    mapping[key] = value


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
