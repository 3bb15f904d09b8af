"""Serket's HAC feature extractor: spoken words as histograms of acoustic co-occurrences.

Each WAV file becomes MFCCs and their first and second deltas (librosa); each of the three
streams is vector-quantised with a code book learned by k-means over every file's frames
(scikit-learn); each file's histogram counts the pairs of codes `lag` frames apart, per
lag, all concatenated (Van hamme, Interspeech 2008). The result is an observation of
counts, one row per file, for an MLDA (Serket's HAC+LDA example).

It is a source module: it has no inputs, runs as an actor wherever it is placed (the node
that holds the recordings), and sends its histograms forward the first time a module
above reads them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from runtime import DataError, Module, ModuleError, Resources, Update, UpdateContext

MFCC_PARAMS = {"n_mfcc": 13}  # Serket's default (librosa's is 20)
STREAMS = ("mfcc", "delta", "delta2")
HOP_LENGTH = 512  # librosa's default hop between frames, in samples
DELTA_WIDTH = 9  # librosa's delta window: a recording needs at least this many frames


class HACFeatureExtractor(Module):
    """HAC features of `filenames` (WAV files, read on the node the actor runs on).

    ks: the code book sizes of the MFCC, delta and delta-delta streams (three integers).
    lags: the frame distances whose co-occurrences are counted; each adds sum(k**2)
    features. mfcc_params: passed to `librosa.feature.mfcc` (n_mfcc, n_fft, hop_length,
    n_mels, ...). seed: the k-means starts. mode, load_dir: with load_dir a learned
    extractor's folder, its code books quantise these files (a vocabulary shared by
    learning and novel recordings); Serket's extractor always learns its own.
    """

    kind = "hac"
    # It works once, before the modules that read it (a round runs one update at a time):
    # it reserves no CPU, so it fits beside a VAE and a GMM on a 2-core machine.
    resources = Resources(num_cpus=0)
    source = True

    def __init__(
        self,
        filenames: Sequence[str],
        ks: Sequence[int],
        lags: Sequence[int] = (5, 2),
        name: str | None = None,
        seed: int = 0,
        mode: str | None = None,
        load_dir: str | None = None,
        **mfcc_params: Any,
    ) -> None:
        super().__init__(name, mode=mode, load_dir=load_dir)
        if isinstance(filenames, (str, bytes)) or len(filenames) == 0:
            raise ModuleError(self.full_name, "filenames must be a non-empty list of WAV paths")
        if len(ks) != len(STREAMS):
            raise ModuleError(
                self.full_name, f"ks must give {len(STREAMS)} code book sizes {STREAMS}, got {ks!r}"
            )
        self.require_positive_integers(**{f"ks[{i}]": k for i, k in enumerate(ks)})
        self.require_positive_integers(**{f"lags[{i}]": lag for i, lag in enumerate(lags)})
        self.filenames = [os.fspath(f) for f in filenames]
        self.ks = [int(k) for k in ks]
        self.lags = [int(lag) for lag in lags]
        self.seed = seed
        self.mfcc_params = {**MFCC_PARAMS, **mfcc_params}
        self.codebooks_: list[np.ndarray] | None = None  # per stream: (k, n_mfcc) centroids
        self.features_: np.ndarray | None = None  # (files, features): the histograms

    def get_params(self) -> dict[str, Any]:
        """The named parameters and the MFCC settings, as the constructor takes them."""
        params = super().get_params()
        return {**params, **self.mfcc_params}

    def output_shape(self, input_shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        return (len(self.filenames), len(self.lags) * sum(k * k for k in self.ks))

    # ---- actor side -------------------------------------------------------------------
    def learn(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        """The histograms, computed once: later updates send the same."""
        if self.features_ is None:
            streams = self._read_all(ctx)
            if self.codebooks_ is None:
                self.codebooks_ = learned_codebooks(streams, self.ks, self.seed)
            self.features_ = histograms(streams, self.codebooks_, self.lags)
        return Update(
            forward=self.features_,
            files={"hac.txt": self.features_, self.model_file: self.state()},
        )

    def recognize(
        self, inputs: Sequence[np.ndarray], backward: np.ndarray | None, ctx: UpdateContext
    ) -> Update:
        """These files' histograms over the learned code books."""
        if self.codebooks_ is None:
            raise ValueError("recognition needs learned code books (load_dir=)")
        features = histograms(self._read_all(ctx), self.codebooks_, self.lags)
        return Update(forward=features, files={"hac_recog.txt": features})

    def _read_all(self, ctx: UpdateContext) -> list[list[np.ndarray]]:
        progress = ctx.progress(len(self.filenames), "MFCC")
        streams = []
        for path in self.filenames:
            streams.append(read_streams(path, self.lags, self.mfcc_params, f"{ctx.module}: {path}"))
            progress.update()
        progress.close()
        return streams

    # ---- state ------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        if self.codebooks_ is None:
            return {}
        state = {f"codebook_{s}": c for s, c in zip(STREAMS, self.codebooks_, strict=True)}
        if self.features_ is not None:
            state["features"] = self.features_
        return state

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        if not state:
            self.codebooks_ = self.features_ = None
            return
        self.codebooks_ = [np.asarray(state[f"codebook_{s}"]) for s in STREAMS]
        self.features_ = np.asarray(state["features"]) if "features" in state else None

    def learned_state(self, model: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A learned extractor's code books, not its files' histograms."""
        return {k: v for k, v in model.items() if k.startswith("codebook_")}

    def check_learned(
        self, state: Mapping[str, np.ndarray], input_shapes: Sequence[tuple[int, ...]]
    ) -> None:
        got = [np.shape(state.get(f"codebook_{s}", ())) for s in STREAMS]
        want = [(k, self.mfcc_params["n_mfcc"]) for k in self.ks]
        if got != want:
            raise ValueError(f"its code books are {got}; ks={self.ks} and n_mfcc need {want}")


def read_streams(
    path: str, lags: Sequence[int], mfcc_params: Mapping[str, Any], where: str
) -> list[np.ndarray]:
    """The file's MFCC, delta and delta-delta frames, each (frames, n_mfcc); `where`
    names the file in errors."""
    import librosa  # here: only the process that extracts pays for its import
    import soundfile

    if not os.path.isfile(path):
        raise DataError(where, "no such file on the node this module runs on")
    try:
        info = soundfile.info(path)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise DataError(where, f"is not a sound file ({exc})") from None
    if info.format != "WAV":
        raise DataError(where, f"is {info.format}, not WAV")
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    frames = 1 + len(samples) // mfcc_params.get("hop_length", HOP_LENGTH)  # librosa's framing
    needed = max(DELTA_WIDTH, max(lags) + 1)
    if frames < needed:
        raise DataError(
            where,
            f"is too short: {frames} frames ({info.duration:.3f} s); the lags "
            f"{list(lags)} and the deltas need at least {needed}",
        )
    mfcc = librosa.feature.mfcc(y=samples.mean(axis=1), sr=rate, **mfcc_params)
    delta = librosa.feature.delta(mfcc)
    delta2 = librosa.feature.delta(mfcc, order=2)
    return [mfcc.T, delta.T, delta2.T]


def learned_codebooks(
    streams: Sequence[Sequence[np.ndarray]], ks: Sequence[int], seed: int
) -> list[np.ndarray]:
    """Per stream, k centroids of every file's frames (k-means, scikit-learn)."""
    from sklearn.cluster import KMeans

    books = []
    for index, k in enumerate(ks):
        frames = np.vstack([file_streams[index] for file_streams in streams])
        if len(np.unique(frames, axis=0)) < k:
            raise ValueError(
                f"a code book of {k} for the {STREAMS[index]} stream needs at least {k} "
                f"distinct frames; the files have {len(np.unique(frames, axis=0))}"
            )
        fitted = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(frames)
        books.append(fitted.cluster_centers_.astype(np.float64))
    return books


def histograms(
    streams: Sequence[Sequence[np.ndarray]], codebooks: Sequence[np.ndarray], lags: Sequence[int]
) -> np.ndarray:
    """(files, features) float32: per file, per stream and lag, the co-occurrence counts."""
    rows = [
        np.concatenate(
            [
                _cooccurrences(_quantised(frames, codebook), len(codebook), lag)
                for frames, codebook in zip(file_streams, codebooks, strict=True)
                for lag in lags
            ]
        )
        for file_streams in streams
    ]
    return np.asarray(rows, dtype=np.float32)


def _quantised(frames: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Each frame's nearest code (scipy's vector quantisation)."""
    from scipy.cluster.vq import vq

    return vq(frames, codebook)[0]


def _cooccurrences(codes: np.ndarray, k: int, lag: int) -> np.ndarray:
    """Counts of (code at t + lag, code at t) pairs: k*k bins."""
    return np.bincount(codes[lag:] * k + codes[:-lag], minlength=k * k)
