"""Graph files: a model described in YAML, validated whole before any actor starts.

    rounds: 5
    observations:
      - name: obs
        data: {builtin: tutorial_digits}      # or {file: data.txt} (.txt, .npy, .csv),
                                              # or {shards: digits/digits-*.npy}: files
                                              # read by the actors, never by the driver
    modules:
      - name: vae
        type: vae                             # vae, gmm, mm, mlda, naming (a game
                                              # connected to classifiers, docs/naming.md),
                                              # or class: pkg.file:Class
        params: {latent_dim: 18, itr: 200, batch_size: 500}
        connect: [obs]
        place: {resources: {gpu_box: 1}}      # optional: Module.place() arguments
        shards: 1                             # optional: actors the elements are split over
      - name: gmm
        type: gmm
        params: {K: 10, category: {builtin: tutorial_labels}}
        connect: [vae]
    order: [vae, gmm]                         # update order per round (default: file order)
    recognize:                                # optional: recognition after learning
      data: {obs: {builtin: heldout_digits}}
      category: {gmm: {builtin: heldout_labels}}

File paths are relative to the graph file. Modules are numbered in file order, observations
first, as a script creating them in that order would number them.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

import runtime as srk
from launch import data
from runtime.errors import LocatedError, SerketError
from runtime.host import load_module_class

MODULE_TYPES = {
    "vae": "actors.vae:VAE",
    "gmm": "actors.gmm:GMM",
    "mm": "actors.mm:MarkovModel",
    "mlda": "actors.mlda:MLDA",
    "naming": "actors.naming:NamingGame",
}
_TOP_FIELDS = {"rounds", "observations", "modules", "order", "recognize"}
_MODULE_FIELDS = {"name", "type", "class", "params", "connect", "place", "shards"}
_PLACE_FIELDS = {"resources", "labels", "num_cpus", "num_gpus"}


class GraphError(LocatedError):
    """A graph file is invalid; `where` names the file and the field."""


@dataclass
class ModuleSpec:
    name: str
    cls: type[srk.Module]
    params: dict[str, Any]
    connect: list[str]
    place: dict[str, Any]


@dataclass
class Graph:
    path: Path
    rounds: int
    observations: dict[str, np.ndarray | str]  # an array, or a glob of shard files
    modules: list[ModuleSpec]
    order: list[str]
    recognize_data: dict[str, np.ndarray] = field(default_factory=dict)
    recognize_category: dict[str, np.ndarray] = field(default_factory=dict)
    recognize_passes: int = 1


class _Reader:
    """Checks one file's fields; every error names the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> GraphError:
        return GraphError(f"{self.path}: {where}" if where else str(self.path), problem)

    def mapping(self, value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a mapping, got {type(value).__name__}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(where, f"unknown field {unknown[0]!r}; fields: {sorted(allowed)}")
        return value

    def array(self, ref: Any, where: str, matrix: bool) -> np.ndarray | str:
        """{file: path} or {builtin: name} -> data (2-D matrix or 1-D values);
        {shards: folder or glob} -> that path (the actors read the files)."""
        ref = self.mapping(ref, where, {"file", "builtin", "shards"})
        if len(ref) != 1:
            raise self.fail(where, "give exactly one of 'file', 'builtin' or 'shards'")
        if "shards" in ref:
            return str(self.path.parent / str(ref["shards"]))
        try:
            if "builtin" in ref:
                values = data.builtin(str(ref["builtin"]))
                return data.validated_data(values, ref["builtin"]) if matrix else values
            file = self.path.parent / str(ref["file"])
            return data.load_matrix(file) if matrix else data.load_vector(file)
        except SerketError as exc:
            raise self.fail(where, str(exc)) from None


def _module_class(reader: _Reader, entry: dict[str, Any], where: str) -> type[srk.Module]:
    if ("type" in entry) == ("class" in entry):
        raise reader.fail(where, "give exactly one of 'type' (a built-in module) or 'class'")
    if "type" in entry:
        if entry["type"] not in MODULE_TYPES:
            raise reader.fail(
                f"{where}.type",
                f"unknown module type {entry['type']!r}; types: {sorted(MODULE_TYPES)} "
                "(or 'class: package.file:Class' for your own)",
            )
        path = MODULE_TYPES[entry["type"]]
    else:
        path = str(entry["class"])
    try:
        return load_module_class(path)
    except SerketError as exc:
        raise reader.fail(f"{where}.class", str(exc)) from None


def _params(reader: _Reader, cls: type[srk.Module], raw: Any, where: str) -> dict[str, Any]:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise reader.fail(where, f"must be a mapping, got {type(raw).__name__}")
    signature = inspect.signature(cls.__init__)
    accepted = [n for n in signature.parameters if n not in ("self", "name")]
    params = {}
    for key, value in raw.items():
        if key not in accepted:
            raise reader.fail(
                f"{where}.{key}", f"unknown parameter of {cls.__name__}; it takes {accepted}"
            )
        # A data reference ({file: ...} / {builtin: ...}) in a parameter: labels, etc.
        is_ref = isinstance(value, dict) and set(value) <= {"file", "builtin", "shards"} and value
        params[key] = reader.array(value, f"{where}.{key}", matrix=False) if is_ref else value
    missing = [
        n
        for n, p in signature.parameters.items()
        if n in accepted and p.default is inspect.Parameter.empty and n not in params
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]  # fmt: skip
    if missing:
        raise reader.fail(where, f"{cls.__name__} needs parameter {missing[0]!r}")
    return params


def load(path: str | Path) -> Graph:
    """Read and validate a graph file, loading its data: raises GraphError on any fault."""
    path = Path(path)
    reader = _Reader(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise reader.fail("", f"cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise reader.fail("", f"is not valid YAML: {exc}") from None
    top = reader.mapping(document, "", _TOP_FIELDS)
    rounds = top.get("rounds", 1)
    if not isinstance(rounds, int) or rounds < 1:
        raise reader.fail("rounds", f"must be a positive integer, got {rounds!r}")
    names: set[str] = set()

    def new_name(entry: dict[str, Any], where: str) -> str:
        name = entry.get("name")
        if not isinstance(name, str) or not name.isidentifier():
            raise reader.fail(f"{where}.name", f"must be a plain identifier, got {name!r}")
        if name in names:
            raise reader.fail(f"{where}.name", f"duplicate name {name!r}")
        names.add(name)
        return name

    observations = {}
    for i, entry in enumerate(_list(reader, top.get("observations"), "observations")):
        where = f"observations[{i}]"
        entry = reader.mapping(entry, where, {"name", "data"})
        name = new_name(entry, where)
        observations[name] = reader.array(entry.get("data"), f"{where}.data", matrix=True)
    modules = []
    for i, entry in enumerate(_list(reader, top.get("modules"), "modules")):
        where = f"modules[{i}]"
        entry = reader.mapping(entry, where, _MODULE_FIELDS)
        name = new_name(entry, where)
        where = f"module {name!r}"
        cls = _module_class(reader, entry, where)
        params = _params(reader, cls, entry.get("params"), f"{where}.params")
        connect = _list(reader, entry.get("connect"), f"{where}.connect")
        for target in connect:
            if target not in names or target == name:
                raise reader.fail(
                    f"{where}.connect",
                    f"connects to {target!r}, which is not an observation or a module "
                    "declared above it",
                )
        place = reader.mapping(entry.get("place", {}), f"{where}.place", _PLACE_FIELDS)
        if "shards" in entry:
            params["shards"] = _shards(reader, cls, entry["shards"], f"{where}.shards")
        modules.append(ModuleSpec(name, cls, params, connect, place))
    module_names = [m.name for m in modules]
    order = top.get("order", module_names)
    for name in _list(reader, order, "order"):
        if name not in module_names:
            raise reader.fail("order", f"{name!r} is not a module of this graph")
    graph = Graph(path, rounds, observations, modules, list(order))
    _read_recognition(reader, top.get("recognize"), graph)
    return graph


def _read_recognition(reader: _Reader, section: Any, graph: Graph) -> None:
    if section is None:
        return
    section = reader.mapping(section, "recognize", {"data", "category", "passes"})
    graph.recognize_passes = section.get("passes", 1)
    if not isinstance(graph.recognize_passes, int) or graph.recognize_passes < 1:
        raise reader.fail(
            "recognize.passes", f"must be a positive integer, got {graph.recognize_passes!r}"
        )
    for name, ref in reader.mapping(section.get("data", {}), "recognize.data", set(
        graph.observations
    )).items():  # fmt: skip
        graph.recognize_data[name] = reader.array(ref, f"recognize.data.{name}", matrix=True)
    modules = {m.name for m in graph.modules}
    for name, ref in reader.mapping(section.get("category", {}), "recognize.category",
                                    modules).items():  # fmt: skip
        graph.recognize_category[name] = reader.array(
            ref, f"recognize.category.{name}", matrix=False
        )
    if not graph.recognize_data:
        raise reader.fail("recognize.data", "name the novel data of at least one observation")


def _shards(reader: _Reader, cls: type[srk.Module], value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise reader.fail(where, f"must be a positive integer, got {value!r}")
    if value > 1 and not cls.supports_shards:
        raise reader.fail(where, f"{cls.__name__} does not run sharded (it keeps one actor)")
    return value


def _list(reader: _Reader, value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise reader.fail(where, f"must be a non-empty list, got {value!r}")
    return value


def embedded_cpus(graph: Graph) -> int:
    """CPUs an embedded Ray declares for a run of this graph: the machine's, or one per
    module actor (a shard each) where it has fewer cores. Every actor lives through the
    run while the modules update one at a time, so they share the cores; a module that
    asks for more than one (a GMM's num_threads) still gets the runtime's clear refusal."""
    actors = sum(int(spec.params.get("shards", 1)) for spec in graph.modules)
    return max(os.cpu_count() or 1, actors)


def build(graph: Graph) -> tuple[dict[str, srk.Observation], dict[str, srk.Module]]:
    """Create and connect the graph's observations and modules in the current session.

    A module that refuses its parameters or its inputs' shapes fails here, before any
    update, with the file and the module named.
    """
    nodes: dict[str, Any] = {}
    observations = {}
    for name, values in graph.observations.items():
        observations[name] = nodes[name] = srk.Observation(values, name=name)
    modules = {}
    for spec in graph.modules:  # every constructor's checks before any actor starts
        with _located(graph, spec.name):
            modules[spec.name] = nodes[spec.name] = spec.cls(**spec.params, name=spec.name)
    for spec in graph.modules:
        with _located(graph, spec.name):
            if spec.place:
                modules[spec.name].place(**spec.place)
            modules[spec.name].connect(*(nodes[n] for n in spec.connect))
    return observations, modules


@contextlib.contextmanager
def _located(graph: Graph, module: str) -> Iterator[None]:
    """Errors from building or wiring a module, named by the file and the module."""
    where = f"{graph.path}: module {module!r}"
    try:
        yield
    except (TypeError, ValueError) as exc:
        raise GraphError(where, str(exc)) from None
    except srk.ModuleError as exc:
        raise GraphError(where, exc.problem) from None


def recognize(
    graph: Graph, observations: dict[str, srk.Observation], modules: dict[str, srk.Module]
) -> list[dict[str, Any]]:
    """Run the file's recognition section on the built model; returns the reports."""
    return srk.recognize(
        {observations[n]: values for n, values in graph.recognize_data.items()},
        category={modules[n]: labels for n, labels in graph.recognize_category.items()},
        passes=graph.recognize_passes,
    )
