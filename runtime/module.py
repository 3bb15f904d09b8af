"""The module API: what a generative module is, receives and returns.

A module class does two jobs, like a scikit-learn estimator:

* In the driver it is the handle a user builds a model with (Serket's API): the
  constructor only stores its parameters, `connect()` wires it to its inputs and `update()`
  asks the coordinator to run one update of it.
* Inside its Ray actor, a copy rebuilt from the same parameters does the learning:
  `learn()` gets its inputs' forward messages and its own backward message and returns an
  `Update`. After learning, `recognize()` processes novel data with what was learned and
  learns nothing (Serket's recognition mode); its files end in ``_recog``.

So that a copy can be rebuilt elsewhere without pickle, every constructor parameter must
be stored under its own name (`self.K = K`) and be msgpack-encodable (numbers, strings,
lists, dicts, numeric ndarrays). Learned state ends in `_`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np

from runtime import wiring
from runtime.errors import ModuleError

if TYPE_CHECKING:
    from runtime.observation import Observation
    from runtime.peers import PeerCalls

Shape = tuple[int, ...]
MODES = (None, "learn", "recog")
MODEL_FILE = "model.npz"


@dataclass(frozen=True)
class Resources:
    """What a module's actor asks Ray for.

    num_gpus="auto" asks for one GPU when the cluster has one, else none: the same model
    file runs on a laptop and on a GPU cluster. `custom` names custom node resources
    (``{"sensor_node": 1}``) and `labels` node labels (``{"zone": "lab"}``) that pin a
    module to the nodes that advertise them. CPU-only modules keep off GPU nodes where
    others can host them (Ray's scheduler avoids GPU nodes for CPU-only actors).
    """

    num_cpus: float = 1
    num_gpus: float | Literal["auto"] = 0
    custom: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)  # node labels to match


class Progress(Protocol):
    def update(self, n: int = 1) -> None: ...
    def close(self) -> None: ...


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def no_progress(_total: int, _description: str) -> Progress:
    """A progress factory that shows nothing: for modules run outside an actor."""
    return _NoProgress()


Arrays = Mapping[str, np.ndarray]


class Collective(Protocol):
    """Collectives over the shards of one module (every shard calls them, in the same
    order, with arrays of the same names and shapes)."""

    def allreduce(self, arrays: Arrays) -> dict[str, np.ndarray]:
        """The element-wise sum over shards of each named array, in float64."""
        ...

    def broadcast(self, arrays: Arrays, root: int = 0) -> dict[str, np.ndarray]:
        """Shard `root`'s arrays, on every shard (the others' values are ignored)."""
        ...

    def data_parallel(self, network: Any) -> Any:
        """A torch network wrapped for data-parallel training over the shards: torch's
        DistributedDataParallel over their process group, which all-reduces (averages)
        the gradients in every backward pass and starts every shard from shard 0's
        weights."""
        ...


class Solo:
    """The collective of a module of one shard: the sums are its own arrays."""

    def allreduce(self, arrays: Arrays) -> dict[str, np.ndarray]:
        return {name: np.asarray(value, dtype=np.float64) for name, value in arrays.items()}

    def broadcast(self, arrays: Arrays, root: int = 0) -> dict[str, np.ndarray]:
        return {name: np.asarray(value) for name, value in arrays.items()}

    def data_parallel(self, network: Any) -> Any:
        return network


@dataclass(frozen=True)
class Shard:
    """Which elements one shard of a module owns: rows start..stop of `total`."""

    index: int = 0
    count: int = 1
    start: int = 0
    stop: int = 0
    total: int = 0


@dataclass(frozen=True)
class UpdateContext:
    """What the runtime tells a module about the update it runs.

    shard and collective: which elements this actor owns and the collectives over the
    module's shards. Unsharded, the shard is every element and the collective `Solo`, so
    a module written with `ctx.allreduce` runs unchanged with one shard or many.
    """

    module: str  # full name, e.g. "module001_vae"
    round: int  # 1 for the module's first update
    gpu_ids: Sequence[int]  # accelerators Ray assigned to this actor (empty on CPU)
    progress: Callable[[int, str], Progress]  # progress(total, description)
    category: np.ndarray | None = None  # recognition only: true labels, for scoring only
    shard: Shard = Shard()
    collective: Collective = field(default_factory=Solo)
    num_cpus: float | None = None  # the CPUs Ray reserved for this actor (None: unknown)
    # Per input, in connect order: whether it takes a backward message (a module does, an
    # observation does not), so that a module can skip one nobody receives; () outside
    # an actor: unknown.
    backward_taken: tuple[bool, ...] = ()
    # A module connected to peers (`Module.connect_peers`): the calls it asks them by.
    peers: PeerCalls | None = None

    @property
    def sharded(self) -> bool:
        return self.shard.count > 1

    def allreduce(self, arrays: Arrays) -> dict[str, np.ndarray]:
        """Sum each named array over the module's shards (float64); see `Collective`."""
        return self.collective.allreduce(arrays)

    def broadcast(self, arrays: Arrays, root: int = 0) -> dict[str, np.ndarray]:
        """Shard `root`'s arrays on every shard; see `Collective`."""
        return self.collective.broadcast(arrays, root)

    def data_parallel(self, network: Any) -> Any:
        """`network` for training over the module's shards (the network itself unsharded);
        see `Collective`."""
        return self.collective.data_parallel(network)


