"""The `serket-ray` command line: run the tutorial (or your data) and the benchmark."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import runtime as srk
from actors.gmm import ALGORITHMS, MESSAGES
from actors.naming import TOPOLOGIES
from actors.naming_player import MODES
from launch import (
    bench,
    bench_data_parallel,
    bench_gmm,
    bench_memory,
    bench_messages,
    bench_models,
    bench_modules,
    bench_naming,
    bench_quality,
    bench_scale,
    bench_serket,
    data,
    deformed_digits,
    graph,
    naming_game,
    plots,
    recipes,
    report,
    run_dir,
    run_report,
)
from runtime import data_files, storage
from runtime.checkpoint import CheckpointStore


def _add_model_flags(
    parser: argparse.ArgumentParser, *, image_flags: bool = True, resumable: bool = False
) -> None:
    defaults = recipes.TutorialSettings()
    parser.add_argument(
        "--rounds",
        type=int,
        default=None if resumable else defaults.rounds,  # None: --resume keeps the run's
        help=f"VAE->GMM rounds (default {defaults.rounds}"
        + ("; with --resume: the run's, or more to run on)" if resumable else ")"),
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="VAE epochs per round")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--latent-dim", type=int, default=defaults.latent_dim)
    parser.add_argument("-K", "--classes", type=int, default=defaults.classes, help="GMM classes")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--gmm",
        choices=ALGORITHMS,
        default=defaults.gmm,
        help="the GMM's algorithm: Gibbs sampling with a Gauss-Wishart prior, or EM",
    )
    parser.add_argument(
        "--gmm-threads",
        type=int,
        default=defaults.gmm_threads,
        help="GMM chains run at once (its actor reserves that many CPUs); for large data",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=defaults.gmm_shards,
        help="actors the GMM's elements are split over, placed over the nodes",
    )
    parser.add_argument(
        "--vae-shards",
        type=int,
        default=defaults.vae_shards,
        help="actors the VAE is trained over, data-parallel (one model; a GPU each where "
        "the cluster has them)",
    )
    parser.add_argument(
        "--vae-threads",
        type=int,
        default=defaults.vae_threads,
        help="the VAE's torch CPU threads (default: all the node's cores)",
    )
    parser.add_argument(
        "--kl-weight",
        type=float,
        default=defaults.kl_weight,
        help="the VAE's alpha: weight of the KL term to the GMM's class mean",
    )
    parser.add_argument(
        "--vae-prior",
        choices=MESSAGES,
        default=defaults.vae_prior,
        help="the VAE's prior from the GMM: N(class mean, I) (Serket's) or the class's "
        "Gaussian N(mean, diag var) (Inter-GMM+VAE's)",
    )
    if not image_flags:
        return
    parser.add_argument(
        "--deskew",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="straighten each digit's slant and centre its ink before the VAE sees it "
        "(square images only; default: on for the embedded digits, off for --data)",
    )
    parser.add_argument(
        "--jitter",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="slightly rotate, scale and move the images the VAE's encoder sees "
        "(square images only)",
    )


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-q", "--quiet", action="store_true", help="print only warnings and errors"
    )
    loudness.add_argument(
        "-v", "--verbose", action="store_true", help="also show Ray's own start-up messages"
    )


def _add_storage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=_local_folder, default=Path("serket_output"), help="output folder"
    )
    parser.add_argument(
        "--checkpoint-dir",
        help="checkpoint storage: a folder or a URI such as s3://bucket/run (default: "
        "OUT/checkpoints)",
    )


def _say(args: argparse.Namespace) -> Callable[..., None]:
    """print, or nothing with --quiet."""
    return (lambda *_a, **_k: None) if getattr(args, "quiet", False) else print


def _add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else local)")
    parser.add_argument(
        "--num-cpus",
        type=int,
        help="CPUs of the embedded local Ray (default: all; for run and naming-game, at "
        "least one per module)",
    )
    parser.add_argument(
        "--place",
        action="append",
        default=[],
        metavar="MODULE:RESOURCE=AMOUNT",
        help="pin a module (vae, gmm) to nodes with a custom resource, e.g. vae:gpu_box=1",
    )
    parser.add_argument(
        "--place-label",
        action="append",
        default=[],
        metavar="MODULE:KEY=VALUE",
        help="pin a module to nodes with a label, e.g. gmm:tier=cpu",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for a node to host a module",
    )
    parser.add_argument(
        "--update-timeout", type=float, default=3600.0, help="seconds before an update is abandoned"
    )
    parser.add_argument(
        "--max-restarts", type=int, default=3, help="restarts of a lost module actor per update"
    )


def _settings(args: argparse.Namespace) -> recipes.TutorialSettings:
    return recipes.TutorialSettings(
        rounds=recipes.TutorialSettings.rounds if args.rounds is None else args.rounds,
        epochs=args.epochs,
        batch_size=args.batch_size,
        latent_dim=args.latent_dim,
        classes=args.classes,
        seed=args.seed,
        deskew=_deskew(args),
        # Absent from runs recorded before these flags, which ran with alpha 1, without
        # jitter, with EM.
        kl_weight=getattr(args, "kl_weight", 1.0),
        jitter=getattr(args, "jitter", False),
        gmm=getattr(args, "gmm", "em"),
        gmm_threads=getattr(args, "gmm_threads", 1),
        vae_threads=getattr(args, "vae_threads", None),
        gmm_shards=getattr(args, "shards", 1),
        vae_shards=getattr(args, "vae_shards", 1),
        vae_prior=getattr(args, "vae_prior", "mean"),
    )


def _deskew(args: argparse.Namespace) -> bool:
    """--deskew as given; by default on for the embedded digits only. Runs recorded before
    the flag have none: they ran without deskewing."""
    if not hasattr(args, "deskew"):
        return False
    if args.deskew is None:
        return getattr(args, "data", None) is None
    return args.deskew


def _placement(args: argparse.Namespace) -> dict[str, dict[str, dict[str, Any]]]:
    """--place vae:gpu_box=1 --place-label gmm:tier=cpu -> Module.place() arguments."""
    placement: dict[str, dict[str, dict[str, Any]]] = {}
    for flag, field, values in (
        ("--place", "resources", args.place),
        ("--place-label", "labels", args.place_label),
    ):
        for value in values:
            module, _, pair = value.partition(":")
            key, _, amount = pair.partition("=")
            if module not in ("vae", "gmm") or not key or not amount:
                raise srk.DataError(
                    flag, f"expected MODULE:KEY=VALUE with MODULE vae or gmm, got {value!r}"
                )
            if field == "resources":
                try:
                    amount = float(amount)
                except ValueError:
                    raise srk.DataError(
                        flag, f"resource amount must be a number in {value!r}"
                    ) from None
            placement.setdefault(module, {}).setdefault(field, {})[key] = amount
    return placement


def _dataset(
    args: argparse.Namespace,
) -> tuple[np.ndarray | str, np.ndarray | str | None, str]:
    """The data and labels (arrays, or a glob of shard files) and where they are from."""
    if args.data is None:
        if args.labels is not None:
            raise srk.DataError("--labels", "labels need --data (the embedded digits carry theirs)")
        digits, _ = data.tutorial_digits()
        return digits.images, digits.labels, "embedded MNIST digits (300 per class)"
    if data_files.is_shard_files(args.data):  # read by the actors, never here
        return args.data, args.labels, args.data
    matrix = data.load_matrix(args.data)
    labels = None if args.labels is None else data.load_labels(args.labels, len(matrix))
    return matrix, labels, args.data


def _local_folder(text: str) -> Path:
    """--out: a folder on this machine (the report and plots are written there)."""
    if storage.is_uri(text):
        raise argparse.ArgumentTypeError(
            f"{text} is not a local folder: the results, plots and report go to --out; put "
            "the checkpoints in object storage with --checkpoint-dir, or give the URI to "
            "srk.init() in Python"
        )
    return Path(text)


def _recorded(args: argparse.Namespace) -> argparse.Namespace:
    """With --resume DIR: the arguments DIR's run was started with (cluster flags kept,
    and --rounds where given: a run can go on past the rounds it was started with)."""
    if args.resume is None:
        return args
    path = Path(args.resume) / run_dir.RUN_FILE
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise srk.CheckpointError(str(path), f"cannot resume: {exc}") from None
    live = {
        k: getattr(args, k)
        for k in (
            "address",
            "num_cpus",
            "resume",
            "place",
            "place_label",
            "start_timeout",
            "quiet",
            "verbose",
        )
    }
    for name in ("rounds", "keep_rounds"):  # given again: the run goes on with the new value
        if getattr(args, name) is not None:
            live[name] = getattr(args, name)
    # Runs recorded before --keep-rounds existed kept every round.
    return argparse.Namespace(**{"keep_rounds": None, **recorded, **live, "out": Path(args.resume)})


def _record(args: argparse.Namespace, root: Path) -> None:
    files = {
        k: getattr(args, k) and str(Path(getattr(args, k)).resolve()) for k in ("data", "labels")
    }
    keep = ("update_timeout", "max_restarts", "keep_rounds")
    recorded = {**vars(_settings(args)), **files, **{k: getattr(args, k) for k in keep}}
    recorded["checkpoint_dir"] = args.checkpoint_dir and str(storage.Folder(args.checkpoint_dir))
    root.mkdir(parents=True, exist_ok=True)
    temporary = root / (run_dir.RUN_FILE + ".tmp")
    temporary.write_text(json.dumps(recorded, indent=1, default=str))
    temporary.replace(root / run_dir.RUN_FILE)


def _session(args: argparse.Namespace, *, resume: bool) -> srk.Session:
    """A new session from the output and cluster flags."""
    return srk.init(
        args.out,
        address=args.address,
        num_cpus=args.num_cpus,
        checkpoint_dir=args.checkpoint_dir,
        resume=resume,
        update_timeout_s=args.update_timeout,
        start_timeout_s=args.start_timeout,
        max_restarts=args.max_restarts,
        keep_rounds=args.keep_rounds,
        display="off" if args.quiet else "auto",
        verbose=args.verbose,
    )


def _refuse_fewer_rounds(args: argparse.Namespace, rounds: int) -> None:
    """A resumed run asked for fewer rounds than its checkpoint holds: refused from the
    manifest, before Ray starts."""
    out = storage.Folder(args.out)
    folder = (
        out / "checkpoints" if args.checkpoint_dir is None else storage.Folder(args.checkpoint_dir)
    )
    store = CheckpointStore(folder)
    if not store.holds_checkpoint():
        return  # the session says what is missing
    done = max((m["rounds"] for m in store.load().modules.values()), default=0)
    if rounds < done:
        raise srk.CheckpointError(
            str(out),
            f"has done {done} rounds already; --rounds {rounds} cannot undo them: "
            f"give {done} or more to run on",
        )


def run_tutorial(args: argparse.Namespace) -> None:
    args = _recorded(args)
    settings = _settings(args)
    matrix, labels, source = _dataset(args)
    if args.resume is not None:
        _refuse_fewer_rounds(args, settings.rounds)
    session = _session(args, resume=args.resume is not None)
    say = _say(args)
    if isinstance(matrix, str):
        say(f"data: {source} (shard files, read by the module actors)")
    else:
        say(f"data: {source}: {matrix.shape[0]} elements x {matrix.shape[1]} features")
    say(f"results: {session.output_root}")
    try:
        vae1, gmm1 = recipes.build_vae_gmm(matrix, labels, settings, _placement(args))
        # Only once the model is valid: a bad one overwrites nothing. A resumed run records
        # its rounds, which --rounds may have raised.
        if args.resume is None:
            run_dir.replace_or_refuse(
                session.output_root, session.checkpoint_dir, overwrite=args.overwrite
            )
        _record(args, session.output_root)
        for placed in session.placements():
            gpus = f", GPU {placed['gpu_ids']}" if placed["gpu_ids"] else ", CPU"
            shard = f" shard {placed['shard']}" if "shard" in placed else ""
            say(f"{placed['module']}{shard} on {placed['hostname']} ({placed['node_ip']}, "
                f"pid {placed['pid']}{gpus})")  # fmt: skip
        say(f"Ray start-up: {session.startup_seconds:.1f} s")
        if vae1.rounds_done or gmm1.rounds_done:
            say(f"resuming: {vae1.full_name} has done {vae1.rounds_done} rounds, "
                f"{gmm1.full_name} {gmm1.rounds_done}")  # fmt: skip
        recipes.run_rounds([vae1, gmm1], settings.rounds)
        restarts = session.status()["restarts"]
    finally:
        srk.shutdown()
    history = (session.output_root / "history.jsonl").read_text().splitlines()
    say()
    say(report.summary_table([json.loads(line) for line in history]))
    if restarts:
        print(f"serket-ray: warning: module actors restarted after faults: {restarts}",
              file=sys.stderr)  # fmt: skip
    if isinstance(labels, np.ndarray):  # not of shard files: their run is too large
        z_dir = session.output_root / vae1.full_name
        figure = plots.plot_latents(
            np.loadtxt(z_dir / "round_001" / "z_learn.txt"),
            np.loadtxt(z_dir / "z_learn.txt"),
            labels,
            session.output_root / run_dir.LATENT_PLOT,
            ("round 1 (no message from the GMM yet)", f"round {settings.rounds}"),
        )
        say(f"\nlatent space plot: {figure}")
    say(f"report: {run_report.write(session.output_root)}")


def _game_settings(args: argparse.Namespace) -> naming_game.GameSettings:
    try:  # before Ray starts
        naming_game.check_view(args.view, args.overlap)
    except ValueError as exc:
        raise srk.SerketError(str(exc)) from None
    return naming_game.GameSettings(
        args.agents, getattr(args, "mode", "mh"), args.topology, args.iterations, args.view,
        args.overlap, replace(_settings(args), deskew=False),
    )  # fmt: skip


def _add_game_flags(parser: argparse.ArgumentParser) -> None:
    defaults = naming_game.GameSettings()
    parser.add_argument("--agents", type=int, default=defaults.agents,
                        help="agents; agent i sees the digits turned i x 45 degrees")  # fmt: skip
    parser.add_argument("--topology", choices=TOPOLOGIES, default=defaults.topology,
                        help="from three agents: who speaks to whom")  # fmt: skip
    parser.add_argument("--iterations", type=int, default=defaults.iterations,
                        help="MH iterations of each game (one game per round)")  # fmt: skip
    parser.add_argument("--per-class", type=int, default=300,
                        help="digits of each class the agents see (500: all shipped)")  # fmt: skip
    parser.add_argument("--view", choices=naming_game.VIEWS, default=defaults.view,
                        help="what the agents see: the digits turned i x 45 degrees; "
                        "half: the agents after the first only the right half of them (a "
                        "harder view); split: agent i only the i-th vertical strip "
                        "(complementary views)")  # fmt: skip
    parser.add_argument("--overlap", type=int, default=defaults.overlap,
                        help="with --view split: columns each agent's strip reaches into "
                        "its neighbours' (default 0)")  # fmt: skip
    parser.set_defaults(vae_prior=defaults.model.vae_prior)


def run_naming(args: argparse.Namespace) -> None:
    """The naming game on the embedded digits: per round each agent's VAE and GMM, then
    the game; a table of the game's figures and the run's report at the end."""
    settings = _game_settings(args)
    digits, _ = data.tutorial_digits(per_class=args.per_class)
    if args.address is None and args.num_cpus is None:
        args.num_cpus = naming_game.logical_cpus(settings.agents)
    session = _session(args, resume=args.resume)
    say = _say(args)
    say(f"results: {session.output_root}")
    try:
        placement = naming_game.agent_placement(settings.agents) if args.place_agents else None
        views = naming_game.agent_views(
            digits.images, settings.agents, settings.view, settings.overlap
        )
        agents = naming_game.build(views, digits.labels, settings, placement)
        if not args.resume:
            run_dir.replace_or_refuse(
                session.output_root, session.checkpoint_dir, overwrite=args.overwrite
            )
        for placed in session.placements():
            say(f"{placed['module']} on {placed['hostname']} ({placed['node_ip']})")
        recipes.run_rounds(agents.modules(), settings.model.rounds)
    finally:
        srk.shutdown()
    history = [json.loads(line) for line in
               (session.output_root / "history.jsonl").read_text().splitlines()]  # fmt: skip
    per_round = naming_game.round_reports(history, agents.game.full_name)
    say()
    say(bench_naming.summary({settings.mode: [per_round]}, settings.agents))
    say(f"\nreport: {run_report.write(session.output_root, labels=digits.labels)}")


def run_graph_file(args: argparse.Namespace) -> None:
    model = graph.load(args.graph)  # every field and data file checked before Ray starts
    rounds = args.rounds or model.rounds
    if args.address is None and args.num_cpus is None:
        args.num_cpus = graph.embedded_cpus(model)
    session = _session(args, resume=args.resume)
    say = _say(args)
    say(f"graph: {model.path}: {len(model.modules)} modules, {rounds} rounds")
    say(f"results: {session.output_root}")
    try:
        observations, modules = graph.build(model)
        if not args.resume:
            run_dir.replace_or_refuse(
                session.output_root, session.checkpoint_dir, overwrite=args.overwrite
            )
        for placed in session.placements():
            shard = f" shard {placed['shard']}" if "shard" in placed else ""
            say(f"{placed['module']}{shard} on {placed['hostname']} ({placed['node_ip']})")
        recipes.run_rounds([modules[name] for name in model.order], rounds)
        recognized = []
        if model.recognize_data and not args.no_recognize:
            recognized = graph.recognize(model, observations, modules)
    finally:
        srk.shutdown()
    history = (session.output_root / "history.jsonl").read_text().splitlines()
    say()
    say(report.summary_table([json.loads(line) for line in history]))
    if recognized:
        say("\nrecognition of novel data (no learning):")
        for line in report.recognition_lines(recognized):
            say(line)
    labels = next(
        (m.category for m in modules.values() if getattr(m, "category", None) is not None), None
    )
    first = next(iter(observations.values()))
    page = run_report.write(
        session.output_root,
        labels=None if labels is None or isinstance(labels, str) else np.asarray(labels),
        source=first.data,
    )
    say(f"\nreport: {page}")


def make_digits(args: argparse.Namespace) -> None:
    manifest = deformed_digits.write(
        args.out, args.elements, shard_rows=args.shard_rows, seed=args.seed
    )
    print(f"manifest: {manifest}")


def make_report(args: argparse.Namespace) -> None:
    print(f"report: {run_report.write(Path(args.run_dir), labels=args.labels, source=args.data)}")


OVERWRITE_HELP = (
    "replace the run already in OUT (its results and checkpoint are deleted first); "
    "without it, a run is never started over an earlier one"
)
KEEP_ROUNDS_HELP = (
    "keep the result folders of round 1 and of the last N rounds only (default: every "
    "round); each round's reconstructions are as large as the data"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serket-ray", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    tutorial = commands.add_parser("tutorial", help="VAE+GMM on the embedded digits or your data")
    _add_model_flags(tutorial, resumable=True)
    _add_cluster_flags(tutorial)
    _add_output_flags(tutorial)
    tutorial.add_argument("--data", help="data file: .txt (np.loadtxt), .npy or .csv")
    tutorial.add_argument("--labels", help="true labels (one integer per line), for scoring only")
    _add_storage_flags(tutorial)
    tutorial.add_argument(
        "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last update"
    )
    tutorial.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    tutorial.add_argument("--keep-rounds", type=int, metavar="N", help=KEEP_ROUNDS_HELP)
    tutorial.set_defaults(run=run_tutorial)

    game = commands.add_parser(
        "naming-game", help="agents that see the digits differently play the MH naming game"
    )
    _add_model_flags(game, image_flags=False)
    _add_game_flags(game)
    game.add_argument("--mode", choices=MODES, default="mh",
                      help="mh: the game; none: no talk; all: every sign accepted")  # fmt: skip
    game.add_argument("--place-agents", action="store_true",
                      help="agent i on the nodes with the custom resource agent<i>")  # fmt: skip
    _add_cluster_flags(game)
    _add_output_flags(game)
    _add_storage_flags(game)
    game.add_argument("--resume", action="store_true", help="continue the run in --out")
    game.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    game.set_defaults(run=run_naming, keep_rounds=None)
    naming_bench = commands.add_parser(
        "bench-naming", help="the naming game per mode over seeds: final ARI per agent, kappa"
    )
    _add_model_flags(naming_bench, image_flags=False)
    _add_game_flags(naming_bench)
    naming_bench.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    naming_bench.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    naming_bench.add_argument("--num-cpus", type=int, help="CPUs of the embedded local Ray")
    naming_bench.add_argument("--out", type=Path, default=Path("runs/bench-naming"))
    naming_bench.set_defaults(
        run=lambda args: bench_naming.run(
            _game_settings(args), args.seeds, args.modes, args.out, args.num_cpus, args.per_class
        )
    )

    benchmark = commands.add_parser("bench", help="time the tutorial: Ray actors vs one process")
    _add_model_flags(benchmark)
    _add_cluster_flags(benchmark)
    benchmark.add_argument("--out", type=Path, default=Path("runs/bench"), help="output root")
    benchmark.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run the arms N times, alternated: best of each, overhead per repeat",
    )
    benchmark.set_defaults(run=lambda args: bench.run(_settings(args), args, _placement(args)))
    graph_run = commands.add_parser("run", help="run a model described in a YAML graph file")
    graph_run.add_argument("graph", help="graph file, e.g. launch/graphs/vae_gmm_mm.yaml")
    graph_run.add_argument("--rounds", type=int, help="override the file's rounds")
    _add_storage_flags(graph_run)
    graph_run.add_argument(
        "--resume", action="store_true", help="continue the run checkpointed under OUT"
    )
    graph_run.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    graph_run.add_argument("--keep-rounds", type=int, metavar="N", help=KEEP_ROUNDS_HELP)
    graph_run.add_argument(
        "--no-recognize", action="store_true", help="skip the file's recognition section"
    )
    _add_cluster_flags(graph_run)
    _add_output_flags(graph_run)
    graph_run.set_defaults(run=run_graph_file)
    page = commands.add_parser(
        "report", help="an HTML page of a run (finished or running), from its files"
    )
    page.add_argument("run_dir", help="the run's output folder (--out)")
    page.add_argument("--labels", help="true labels, if the run was not given them")
    page.add_argument("--data", help="the run's data file, for the reconstructions")
    page.set_defaults(run=make_report)
    digits = commands.add_parser(
        "make-digits",
        help="a large MNIST8M-style digit set: the shipped digits deformed, shard by shard",
    )
    digits.add_argument("--elements", type=int, required=True, help="how many digits in all")
    digits.add_argument("--out", type=Path, required=True, help="folder for the shards")
    digits.add_argument("--shard-rows", type=int, default=100_000, help="digits per shard file")
    digits.add_argument("--seed", type=int, default=0)
    digits.set_defaults(run=make_digits)
    models = commands.add_parser(
        "bench-models", help="accuracy of the shipped graph files (VAE+GMM, +MM, +MLDA) by seed"
    )
    models.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    models.add_argument("--out", type=Path, default=Path("runs/bench-models"))
    models.add_argument(
        "--graphs", nargs="+", metavar="NAME", help="shipped files to run (default: all)"
    )
    models.set_defaults(run=lambda args: bench_models.run(args.seeds, args.out, args.graphs))
    serket = commands.add_parser(
        "bench-serket",
        help="Serket's tutorial and example scripts (imports changed only): each module's "
        "accuracy and seconds per update",
    )
    serket.add_argument("--out", type=Path, default=Path("runs/bench-serket"))
    serket.add_argument("--per-class", type=int, default=300, help="digits of each class")
    serket.add_argument("--scripts", nargs="+", metavar="NAME", help="default: all")
    serket.set_defaults(run=lambda args: bench_serket.run(args.out, args.per_class, args.scripts))
    modules = commands.add_parser(
        "bench-modules",
        help="Serket's HAC+LDA example (espeak-ng recordings) and VAE+GMM+NN against VAE+GMM, "
        "per seed",
    )
    modules.add_argument("--out", type=Path, default=Path("runs/bench-modules"))
    modules.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    modules.add_argument("--rounds", type=int, default=10, help="Serket's example: 10")
    modules.add_argument("--epochs", type=int, default=200, help="the VAE's, per round")
    modules.add_argument("--itr1", type=int, default=500, help="the NN's training epochs")
    modules.add_argument("--itr2", type=int, default=2000, help="the NN's message steps")
    modules.add_argument("--per-class", type=int, default=300, help="digits of each class")
    modules.add_argument("--examples", nargs="+", choices=bench_modules.EXAMPLES,
                         help="default: all")  # fmt: skip
    modules.add_argument("--batch", type=int, default=500, help="digits arriving per round")
    modules.set_defaults(
        run=lambda args: bench_modules.run(
            args.out,
            args.seeds,
            args.rounds,
            args.epochs,
            args.itr1,
            args.itr2,
            args.per_class,
            args.examples,
            args.batch,
        )
    )
    quality = commands.add_parser(
        "bench-quality",
        help="accuracy over seeds: coupled (both GMM algorithms) vs uncoupled VAE+GMM, on "
        "deskewed and raw pixels, PCA+GMM, recognition",
    )
    _add_model_flags(quality, image_flags=False)  # it always runs both; --gmm: the main one
    quality.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    quality.add_argument("--out", type=Path, default=Path("runs/bench-quality"))
    quality.add_argument(
        "--only",
        nargs="+",
        choices=bench_quality.CONFIGURATIONS,
        default=bench_quality.CONFIGURATIONS,
        metavar="CONFIGURATION",
        help=f"run only these configurations (default: all of {bench_quality.CONFIGURATIONS})",
    )
    quality.set_defaults(  # both pixel settings run; the deskewed one is the main
        deskew=True,
        run=lambda args: bench_quality.run(_settings(args), args.seeds, args.out, only=args.only),
    )
    parallel = commands.add_parser(
        "bench-data-parallel",
        help="the tutorial with the VAE over S data-parallel shards: accuracy and epoch time "
        "per seed and S",
    )
    _add_model_flags(parallel)
    parallel.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parallel.add_argument("--vae-shard-counts", type=int, nargs="+", default=[1, 2])
    parallel.add_argument("--out", type=Path, default=Path("runs/bench-data-parallel"))
    parallel.set_defaults(
        run=lambda args: bench_data_parallel.run(
            _settings(args), args.seeds, args.vae_shard_counts, args.out
        )
    )
    messages = commands.add_parser(
        "bench-messages", help="message cost by payload size, same node vs two nodes"
    )
    messages.set_defaults(run=lambda args: bench_messages.run())
    mixture = commands.add_parser(
        "bench-gmm", help="one GMM update by number of elements, on synthetic latents"
    )
    mixture.add_argument("--elements", type=int, nargs="+", default=[3_000, 60_000, 300_000])
    mixture.add_argument("--latent-dim", type=int, default=18)
    mixture.add_argument("--classes", type=int, default=10)
    mixture.add_argument("--gmm", choices=ALGORITHMS, default="gibbs")
    mixture.add_argument("--seed", type=int, default=0)
    mixture.add_argument(
        "--threads", type=int, nargs="+", default=[1], help="the GMM's num_threads; several: each"
    )
    mixture.set_defaults(
        run=lambda args: bench_gmm.run(
            args.elements, args.latent_dim, args.classes, args.gmm, args.seed, args.threads
        )
    )
    memory = commands.add_parser(
        "bench-memory", help="peak memory per process while the VAE learns from large data"
    )
    memory.add_argument(
        "--copies", type=int, default=50, help="the embedded digits tiled N times (9 MB each)"
    )
    memory.add_argument("--updates", type=int, default=2)
    memory.add_argument("--out", type=Path, default=Path("runs/bench-memory"))
    memory.add_argument("--num-cpus", type=int, help="CPUs of the embedded local Ray")
    memory.set_defaults(
        run=lambda args: bench_memory.run(args.copies, args.updates, args.out, args.num_cpus)
    )
    scale = commands.add_parser(
        "bench-scale",
        help="a sharded PCA -> GMM on deformed digits, by size and shard count, two "
        "simulated nodes",
    )
    scale.add_argument("--elements", type=int, nargs="+", default=[100_000, 1_000_000])
    scale.add_argument("--shards", type=int, nargs="+", default=[1, 2])
    scale.add_argument(
        "--data-dir", type=Path, default=Path("runs/bench-scale/data"),
        help="where the digit sets are made once (3.1 GB per million digits)",
    )  # fmt: skip
    scale.add_argument("--out", type=Path, default=Path("runs/bench-scale"))
    scale.add_argument("--model", choices=("gmm", "vae"), default="gmm",
                       help="PCA -> GMM with the GMM timed, or the VAE alone")  # fmt: skip
    scale.add_argument("--updates", type=int, default=2, help="updates per run")
    scale.add_argument("--epochs", type=int, default=2, help="VAE epochs per update")
    scale.add_argument("--gmm", choices=ALGORITHMS, default="gibbs")
    scale.add_argument("--node-cpus", type=int, default=2, help="CPUs of each simulated node")
    scale.set_defaults(run=_bench_scale)
    return parser


def _bench_scale(args: argparse.Namespace) -> None:
    bench_scale.run(
        args.elements, args.shards, args.data_dir, args.out,
        updates=args.updates, algorithm=args.gmm, node_cpus=args.node_cpus, model=args.model,
        epochs=args.epochs,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except srk.SerketError as exc:
        print(f"serket-ray: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
