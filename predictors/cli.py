"""``nas predictor train|eval`` and ``nas predict``.

::

    nas predictor train --space nb201 --target cifar10_test_acc --n 100 --seed 0 -o model.nasp
                        [--predictor gennape] [--set KEY=VALUE ...] [--data-dir DIR] [--json]
    nas predictor train --n 100 --features zc:synflow,jacov,nwot -o zc.nasp     # proxy scores as features
    nas predictor train --target latency:pixel3 --n 500 -o pixel3.nasp          # kernel_latency by default
    nas predictor train --target measured --n 500 --workdir DIR -o here.nasp    # onnxruntime on this machine
    nas predictor finetune model.nasp --space nb301 --target val_accuracy --n 50 -o tuned.nasp
                        [--adapt-n K] [--epochs E]                      # gennape, to another space
    nas predictor eval model.nasp [--space S --target T] [--n-test 1000] [--json]
    nas predict model.nasp FILE.onnx ... | --space S --arch A [--arch B ...] [--json]

Training draws ``--n`` architectures of the space's labelled set (:mod:`predictors.data`) with
``--seed``, fits the predictor (``--set`` overrides its config fields, values read as JSON when they
parse) and saves it with its provenance (space, target, n, seed). ``eval`` reads that provenance
and tests on ``--n-test`` architectures (0: all) of the space that no training or fine-tuning step
drew, whatever its target (another space: zero-shot transfer, all of them eligible). Accuracy
targets report Spearman's ρ, Kendall's τ and precision@top-5%; latency targets also the share within
±10%, and RMSE. A saved latency predictor serves search as the cost model ``predicted:FILE``, and any
predictor as ``nas search --objective predictor:FILE``.

``finetune`` carries a saved ``gennape`` predictor to another space or target: it re-standardizes the
predictor's inputs on that space's unlabelled graphs (:meth:`~predictors.gennape.GennapePredictor.adapt`;
the ``--n`` drawn ones plus up to ``--adapt-n`` more of the labelled set, default all of it, labels
unused), then trains its heads on from their weights on the ``--n`` labelled ones
(:meth:`~predictors.gennape.GennapePredictor.finetune`). The result records the new space, target, n
and seed, so ``eval`` then tests on the architectures fine-tuning did not draw.

``--features SPEC`` fits the predictor with features besides the graph (:mod:`predictors.features`):
``geno``, the space's own encoding (the literal genotype's one-hot), or ``zc:P1,P2,...``, zero-cost
proxy scores from our engine on ``--proxy-batch`` images of ``--proxy-data`` (the batch and the
networks' initialization drawn with ``--seed``; ``--workers N`` scores them in N processes, with
the same result). The archive records the spec, and ``eval``, ``predict`` and ``nas search
--objective predictor:FILE`` compute the same columns for the architectures they read.
``encoding_mlp`` reads the space's encoding alone, so its default is ``geno``. ``geno`` cannot read
an ONNX file, which has no genotype.

Everything heavy is imported inside the functions, so ``nas --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

LATENCY_DEFAULT = "kernel_latency"
#: for onnxruntime latency measured here: the kernel model on the kernels onnxruntime runs
MEASURED_DEFAULT = "runtime_latency"
ACCURACY_DEFAULT = "gennape"


def register(sub: Any) -> None:
    """Add ``nas predictor train|eval`` and ``nas predict`` to the ``nas`` sub-parsers."""
    p = sub.add_parser("predictor", help="train and evaluate performance and latency predictors")
    psub = p.add_subparsers(dest="predictor_command", required=True)

    t = psub.add_parser("train", help="fit a predictor on labelled architectures of a space and save it")
    t.add_argument("--space", default="nb201", help="nb201 (default), nb101 or nb301: the labelled set")
    t.add_argument("--target", default="cifar10_test_acc",
                   help="an NB201 column (default cifar10_test_acc), latency:DEVICE, measured (onnxruntime "
                        "here), or val_accuracy for nb101/nb301")
    t.add_argument("--n", type=int, default=100, help="training architectures (default 100)")
    t.add_argument("--seed", type=int, default=0, help="seed of the sample and of the predictor (default 0)")
    t.add_argument("-o", "--output", required=True, help="the .nasp archive to write")
    t.add_argument("--predictor", default=None,
                   help=f"a registered predictor (default {ACCURACY_DEFAULT}; {LATENCY_DEFAULT} for a latency "
                        f"table, {MEASURED_DEFAULT} for measured)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field of the predictor, e.g. --set members=2 (repeatable)")
    t.add_argument("--features", default=None, metavar="SPEC",
                   help="features besides the graph: geno (the genotype one-hot) or zc:PROXY[,PROXY...] (zero-cost "
                        "proxy scores); recorded in the archive and computed again by eval, predict and search")
    t.add_argument("--proxy-data", default="cifar10", help="images of zc features: cifar10 (default), digits, npz:PATH")
    t.add_argument("--proxy-batch", type=int, default=64, help="images per zc proxy batch (default 64)")
    _common(t)
    t.set_defaults(func=cmd_train)

    f = psub.add_parser("finetune", help="adapt a saved gennape predictor to another space and fine-tune it on "
                                         "a few of its labelled architectures")
    f.add_argument("model", help="a .nasp archive of a gennape predictor")
    f.add_argument("--space", required=True, help="nb201, nb101 or nb301: the labelled set to fine-tune on")
    f.add_argument("--target", default=None,
                   help="the target (default: val_accuracy for nb101/nb301, cifar10_test_acc for nb201)")
    f.add_argument("--n", type=int, default=50, help="labelled architectures to fine-tune on (default 50)")
    f.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    f.add_argument("--adapt-n", type=int, default=None,
                   help="unlabelled architectures of the set to adapt the inputs on, besides the --n (default: all; "
                        "0: the --n alone)")
    f.add_argument("--epochs", type=int, default=None, help="head training epochs (default: the predictor's own)")
    f.add_argument("-o", "--output", required=True, help="the .nasp archive to write")
    _common(f, measured=False)
    f.set_defaults(func=cmd_finetune)

    e = psub.add_parser("eval", help="evaluate a saved predictor on labelled architectures it did not see")
    e.add_argument("model", help="a .nasp archive")
    e.add_argument("--space", default=None, help="labelled set (default: the one it was trained on)")
    e.add_argument("--target", default=None, help="target (default: the one it was trained on)")
    e.add_argument("--n-test", type=int, default=1000, help="test architectures (default 1000; 0: all unseen)")
    e.add_argument("--seed", type=int, default=None, help="seed of the test sample (default: the training seed)")
    _common(e)
    e.set_defaults(func=cmd_eval)

    pr = sub.add_parser("predict", help="predict the score of ONNX models or architectures of a space")
    pr.add_argument("model", help="a .nasp archive")
    pr.add_argument("files", nargs="*", help="ONNX files")
    pr.add_argument("--space", default=None, help="the space of --arch")
    pr.add_argument("--arch", action="append", default=[], help="a genotype of --space (repeatable)")
    pr.add_argument("--input-shape", default=None, help="example input shape for dynamic ONNX models, e.g. 1,3,32,32")
    pr.add_argument("--data-dir", default=None, help="reference data folder, for zc features on cifar10 "
                                                     "(default: $NAS_DATA)")
    pr.add_argument("--json", action="store_true", help="print the predictions as JSON")
    pr.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    _workers_option(pr)
    pr.set_defaults(func=cmd_predict)


def _common(p: argparse.ArgumentParser, *, measured: bool = True) -> None:
    p.add_argument("--data-dir", default=None, help="reference data folder (default: $NAS_DATA)")
    if measured:  # finetune takes accuracy targets only
        p.add_argument("--workdir", default=None,
                       help="cache of onnxruntime measurements for --target measured (default ~/.cache/nas/measured)")
        p.add_argument("--passes", type=int, default=1,
                       help="--target measured: passes over the architectures, minutes apart; each is labelled "
                            "with the least of its passes, steadier on a shared machine (default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads while fitting (default 1)")
    _workers_option(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON (no progress bar)")


def _workers_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="processes that score zc features, one torch thread each (default 1)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def _workdir(args: argparse.Namespace) -> Path:
    return Path(args.workdir) if args.workdir else Path.home() / ".cache" / "nas" / "measured"


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(pairs: list[str]) -> dict[str, Any]:
    from nas.errors import PredictorError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PredictorError(f"--set takes KEY=VALUE; got {pair!r}")
        v = _value(value)
        out[key.strip()] = tuple(v) if isinstance(v, list) else v
    return out


def _normalize_target(space: str, target: str, data_dir: str | None) -> str:
    """``latency:DEVICE`` for an NB201 device column given bare; other targets unchanged."""
    if space == "nb201" and target != "measured" and not target.startswith("latency:"):
        from benchmarks.tabular import nb201_devices

        if target in nb201_devices(data_dir):
            return f"latency:{target}"
    return target


def _labels(space: str, target: str, rows: Any, archs: tuple[str, ...], args: argparse.Namespace) -> Any:
    """Targets of ``rows``: from the table, or measured with onnxruntime for ``measured``."""
    import numpy as np

    from predictors.data import labelled, measured_latency

    if target == "measured":
        from tqdm import tqdm

        chosen = [archs[i] for i in rows]
        with tqdm(total=len(chosen) * args.passes, desc="measure", unit="arch", disable=args.json,
                  file=sys.stderr) as bar:
            return measured_latency(space, chosen, _workdir(args), threads=1, passes=args.passes,
                                    progress=lambda done, total: bar.update(done - bar.n))
    return np.asarray(labelled(space, target, args.data_dir).y)[rows]


def _graphs(space_name: str, archs: list[str], quiet: bool, desc: str = "graphs") -> list[Any]:
    from tqdm import tqdm

    from search_spaces import space_from_spec

    space = space_from_spec(space_name)
    return [space.to_graph(space.parse(a)) for a in tqdm(archs, desc=desc, unit="arch", disable=quiet, file=sys.stderr)]


def _features(spec: Any, graphs: list[Any], archs: list[str] | None, args: argparse.Namespace) -> Any:
    """``spec.compute`` with a progress bar (None without a spec)."""
    if spec is None:
        return None
    from tqdm import tqdm

    with tqdm(total=len(graphs), desc=f"features {spec}", unit="arch", disable=args.json or spec.kind == "geno",
              file=sys.stderr) as bar:
        return spec.compute(graphs, archs, data_dir=getattr(args, "data_dir", None),
                            progress=lambda done, total: bar.update(done - bar.n), workers=args.workers)


def cmd_train(args: argparse.Namespace) -> int:
    import time

    import torch
    from tqdm import tqdm

    from nas.errors import PredictorError
    from predictors import PREDICTORS
    from predictors.data import canonical_space, is_latency_target, labelled, split
    from predictors.features import FeatureSpec

    torch.set_num_threads(args.threads)
    space = canonical_space(args.space)
    target = _normalize_target(space, args.target, args.data_dir)
    latency = is_latency_target(target)
    default = (MEASURED_DEFAULT if target == "measured" else LATENCY_DEFAULT) if latency else ACCURACY_DEFAULT
    name = args.predictor or default
    if name not in PREDICTORS:
        raise PredictorError(f"unknown predictor {name!r}; valid: {', '.join(PREDICTORS.names())}")
    kind = PREDICTORS.get(name)
    spec = None
    if args.features is not None:
        spec = FeatureSpec.parse(args.features, space=space, data=args.proxy_data, batch=args.proxy_batch,
                                 seed=args.seed)
    elif getattr(kind, "default_features", None) == "geno":
        spec = FeatureSpec("geno", space=space)
    elif getattr(kind, "features_only", False):
        raise PredictorError(f"{name} reads features alone: give --features geno or --features zc:PROXY[,PROXY...], "
                             f"e.g. --features zc:synflow,jacov,nwot")
    overrides = _overrides(args.set)
    if name in (LATENCY_DEFAULT, MEASURED_DEFAULT):
        overrides.setdefault("label", target if target == "measured" else f"table:{target.split(':', 1)[1]}")
        overrides.setdefault("seed", args.seed)
    elif "seed" not in overrides:
        overrides["seed"] = args.seed
    try:
        predictor = PREDICTORS.resolve(name, **overrides)
    except TypeError as e:
        raise PredictorError(f"--set for {name}: {e}") from e
    base = labelled(space, "cifar10_test_acc" if target == "measured" else target, args.data_dir)
    rows, _ = split(len(base), args.n, 0, args.seed)
    archs = [base.archs[i] for i in rows]
    y = _labels(space, target, rows, base.archs, args)
    graphs = _graphs(space, archs, args.json)
    features = _features(spec, graphs, archs, args)
    t0 = time.perf_counter()
    bar = tqdm(desc=f"fit {name}", unit="step", disable=args.json, file=sys.stderr)
    if hasattr(predictor, "progress"):
        def report(stage: str, done: int, total: int) -> None:
            bar.total = 2 * total
            bar.set_postfix(stage=stage)
            bar.update(1)

        predictor.progress = report
    predictor.fit(graphs, y, features=features)
    bar.close()
    seconds = time.perf_counter() - t0
    info = {"space": space, "target": target, "n": args.n, "seed": args.seed, "predictor": name,
            "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}}
    if spec is not None:
        info["features"] = spec.to_json()
    return _save(predictor, args, info, seconds,
                 f"{name} on {args.n} {space} architectures, target {target}, seed {args.seed} "
                 f"({seconds:.1f} s to fit)")


def _save(predictor: Any, args: argparse.Namespace, info: dict[str, Any], seconds: float, line: str) -> int:
    """Save ``predictor`` to ``--output`` with its provenance ``info``; print the result (JSON, or ``line``)."""
    from predictors.base import set_provenance

    out = Path(args.output)
    predictor.save(out)
    set_provenance(out, info)
    if args.json:
        print(json.dumps({**info, "output": str(out), "fit_seconds": round(seconds, 3)}, indent=2))
    else:
        print(f"wrote {out}: {line}")
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    import time

    import numpy as np
    import torch

    from nas.errors import PredictorError
    from predictors import load_predictor
    from predictors.base import provenance
    from predictors.data import canonical_space, is_latency_target, labelled, split
    from predictors.features import saved_spec
    from predictors.gennape import GennapePredictor

    torch.set_num_threads(args.threads)
    predictor = load_predictor(args.model)
    if not isinstance(predictor, GennapePredictor):
        raise PredictorError(f"{args.model} holds a {predictor.name} predictor; only gennape can be fine-tuned")
    if args.adapt_n is not None and args.adapt_n < 0:
        raise PredictorError(f"--adapt-n must be >= 0; got {args.adapt_n}")
    space = canonical_space(args.space)
    target = args.target or ("cifar10_test_acc" if space == "nb201" else "val_accuracy")
    if is_latency_target(target):
        raise PredictorError(f"finetune takes an accuracy target; got {target!r}")
    base = labelled(space, target, args.data_dir)
    rows, _ = split(len(base), args.n, 0, args.seed)
    chosen = set(rows.tolist())
    others = [i for i in np.random.default_rng([args.seed, 2]).permutation(len(base)) if i not in chosen]
    extra = others if args.adapt_n is None else others[:args.adapt_n]
    archs = [base.archs[i] for i in [*rows, *extra]]
    graphs = _graphs(space, archs, args.json)
    spec = saved_spec(predictor, provenance(args.model), where=args.model, space=space)
    features = _features(spec, graphs, archs, args)
    t0 = time.perf_counter()
    predictor.adapt(graphs, features=features)
    predictor.finetune(graphs[:len(rows)], np.asarray(base.y)[rows], epochs=args.epochs,
                       features=None if features is None else features[:len(rows)])
    seconds = time.perf_counter() - t0
    info = {"space": space, "target": target, "n": args.n, "seed": args.seed, "predictor": predictor.name,
            "finetuned_from": {"model": str(args.model), **provenance(args.model)}, "adapted_on": len(graphs)}
    if spec is not None:
        info["features"] = spec.to_json()
    return _save(predictor, args, info, seconds,
                 f"{args.model} adapted to {len(graphs)} {space} architectures and fine-tuned on {args.n}, "
                 f"target {target}, seed {args.seed} ({seconds:.1f} s)")


def cmd_eval(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from nas.errors import PredictorError
    from predictors import load_predictor
    from predictors.base import provenance
    from predictors.data import canonical_space, is_latency_target, labelled
    from predictors.features import saved_spec
    from predictors.metrics import latency_metrics, rank_metrics

    torch.set_num_threads(args.threads)
    info = provenance(args.model)
    predictor = load_predictor(args.model)
    if args.space is None and "space" not in info:
        raise PredictorError(f"{args.model} does not record its training space: give --space and --target")
    space = canonical_space(args.space or info["space"])
    target = _normalize_target(space, args.target or info.get("target", "cifar10_test_acc"), args.data_dir)
    seed = args.seed if args.seed is not None else int(info.get("seed", 0))
    base = labelled(space, "cifar10_test_acc" if target == "measured" else target, args.data_dir)
    drawn = _labelled_on(info, space, args.data_dir)
    unseen = np.array([i for i, a in enumerate(base.archs) if a not in drawn], dtype=np.int64)
    if args.n_test < 0:
        raise PredictorError(f"--n-test must be >= 0; got {args.n_test}")
    if args.n_test and args.n_test < len(unseen):
        unseen = np.random.default_rng([seed, 1]).choice(unseen, args.n_test, replace=False)
    rows = np.sort(unseen)
    y = _labels(space, target, rows, base.archs, args)
    archs = [base.archs[i] for i in rows]
    graphs = _graphs(space, archs, args.json, desc="test graphs")
    spec = saved_spec(predictor, info, where=args.model, space=space)
    mean, std = predictor.predict(graphs, features=_features(spec, graphs, archs, args))
    metrics = rank_metrics(mean, y)
    if is_latency_target(target):
        metrics.update(latency_metrics(mean, y))
    result = {"model": str(args.model), "space": space, "target": target, "n_test": int(rows.size),
              "excluded_training": len(drawn), "metrics": metrics, "mean_std": float(np.mean(std))}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    seen = f"its {len(drawn)} labelled training architectures left out" if drawn else "zero-shot"
    print(f"{args.model} on {rows.size} {space} architectures ({seen}), target {target}")
    for k, v in metrics.items():
        print(f"  {k:18s} {v:.4f}")
    return 0


def _labelled_on(info: dict[str, Any], space: str, data_dir: str | None) -> set[str]:
    """The architectures of ``space`` whose labels the saved predictor with provenance ``info`` was
    trained or fine-tuned on, whatever the target (one architecture's accuracies are close across
    columns): each step's ``n`` drawn with its ``seed``, following ``finetuned_from``."""
    import numpy as np

    from predictors.data import canonical_space, labelled

    out: set[str] = set()
    step: Any = info
    while isinstance(step, dict):
        n = int(step.get("n", 0))
        if n and "space" in step and canonical_space(step["space"]) == space:
            target = step.get("target", "cifar10_test_acc")
            base = labelled(space, "cifar10_test_acc" if target == "measured" else target, data_dir)
            order = np.random.default_rng(int(step.get("seed", 0))).permutation(len(base))
            out.update(base.archs[i] for i in order[:n])
        step = step.get("finetuned_from")
    return out


def cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from nas.errors import PredictorError
    from nas.ir import ArchGraph
    from predictors import load_predictor
    from predictors.base import provenance
    from predictors.features import saved_spec

    torch.set_num_threads(args.threads)
    predictor = load_predictor(args.model)
    names: list[str] = []
    graphs: list[ArchGraph] = []
    archs: list[str] = []
    shape = tuple(int(x) for x in args.input_shape.split(",")) if args.input_shape else None
    spec = saved_spec(predictor, provenance(args.model), where=args.model, space=args.space or "")
    if args.files and spec is not None and spec.kind == "geno":
        raise PredictorError(f"{args.model} reads a space's genotype encoding (features geno): give --space and "
                             f"--arch, not ONNX files")
    for f in args.files:
        graphs.append(ArchGraph.from_onnx(f, input_shapes=shape))
        names.append(str(f))
    if args.arch:
        if args.space is None:
            raise PredictorError("--arch needs --space")
        from search_spaces import space_from_spec

        space = space_from_spec(args.space)
        if spec is not None:
            spec.check_space(args.space, where=args.model)
        for a in args.arch:
            g = space.parse(a)
            graphs.append(space.to_graph(g))
            names.append(space.format(g))
            archs.append(space.format(g))
    if not graphs:
        raise PredictorError("nothing to predict: give ONNX files, or --space with --arch")
    mean, std = predictor.predict(graphs, features=_features(spec, graphs, archs if not args.files else None, args))
    rows = [{"model": n, "mean": float(m), "std": float(s)} for n, m, s in zip(names, mean, std, strict=True)]
    if args.json:
        print(json.dumps({"predictor": str(args.model), "predictions": rows}, indent=2))
        return 0
    unit = getattr(getattr(predictor, "config", None), "unit", "")
    for r in rows:
        print(f"{r['mean']:.6g} ± {r['std']:.3g}{' ' + unit if unit else ''}  {r['model']}")
    return 0
