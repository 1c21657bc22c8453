"""One kind of registry for the kit's named records: methods, tasks and model families.

    >>> from tutorlib.registry import Registry
    >>> colours = Registry("colour", {"red": "my_colours", "blue": "my_colours"})
    >>> colours.names()                         # the table's order, whatever the order of registration
    ['red', 'blue']

A registry is built from a table, ``name -> the module that registers it``. That table is the one
place a new record is declared, and it fixes two things:

* **the order**: records are listed in the table's order, whatever order modules happen to be
  imported in;
* **what loads when**: asking for a name imports only the module that registers it, and the names
  are known without importing anything (the command line refuses an unknown name at once).

A record is any object with a ``name``. Its module calls :meth:`Registry.register` once, when imported.
Other spellings a learner may type ("summarize") are a second table, ``aliases``, also read without
importing anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """A name no record of the registry has; the message lists the names there are."""


class Registry(Generic[T]):
    """Named records of one kind (``kind``: "method", "task", ...), declared in ``modules``.

    Args:
        kind: what a record is, for messages ("Unknown method 'lora'; choose from: ...").
        modules: name -> the module that registers the record of that name, in listing order.
        aliases: another spelling (lower case) -> the name it stands for.
    """

    def __init__(self, kind: str, modules: Mapping[str, str], aliases: Mapping[str, str] | None = None):
        self.kind = kind
        self.modules = dict(modules)
        self.aliases = {spelling.lower(): name for spelling, name in (aliases or {}).items()}
        self.aliases.update({name.lower(): name for name in self.modules})  # any case
        self._records: dict[str, T] = {}

    def register(self, record: T) -> T:
        """Add ``record`` (its module calls this once, when imported); returns it.

        Raises:
            ValueError: its name is not declared in the table, or another record already has it.
        """
        name = record.name
        if name not in self.modules:
            raise ValueError(f"The {self.kind} {name!r} is not declared: add {name!r}: '<its module>' to the "
                             f"registry's table of {self.kind}s (declared: {', '.join(self.modules)}).")
        if self._records.get(name, record) is not record:
            raise ValueError(f"A {self.kind} named {name!r} is already registered; choose another name.")
        self._records[name] = record
        return record

    def names(self) -> list[str]:
        """Every declared name, in the table's order (nothing is imported)."""
        return list(self.modules)

    def find(self, name: str) -> T | None:
        """The record called ``name`` (or an alias, any case), or None; imports only that record's module."""
        wanted = str(name).strip()
        if wanted not in self.modules:
            wanted = self.aliases.get(wanted.lower(), "")
        return self._load(wanted) if wanted in self.modules else None

    def get(self, name: str) -> T:
        """The record called ``name`` (or an alias); an :class:`UnknownNameError` listing the names."""
        record = self.find(name)
        if record is None:
            raise UnknownNameError(f"Unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}.")
        return record

    def all(self) -> list[T]:
        """Every record, in the table's order (each module imported once)."""
        return [self._load(name) for name in self.modules]

    def _load(self, name: str) -> T:
        if name not in self._records:
            importlib.import_module(self.modules[name])
        if name not in self._records:
            raise ImportError(f"{self.modules[name]} was declared to register the {self.kind} {name!r} and did not.")
        return self._records[name]

    # A registry reads like the mapping name -> record.
    def __iter__(self) -> Iterator[str]:
        return iter(self.modules)

    def __contains__(self, name: object) -> bool:
        return name in self.modules

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __len__(self) -> int:
        return len(self.modules)

    def values(self) -> list[T]:
        return self.all()

    def items(self) -> list[tuple[str, T]]:
        return [(record.name, record) for record in self.all()]
