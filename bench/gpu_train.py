"""GPU training throughput of ``NextItemModel`` (sampled softmax, 50k items) on synthetic cases.

A script for a rented GPU machine with Keras and JAX but no TensorFlow: it needs only what
``recommendations.ml`` needs (``keras``, ``numpy``, ``pandas``: the ``ml`` extra) and a Keras
backend; no Django once ``recommendations.ml`` no longer imports it. Run it from anywhere:

    KERAS_BACKEND=jax python bench/gpu_train.py            # 50k items, 1M cases, 3 epochs
    KERAS_BACKEND=tensorflow python bench/gpu_train.py --quick   # tiny smoke run on a CPU

What it measures: ``recommendations.ml.model.NextItemModel`` built as
``training.NextItemRecommender`` builds it, with its default parameters (read from the
library: ``NextItemRecommender().get_params()``), for a catalogue above ``sampled_softmax_above``
(sampled softmax with in-batch and popularity negatives, the repeat and co-occurrence prior
terms), compiled with the same optimizer and loss, trained with ``model.fit`` on numpy
arrays for 3 epochs, once per batch size (4096 and 8192 by default; ``--runs 8192x8`` adds
``steps_per_execution`` 8, which was 18x slower than 1 with JAX on a CPU, so it is not a
default). A callback times each epoch; samples/s = cases / epoch seconds. The first epoch
includes compilation, so the steady figure is the median of the later epochs. Past
``--max-seconds`` (480) a run stops at the end of its epoch and no new run starts. Target:
≥ 500,000 samples/s on one H200.

The cases are synthetic (no data set is needed on the GPU machine): histories of 1..20 items
(short ones most common, as in real sessions) drawn from a Zipf-like popularity over the
catalogue, a next item that repeats a history item 30% of the time, event types, age buckets
and context features in the model's input ranges, and random co-occurrence neighbour
tables. Throughput depends on the shapes, not on the values.

Nothing is installed. Results are printed and, when ``$OUT`` is set, written to
``$OUT/gpu_results.json`` after every run (so a crash later keeps what was measured).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Mirrors FeatureSpec: 2 x (4 event types + padding) type slots, 24 age buckets, 32 + 5 context columns.
N_TYPE_SLOTS = 10
N_AGE_BUCKETS = 24
CONTEXT_DIM = 37
N_CATEGORIES = 400


def recommender_defaults() -> dict[str, Any]:
    """The learned model's default parameters, from the library (they change as the model improves)."""
    from recommendations.ml.training import NextItemRecommender

    return NextItemRecommender().get_params()