@dataclass
class Update:
    """What one update of a module produces.

    forward: the message to every module connected above (one row per data element).
    backward: one message per connected input, in connect order (None: nothing to send).
    files: results to write under the module's directory, by file name: ``.txt`` holds
        an array or a number, ``.npy`` an array, ``.npz`` a dict of arrays. A sharded
        module's shards hold the same values here: its first shard writes them.
    rows: element-wise results (one row per element this actor owns), by file name.
        Unsharded they are written as `files` are (Serket's ``class_learn.txt``); a
        sharded module's shards each write theirs as ``class_learn.part-0000.npy``, ...
        (`runtime.output.read_parts` reads them back as one array).
    metrics: numbers to report per round (accuracy, loss, ...); a sharded module's are
        its first shard's (compute them from all-reduced sums, so every shard agrees).
    """

    forward: np.ndarray
    backward: Sequence[np.ndarray | None] = ()
    files: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    rows: Mapping[str, np.ndarray] = field(default_factory=dict)


class Module:
    """Base class of every module; see the module docstring for the contract."""

    kind: ClassVar[str] = "module"  # default name: the directory is moduleNNN_<name>
    resources: Resources = Resources()  # the class's default; __init__ may set an instance's
    # Whether learn/recognize are written for shards (they combine what the shards hold
    # through ctx.allreduce): only such a class may be built with shards > 1.
    supports_shards: ClassVar[bool] = False
    # Whether every shard holds the same state (one model trained data-parallel): then
    # shard 0's is checkpointed, once, and every shard is restored from it.
    replicated_state: ClassVar[bool] = False
    shards: int = 1  # actors the module's elements are split over (a constructor parameter)
    # The file in the module's directory that holds what it learned (Serket's model.pickle,
    # as named arrays): what `load_dir` loads.
    model_file: ClassVar[str] = MODEL_FILE
    mode: str | None = None
    load_dir: str | None = None
    # A source makes its forward message itself, from no inputs (Serket's feature
    # extractors: features from audio or image files). It connects by itself when a module
    # connects to it, and updates by itself the first time a module reads it.
    source: ClassVar[bool] = False

    def __init__(
        self,
        name: str | None = None,
        resources: Resources | None = None,
        shards: int = 1,
        mode: str | None = None,
        load_dir: str | None = None,
    ) -> None:
        """resources: this instance's, where its parameters decide them (a GMM's threads).
        shards: how many actors own the module's elements, each a contiguous range.
        mode, load_dir: Serket's recognition mode (see `recognizing`)."""
        self.name = name or self.kind
        if resources is not None:
            self.resources = resources
        self.shards = shards
        self.mode = mode
        self.load_dir = load_dir
        self._handle: wiring.ModuleHandle = wiring.attach(self)
        self.require_positive_integers(shards=shards)
        if mode not in MODES:
            raise ModuleError(
                self.full_name, f"mode must be 'learn' or 'recog' (Serket's modes), got {mode!r}"
            )
        if mode == "recog" and load_dir is None:
            raise ModuleError(
                self.full_name,
                "mode='recog' needs load_dir=, the folder of the learned module "
                "(e.g. load_dir='module002_gmm')",
            )
        if shards > 1 and not self.supports_shards:
            raise ModuleError(
                self.full_name,
                f"cannot run as {shards} shards: {type(self).__name__} does not combine its "
                "shards' statistics (set supports_shards = True once learn uses ctx.allreduce)",
            )

    def require_positive_integers(self, **values: Any) -> None:
        """Constructor check shared by modules: each named value is an integer >= 1."""
        for field_name, value in values.items():
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ModuleError(
                    self.full_name, f"{field_name} must be a positive integer, got {value!r}"
                )

    # ---- driver side: Serket's API ------------------------------------------------
    def connect(self, *inputs: Module | Observation) -> None:
        """Wire this module to the modules or observations below it (they feed it)."""
        self._handle.connect(inputs)

    def connect_peers(self, *peers: Module) -> None:
        """Wire this module to modules it talks to rather than reads (a naming game to
        the agents' classifiers): it receives no forward message from them, and its
        updates ask them questions instead (`UpdateContext.peers`, `runtime.peers`)."""
        self._handle.connect_peers(peers)

    def update(self, *, write_behind: bool = False) -> dict[str, Any]:
        """Run one update of this module through the coordinator; returns its report.

        Its result files and checkpoint are on disk on return, unless write_behind=True:
        then they are written while the next update runs, in order (a failed write is
        raised by the next update; `Session.flush()` or the session's end waits for all).
        """
        return self._handle.update(write_behind=write_behind)

    def place(
        self,
        *,
        resources: Mapping[str, float] | None = None,
        labels: Mapping[str, str] | None = None,
        num_cpus: float | None = None,
        num_gpus: float | Literal["auto"] | None = None,
    ) -> Module:
        """Pin this module's actor (call before connect); returns the module.

        resources: custom node resources it needs, e.g. ``{"sensor_node": 1}`` (nodes
        advertise them with ``ray start --resources``); labels: node labels it must match
        (``ray start --labels``). num_cpus / num_gpus override the class's defaults.
        """
        self._handle.place(
            Resources(
                num_cpus=self.resources.num_cpus if num_cpus is None else num_cpus,
                num_gpus=self.resources.num_gpus if num_gpus is None else num_gpus,
                custom={**self.resources.custom, **(resources or {})},
                labels={**self.resources.labels, **(labels or {})},
            )
        )
        return self

    @property
    def recognizing(self) -> bool:
        """Serket's recognition mode: `update()` runs `recognize` on the connected data
        with what the module in `load_dir` learned, and learns nothing. Set by
        mode="recog", or by load_dir alone (as Serket's code takes it); mode="learn" with a
        load_dir learns on from the loaded model."""
        return self.mode == "recog" or (self.mode is None and self.load_dir is not None)

    @property
    def full_name(self) -> str:
        """The Serket name, e.g. ``module001_vae``."""
        return self._handle.full_name

    @property
    def rounds_done(self) -> int:
        """Updates completed, counting those restored from a checkpoint."""
        return self._handle.rounds_done

    # ---- both sides ---------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters by name, read back from the attributes that store them."""
        signature = inspect.signature(type(self).__init__)
        params = {}
        for name, parameter in signature.parameters.items():
            if name == "self" or parameter.kind in (
                parameter.VAR_POSITIONAL,
                parameter.VAR_KEYWORD,
            ):
                continue
            if not hasattr(self, name):
                raise ModuleError(
                    type(self).__name__,
                    f"constructor parameter {name!r} is not stored as self.{name}; modules "
                    "store every parameter under its own name so they can be rebuilt remotely",
                )
            params[name] = getattr(self, name)
        return params

    def output_shape(self, input_shapes: Sequence[Shape]) -> Shape:
        """Check the inputs' shapes at connect time and give this module's forward shape.

        Runs in the driver before any actor starts, so bad wiring fails early with a clear
        message. Raise `ValueError` with the problem; the runtime names the module.
        """
        raise NotImplementedError

    def backward_shapes(self, output_shape: Shape) -> list[Shape]:
        """The shapes of backward message this module takes: by default its own forward
        shape (a message about each element's output)."""
        return [output_shape]

    # ---- actor side ---------------------------------------------------------------
    def learn(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        """One update: learn from the inputs and the message from above."""
        raise NotImplementedError

    def recognize(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        """Novel data through the learned model, changing nothing learned.

        The inputs have as many rows as the novel data (not as the learning data); the
        forward message and every backward message must have that many rows too.
        """
        raise NotImplementedError(f"{type(self).__name__} has no recognition mode")

    # ---- as the peer of a module that talks to others (`runtime.peers`) --------------
    def join(self, inputs: Sequence[np.ndarray], ctx: UpdateContext) -> None:
        """Get ready to answer questions: `inputs` are those of its last update (its
        context's round); answers must not change what `state()` returns until `settle`."""
        raise NotImplementedError(f"{type(self).__name__} cannot be a peer of another module")

    def answer(self, question: str, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """The answer to one question (named numbers or numeric arrays)."""
        raise NotImplementedError(f"{type(self).__name__} answers no questions")

    def settle(self, ctx: UpdateContext) -> Update:
        """After the questions: make what they led to this module's own, and return its
        messages and files as an update would (they replace those of its last round)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be a peer of another module")

    def state(self) -> dict[str, np.ndarray]:
        """Everything learned so far, as named arrays: checkpointed after every update."""
        return {}

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what `state()` returned, on a fresh copy built from the same parameters."""
        if state:
            raise NotImplementedError(f"{type(self).__name__} cannot restore a checkpoint")

    # ---- recognition mode (load_dir): in the driver, before the actor starts ------------
    def learned_state(self, model: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The state to `load_state` from the arrays of a learned module's `model_file`
        (the same as its state unless the module writes less there)."""
        return dict(model)

    def check_learned(self, state: Mapping[str, np.ndarray], input_shapes: Sequence[Shape]) -> None:
        """Raise ValueError if a learned state cannot serve these inputs (its classes,
        features or layers differ): a recognition model must fit the learned one."""
