"""One name → thing registry for every registry in dlapps (methods, attacks, saliency methods,
backbones, domains, GAN models, ...).

    METHODS = Registry("method")

    @METHODS.register("dann")
    class DANN(Method): ...

    METHODS["dann"]      # the class; an unknown name raises UnknownNameError with
                         # "did you mean" and the list of valid names
    METHODS.names()      # in registration order

A registry maps names to anything (classes, functions, specs). ``fallback(name)`` lets a
registry resolve composed names (``dann+self-train``) before it gives up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from dlapps.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names (str) → things (T), with one error for an unknown name."""

    def __init__(self, kind: str, *, extra_names: tuple[str, ...] = (),
                 fallback: Callable[[str], T | None] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self.extra_names = extra_names  # shown in the error's list (e.g. "<method>+self-train")
        self.fallback = fallback

    def register(self, name: str, thing: T | None = None):
        """``registry.register(name, thing)``, or ``@registry.register(name)`` as a decorator."""
        if thing is not None:
            self._add(name, thing)
            return thing

        def decorate(obj: T) -> T:
            self._add(name, obj)
            return obj

        return decorate

    def _add(self, name: str, thing: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = thing

    def __getitem__(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        if self.fallback is not None:
            found = self.fallback(name)
            if found is not None:
                return found
        raise UnknownNameError(self.kind, name, [*self._items, *self.extra_names])

    def get(self, name: str) -> T:
        return self[name]

    def check(self, name: str) -> str:
        """``name`` itself when it is registered (or resolvable), else UnknownNameError."""
        self[name]
        return name

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return list(self._items)

    def items(self):
        return self._items.items()

    def values(self):
        return self._items.values()