def synthetic_cases(n_cases: int, n_items: int, length: int, seed: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    ranks = np.arange(1, n_items + 1, dtype=np.float64)
    popularity = 1.0 / (ranks + 10.0)
    popularity /= popularity.sum()
    lengths = np.minimum(1 + rng.geometric(0.25, n_cases), length)
    items = rng.choice(n_items, size=(n_cases, length), p=popularity).astype(np.int32) + 1
    present = np.arange(length)[None, :] >= (length - lengths)[:, None]  # left-padded
    items = np.where(present, items, 0).astype(np.int32)
    kinds = rng.choice(4, size=(n_cases, length), p=[0.95, 0.03, 0.015, 0.005]) + 1
    in_session = rng.random((n_cases, length)) < 0.8
    types = np.where(present, kinds + 5 * in_session, 0).astype(np.int32)
    ages = np.where(present, rng.integers(1, N_AGE_BUCKETS - 1, (n_cases, length)), 0).astype(np.int32)
    context = rng.random((n_cases, CONTEXT_DIM), dtype=np.float32)
    fresh = rng.choice(n_items, size=n_cases, p=popularity).astype(np.int32) + 1
    repeat = items[np.arange(n_cases), length - 1 - rng.integers(0, lengths)]
    target = np.where(rng.random(n_cases) < 0.3, repeat, fresh).astype(np.int32)
    counts = np.bincount(target, minlength=n_items + 1).astype(np.float64) + 1.0
    counts[0] = 0.0
    log_probability = np.log(np.maximum(counts / counts.sum(), 1e-12))
    log_probability[0] = -1e9
    bias = log_probability - log_probability[1:].mean()
    bias[0] = 0.0
    return {
        "x": {"items": items, "types": types, "ages": ages, "context": context, "target": target},
        "y": np.zeros(n_cases, dtype=np.int32),
        "weights": np.ones(n_cases, dtype=np.float32),
        "log_probability": log_probability,
        "bias": bias,
        "item_category": rng.integers(1, N_CATEGORIES + 1, n_items + 1).astype(np.int32),
    }


def build_model(data: dict[str, Any], n_items: int, params: dict[str, Any], seed: int) -> tuple[Any, Any]:
    """The model, built and with its priors set, and its optimizer (as ``training`` makes them)."""
    import keras
    import numpy as np

    from recommendations.ml.model import NextItemModel

    wanted = {
        "n_items": n_items,
        "item_category": data["item_category"].tolist(),
        "n_categories": N_CATEGORIES + 1,
        "context_dim": CONTEXT_DIM,
        "n_type_slots": N_TYPE_SLOTS,
        "n_age_buckets": N_AGE_BUCKETS,
        "embedding_dim": params["embedding_dim"],
        "hidden_units": tuple(params["hidden_units"]),
        "attention_units": params["attention_units"],
        "dropout": params["dropout"],
        "sampled": True,
        "n_negatives": min(params["n_negatives"], n_items),
        "item_log_probability": data["log_probability"].tolist(),
        "seed": seed,
        "history_length": params["history_length"],
        "repeat": params["repeat"],
        "n_priors": len(params["priors"]) if params["n_neighbours"] else 0,  # as training counts them
        "n_neighbours": params["n_neighbours"],
        "item_bias_init": data["bias"].tolist(),
        "prior_window": params["prior_window"],
        "mixture": params["mixture"],
    }
    accepted = inspect.signature(NextItemModel).parameters
    model = NextItemModel(**{name: value for name, value in wanted.items() if name in accepted})
    model({name: value[:1] for name, value in data["x"].items()})  # build
    k = params["n_neighbours"]
    if k and hasattr(model, "set_priors") and getattr(model, "n_priors", 0):
        rng = np.random.default_rng(seed)
        neighbours = rng.integers(1, n_items + 1, (model.n_priors, n_items + 1, k)).astype(np.int32)
        scores = rng.random((model.n_priors, n_items + 1, k), dtype=np.float32)
        model.set_priors(neighbours, scores)
    optimizer = keras.optimizers.AdamW(params["learning_rate"], weight_decay=params["weight_decay"])
    if hasattr(model, "scalar_variables"):  # as training does: no decay on the few scalars
        optimizer.exclude_from_weight_decay(var_list=model.scalar_variables())
    return model, optimizer


def devices() -> tuple[str, list[str]]:
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            return backend, [str(device) for device in jax.devices()]
        if backend == "tensorflow":
            import tensorflow as tf

            return backend, [device.name for device in tf.config.list_logical_devices()]
        if backend == "torch":
            import torch

            return backend, [torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"]
    except Exception as exc:  # reporting only
        return backend, [f"unknown ({exc!r})"]
    return backend, ["unknown"]


def train_once(
    data: dict[str, Any],
    n_items: int,
    params: dict[str, Any],
    batch_size: int,
    epochs: int,
    steps_per_execution: int,
    deadline: float | None = None,
) -> dict[str, Any]:
    """One model trained for ``epochs``; stops after the epoch that ends past ``deadline``."""
    import keras

    keras.utils.set_random_seed(params["random_state"])
    started = time.perf_counter()
    model, optimizer = build_model(data, n_items, params, params["random_state"])
    compile_kwargs: dict[str, Any] = {
        "optimizer": optimizer,
        "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    }
    if steps_per_execution > 1:
        compile_kwargs["steps_per_execution"] = steps_per_execution
    model.compile(**compile_kwargs)
    build_seconds = time.perf_counter() - started
    n_cases = len(data["y"])
    epoch_rows: list[dict[str, float]] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            seconds = time.perf_counter() - self.started
            row = {
                "epoch": epoch + 1,
                "seconds": round(seconds, 3),
                "samples_per_second": round(n_cases / seconds, 1),
                "loss": float((logs or {}).get("loss", float("nan"))),
            }
            epoch_rows.append(row)
            print(
                f"  batch {batch_size} (steps_per_execution {steps_per_execution}) epoch {row['epoch']}: "
                f"{row['seconds']:.2f} s, {row['samples_per_second']:,.0f} samples/s, loss {row['loss']:.4f}",
                flush=True,
            )
            if deadline is not None and time.perf_counter() > deadline:
                print("  over --max-seconds: stopping after this epoch", flush=True)
                self.model.stop_training = True

    fit_started = time.perf_counter()
    model.fit(
        data["x"],
        data["y"],
        sample_weight=data["weights"],
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[Timer()],
    )
    later = [row["samples_per_second"] for row in epoch_rows[1:]]
    return {
        "batch_size": batch_size,
        "steps_per_execution": steps_per_execution,
        "epochs": epoch_rows,
        "first_epoch_samples_per_second": epoch_rows[0]["samples_per_second"] if epoch_rows else None,
        "steady_samples_per_second": statistics.median(later) if later else None,
        "build_seconds": round(build_seconds, 3),
        "fit_seconds": round(time.perf_counter() - fit_started, 3),
    }


def parse_configs(text: str) -> list[tuple[int, int]]:
    """``"4096,8192,8192x8"`` -> [(4096, 1), (8192, 1), (8192, 8)]: batch size x steps_per_execution."""
    configs = []
    for part in text.split(","):
        batch, _, steps = part.strip().partition("x")
        configs.append((int(batch), int(steps or 1)))
    return configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run on a CPU")
    parser.add_argument("--items", type=int, help="catalogue size (default 50,000; --quick 20,000)")
    parser.add_argument("--cases", type=int, help="training cases (default 1,000,000; --quick 4,096)")
    parser.add_argument("--epochs", type=int, help="epochs per run (default 3; --quick 2)")
    parser.add_argument(
        "--runs",
        help="batch sizes, each optionally xSTEPS for steps_per_execution (default 4096,8192; --quick 512)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=480.0,
        help="after this long, stop at the end of the current epoch and start no new run",
    )
    args = parser.parse_args(argv)
    n_items = args.items or (20_000 if args.quick else 50_000)
    n_cases = args.cases or (4_096 if args.quick else 1_000_000)
    epochs = args.epochs or (2 if args.quick else 3)
    configs = parse_configs(args.runs or ("512" if args.quick else "4096,8192"))

    started = time.perf_counter()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import keras
    import numpy as np

    backend, device_list = devices()
    print(
        f"backend {backend}, Keras {keras.__version__}, devices {device_list}",
        flush=True,
    )
    params = recommender_defaults()
    data = synthetic_cases(n_cases, n_items, params["history_length"], seed=0)
    print(
        f"{n_cases:,} synthetic cases over {n_items:,} items ({time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    out_dir = os.environ.get("OUT")
    results: dict[str, Any] = {
        "script": "bench/gpu_train.py",
        "quick": args.quick,
        "backend": backend,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "devices": device_list,
        "n_items": n_items,
        "n_cases": n_cases,
        "epochs": epochs,
        "history_length": params["history_length"],
        "model_params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
        "target_samples_per_second": 500_000,
        "runs": [],
    }

    def save() -> None:
        if out_dir:
            path = Path(out_dir) / "gpu_results.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=2) + "\n")

    for batch_size, steps in configs:
        if time.perf_counter() - started > args.max_seconds:
            print(
                f"skipping batch {batch_size}x{steps}: over --max-seconds {args.max_seconds:.0f}", flush=True
            )
            results["runs"].append(
                {"batch_size": batch_size, "steps_per_execution": steps, "skipped": "time"}
            )
            continue
        try:
            deadline = started + args.max_seconds
            run = train_once(data, n_items, params, batch_size, epochs, steps, deadline)
        except Exception as exc:  # keep the other runs' figures
            print(f"batch {batch_size}x{steps} failed: {exc!r}", flush=True)
            run = {"batch_size": batch_size, "steps_per_execution": steps, "error": repr(exc)}
        results["runs"].append(run)
        steady = run.get("steady_samples_per_second")
        if steady:
            print(f"batch {batch_size}x{steps}: steady {steady:,.0f} samples/s", flush=True)
        save()
    results["seconds"] = round(time.perf_counter() - started, 1)
    best = max((r.get("steady_samples_per_second") or 0 for r in results["runs"]), default=0)
    results["best_steady_samples_per_second"] = best
    results["target_met"] = best >= 500_000
    save()
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=1), flush=True)
    failed = [r for r in results["runs"] if "error" in r]
    return 1 if failed and len(failed) == len(results["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
