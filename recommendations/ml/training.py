"""Training the Keras model on cases, with early stopping on a later-in-time slice.

``NextItemRecommender`` wraps it in the ``Recommender`` interface, so the same object is
evaluated against the baselines and exported for serving. Progress goes to a callback
(one line per epoch) so a Celery task or a command can show it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..extras import require
from .base import Recommender
from .cases import CaseBatch, training_cases, unix_seconds
from .features import PRIORS, FeatureSpec, ItemFeatures, featurize, item_priors
from .frames import release_unused_memory
from .model import NextItemModel, export_weights
from .tower import NumpyTower, PriorTable

keras = require("ml", "keras")
np = require("ml", "numpy")
pd = require("ml", "pandas")

logger = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]
#: Float weights of the model that are data, never trained.
FIXED = ("item_log_probability", "prior_scores", "item_id_scale")
#: The two training stages, as logs, the admin and the loss chart name them.
STAGE_NAMES = {1: "scalars: popularity, repeat and prior weights", 2: "embeddings and MLP"}


class EpochProgress(keras.callbacks.Callback):
    """Reports loss, validation loss and throughput after every epoch."""

    def __init__(self, n_samples: int, report: Progress | None) -> None:
        super().__init__()
        self.n_samples = n_samples
        self.report = report
        self.epochs: list[dict[str, Any]] = []
        self.stage = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self.started
        logs = logs or {}
        row = {
            "epoch": len(self.epochs) + 1,
            "stage": self.stage,
            "stage_epoch": epoch + 1,
            # None without a validation slice (the refit on every event) or when a loss
            # diverged: JSON has no NaN.
            "loss": _finite_or_none(logs.get("loss")),
            "val_loss": _finite_or_none(logs.get("val_loss")),
            "seconds": round(seconds, 3),
            "samples_per_second": round(self.n_samples / seconds, 1) if seconds else None,
        }
        self.epochs.append(row)
        logger.info("%s", describe_epoch(row))
        if self.report:
            self.report(row)


def _finite_or_none(value: Any) -> float | None:
    return None if value is None or not np.isfinite(float(value)) else float(value)


def describe_epoch(row: dict[str, Any]) -> str:
    """One line per epoch, naming its stage: what logs, commands and the admin print."""
    stage = row.get("stage")
    where = f"stage {stage} ({STAGE_NAMES.get(stage, '?')}) epoch {row.get('stage_epoch', row.get('epoch'))}"
    val_loss = row.get("val_loss")
    validation = "no validation" if val_loss is None else f"val_loss {val_loss:.4f}"
    speed = f", {row['samples_per_second']:,.0f} samples/s" if row.get("samples_per_second") else ""
    loss = "diverged" if row.get("loss") is None else f"{row['loss']:.4f}"
    return f"{where}: loss {loss}, {validation}{speed}"


class NextItemRecommender(Recommender):
    """The article's model: attention over recent items + context -> MLP -> item scores."""

    name = "mlp_attention"

    def __init__(
        self,
        *,
        embedding_dim: int = 64,
        hidden_units: tuple[int, ...] = (256, 256),
        attention_units: int = 64,
        dropout: float = 0.5,
        history_length: int = 20,
        epochs: int = 20,
        batch_size: int = 512,
        learning_rate: float = 1e-3,
        patience: int = 3,
        validation_fraction: float = 0.1,
        sampled_softmax_above: int = 20000,
        n_negatives: int = 1024,
        max_categories: int = 32,
        min_steps_per_epoch: int = 50,
        sampled_batch_size: int = 4096,
        weight_decay: float = 5.0,
        scalar_epochs: int = 10,
        max_cases: int | None = 300_000,
        repeat: bool = True,
        n_neighbours: int = 20,
        prior_window: int = 3,
        mixture: bool = True,
        gate_shift: float = 3.0,
        priors: tuple[str, ...] = ("transitions", "ease", "content"),
        content: bool = False,
        cold_item_count: float = 0.1,
        category_match: bool = True,
        category_scale: float = 2.0,
        freshness: float = 1.0,
        random_state: int = 0,
        progress: Progress | None = None,
    ) -> None:
        self.embedding_dim = embedding_dim
        self.hidden_units = hidden_units
        self.attention_units = attention_units
        self.dropout = dropout
        self.history_length = history_length
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.sampled_softmax_above = sampled_softmax_above
        self.n_negatives = n_negatives
        self.max_categories = max_categories
        self.min_steps_per_epoch = min_steps_per_epoch
        self.sampled_batch_size = sampled_batch_size
        self.weight_decay = weight_decay
        self.scalar_epochs = scalar_epochs
        # Training cases are the newest max_cases positions of the shoppers' timelines (their
        # histories, the vocabulary, popularity and the priors still come from every event):
        # a retrain's time is bounded whatever the log's size. 300,000 x (10 + up to 20) epochs
        # is about 10 minutes per fit at this 2-core host's 15,000 samples/s (BENCHMARKS.md,
        # Scale); None trains on every position. A compute budget, not a tuned value.
        self.max_cases = max_cases
        self.repeat = repeat
        # Co-occurrence priors: the n_neighbours best neighbours of each of the shopper's last
        # prior_window items (0: every position) add to those neighbours' explore scores.
        self.n_neighbours = n_neighbours
        self.prior_window = prior_window
        # p = g P_repeat + (1 - g) P_explore with a gate per case (RepeatNet); False adds the
        # repeat logit to the item's score instead (the first design: weaker on repeat cases).
        self.mixture = mixture
        # Added to the repeat gate's logit after training. The mixture is fitted for likelihood,
        # which spreads probability over the catalogue; a ranked list does better when the
        # shopper's own items come first more often. 3 was chosen on validation windows of the
        # training side of both benchmark logs (3 and 4 tied, 0 was worst), never on test data;
        # ``python -m bench selection`` shows the comparison.
        self.gate_shift = gate_shift
        # Item-item priors by name (``features.PRIORS``): "cooccurrence" (session cosine),
        # "transitions" (what follows an item), "ease" (EASE's weights, the strongest baseline
        # on new items; over the 5,000 most popular items), "content" (items of the same
        # category nearest in price, half of them items without events: how a new product
        # gets into a list). "content" was added on the dev splits of both logs' training
        # sides (MRR@20 new 0.209 -> 0.229 on REES46, 0.097 -> 0.141 on Diginetica), never
        # on their test parts; ``python -m bench selection`` shows the comparison.
        self.priors = priors
        # Content-aware item vectors (ID embedding for items with training events + category
        # and price-bucket embeddings), in the history and the output table: items without
        # events are scored by their content (see NextItemModel.item_vectors).
        self.content = content
        # The pseudo-count behind the popularity bias of catalogue items without training
        # events ("cold": a new product). 0 would leave them at the bias of an item nobody can
        # choose, so they never reach a list the model ranks; 1 gives them that of an item
        # with events but never chosen next. On the dev splits (``python -m bench selection``)
        # 1 let Diginetica's 180k event-less products crowd out the ones shoppers choose
        # (new MRR@20 0.151 against 0.160 with 0.1, which ties 0); 0.1 keeps a new product
        # ahead of other categories in its own category's shoppers' lists.
        self.cold_item_count = cold_item_count
        # A learned boost of every item in the categories of the shopper's history
        # (NextItemModel.category_match). Chosen on the dev splits: new MRR@20 0.272 -> 0.281
        # on REES46, 0.141 -> 0.151 on Diginetica (HR@20 0.379 -> 0.457).
        self.category_match = category_match
        # The category match's learned weights are multiplied by this after training, as
        # ``gate_shift`` moves the gate: fitted for the likelihood of every next item, they
        # leave a ranked list too many items of other categories. 2 was chosen on the dev
        # splits with prior_window 3: new MRR@20 0.171 -> 0.179 on Diginetica (HR@20 0.523 ->
        # 0.546), 0.279 -> 0.282 on REES46; 1.5 and 3 close behind.
        self.category_scale = category_scale
        # New arrivals first among new products: an item without training events gets
        # freshness x -log(1 + hours since it was listed) (``NumpyTower.add_freshness``).
        # Chosen on the dev splits (``python -m bench selection``): Diginetica cold MRR@20
        # 0.016 -> 0.65 (the cold_newest baseline: 0.58), REES46 unchanged; 0.5 to 4 tie.
        self.freshness = freshness
        self.random_state = random_state
        self.progress = progress

    def get_params(self) -> dict[str, Any]:
        names = (
            "embedding_dim", "hidden_units", "attention_units", "dropout", "history_length", "epochs",
            "batch_size", "learning_rate", "patience", "validation_fraction", "sampled_softmax_above",
            "n_negatives", "max_categories", "min_steps_per_epoch", "sampled_batch_size", "weight_decay", "scalar_epochs", "max_cases", "repeat", "n_neighbours", "prior_window", "mixture", "gate_shift", "priors", "content", "cold_item_count", "category_match", "category_scale", "freshness", "random_state",
        )  # fmt: skip
        params = {name: getattr(self, name) for name in names}
        params["hidden_units"] = list(params["hidden_units"])
        params["priors"] = list(params["priors"])
        return params

    def _inputs(self, cases: CaseBatch) -> dict[str, np.ndarray]:
        return featurize(cases, self.feature_spec_, self.item_features_)

    def fit(
        self, train: pd.DataFrame, n_items: int, item_features: ItemFeatures | None = None
    ) -> NextItemRecommender:
        started = time.perf_counter()
        unknown = [name for name in self.priors if name not in PRIORS]
        if unknown:
            raise ValueError(f"unknown priors {unknown}; expected some of {', '.join(PRIORS)}")
        self.priors_ = tuple(self.priors) if self.n_neighbours else ()  # no neighbours: no priors
        keras.utils.set_random_seed(self.random_state)
        self.n_items_ = int(n_items)
        self.item_features_ = item_features or ItemFeatures.unknown(n_items)
        self.feature_spec_ = FeatureSpec.fit(
            train, self.item_features_, self.history_length, self.max_categories
        )
        cases = training_cases(train, max_history=self.history_length, newest=self.max_cases)
        if len(cases) == 0:
            raise ValueError("no training cases: every shopper has a single item event")
        order = np.argsort(cases.now, kind="stable")
        n_val = int(len(cases) * self.validation_fraction) if len(cases) >= 50 else 0
        fit_cases, val_cases = (
            cases.take(order[: len(cases) - n_val]),
            cases.take(order[len(cases) - n_val :]),
        )
        # Early stopping must not see its own answers: while the model learns, its priors count
        # only the events before the validation slice (``prior_cut_``); the final model's priors
        # count every training event. (Tried on dev splits of the training side: also holding
        # the priors' events out of the fitting cases, 30-70 % of them, was worse on new items.)
        self.prior_cut_ = float(val_cases.now.min()) if self.priors_ and n_val else None

        # Items with training events get +1 (so a rare one is still drawn as a negative);
        # catalogue items without any (cold: known by their content only) get none: they
        # would otherwise fill the sampled negatives of a big catalogue with items no
        # shopper ever chose (on Diginetica's 184k products, 97 % of the draws).
        warm = np.zeros(n_items + 1, dtype=bool)
        warm[cases.targets] = True
        warm[cases.items[cases.items > 0]] = True
        warm[0] = False
        counts = np.bincount(fit_cases.targets, minlength=n_items + 1).astype(np.float64) + warm
        log_probability = np.log(np.maximum(counts / counts.sum(), 1e-12))
        log_probability[0] = -1e9
        cold = ~warm
        cold[0] = False
        biased = counts + cold * max(float(self.cold_item_count), 0.0)
        bias = np.log(np.maximum(biased / counts.sum(), 1e-12))
        bias -= bias[warm].mean() if warm.any() else 0.0
        bias[0] = 0.0
        self.sampled_ = n_items > self.sampled_softmax_above
        self.model_ = NextItemModel(
            n_items=n_items,
            item_category=self.item_features_.category.tolist(),
            n_categories=self.item_features_.n_categories,
            context_dim=self.feature_spec_.context_dim,
            n_type_slots=self.feature_spec_.n_type_slots,
            n_age_buckets=self.feature_spec_.n_age_buckets,
            embedding_dim=self.embedding_dim,
            hidden_units=tuple(self.hidden_units),
            attention_units=self.attention_units,
            dropout=self.dropout,
            sampled=self.sampled_,
            n_negatives=min(self.n_negatives, n_items),
            item_log_probability=log_probability.tolist(),
            seed=self.random_state,
            history_length=self.history_length,
            repeat=self.repeat,
            n_priors=len(self.priors_),
            n_neighbours=self.n_neighbours,
            item_bias_init=bias.tolist(),
            prior_window=self.prior_window,
            mixture=self.mixture,
            content=self.content,
            item_price_bucket=self.item_features_.price_bucket.tolist(),
            n_price_buckets=max(
                self.item_features_.n_price_buckets, int(self.item_features_.price_bucket.max(initial=0))
            ),
            item_has_id=warm.tolist(),
            **self._content_tables(),
            category_match=self.category_match,
        )
        x, y = self._xy(fit_cases)
        self.model_({name: value[:1] for name, value in x.items()})  # build, then set the priors
        if self.priors_:
            prior_events = train
            if self.prior_cut_ is not None:  # the events before the validation slice
                before = unix_seconds(train["timestamp"]) < self.prior_cut_
                n_before = int(before.sum())
                # In time order they are the first rows: a slice, not a copy of the frame.
                prefix = before[:n_before].all()
                prior_events = train.iloc[:n_before] if prefix else train[before]
            self.model_.set_priors(
                *item_priors(prior_events, n_items, self.priors_, self.n_neighbours, self.item_features_)
            )
            del prior_events
        release_unused_memory()  # what building the cases and priors freed, before Keras takes more
        # Big catalogues (sampled softmax) take big batches: each step updates the whole item
        # table, so steps are what cost. Small data: smaller batches, so an epoch still takes
        # enough optimizer steps.
        wanted = max(self.batch_size, self.sampled_batch_size) if self.sampled_ else self.batch_size
        self.batch_size_ = int(max(16, min(wanted, -(-len(fit_cases) // max(self.min_steps_per_epoch, 1)))))
        progress = EpochProgress(len(fit_cases), self.progress)
        validation = (*self._xy(val_cases), val_cases.weights) if n_val else None
        scalars = {id(v) for v in self.model_.scalar_variables()}
        best = float("inf")
        stages: list[dict[str, Any]] = []
        # Stage 1 fits only the few scalars (popularity, repeat and prior weights) to convergence;
        # stage 2 adds the embeddings and the MLP, and is kept only if validation improves.
        for stage, epochs in ((1, self.scalar_epochs), (2, self.epochs)):
            if epochs <= 0:
                continue
            for variable in self.model_.trainable_variables + self.model_.non_trainable_variables:
                if variable.dtype.startswith("float") and not variable.path.endswith(FIXED):
                    variable.trainable = stage == 2 or id(variable) in scalars
            optimizer = keras.optimizers.AdamW(self.learning_rate, weight_decay=self.weight_decay)
            # Decay pulls embeddings and the MLP towards zero; the scalars stay free.
            optimizer.exclude_from_weight_decay(var_list=self.model_.scalar_variables())
            self.model_.compile(
                optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            )
            callbacks: list[Any] = [progress]
            if n_val:
                callbacks.append(
                    keras.callbacks.EarlyStopping(
                        monitor="val_loss", patience=self.patience, restore_best_weights=True
                    )
                )
            before = self.model_.get_weights()
            done = len(progress.epochs)
            progress.stage = stage
            self.model_.fit(
                x,
                y,
                sample_weight=fit_cases.weights,
                batch_size=self.batch_size_,
                epochs=epochs,
                validation_data=validation,
                callbacks=callbacks,
                shuffle=True,
                verbose=0,
            )
            rows = progress.epochs[done:]
            stages.append(self._stage_record(stage, rows, best, before if n_val else None))
            if stages[-1]["kept"] and stages[-1]["best_val_loss"] is not None:
                best = stages[-1]["best_val_loss"]
        if self.prior_cut_ is not None:
            self.model_.set_priors(
                *item_priors(train, n_items, self.priors_, self.n_neighbours, self.item_features_)
            )
        if self.model_.category_match and self.category_scale != 1.0:
            for variable in (
                self.model_.category_type,
                self.model_.category_age,
                self.model_.category_position,
            ):
                variable.assign(variable * np.float32(self.category_scale))
        if self.model_.mixture and self.gate_shift:
            shift = np.eye(1, self.model_.mix.units, dtype=np.float32)[0] * np.float32(self.gate_shift)
            self.model_.mix.bias.assign(self.model_.mix.bias + shift)
        self.history_ = progress.epochs
        self.stages_ = stages
        self.n_train_cases_ = len(fit_cases)
        self.n_validation_cases_ = len(val_cases)
        seconds = [row["seconds"] for row in self.history_]
        self.samples_per_second_ = (
            float(np.median([len(fit_cases) / s for s in seconds if s])) if seconds else 0.0
        )
        self.tower_ = NumpyTower(self.export_weights())
        self.train_seconds_ = time.perf_counter() - started
        return self

    def _content_tables(self) -> dict[str, Any]:
        """The brand and top-level category of each item, for content-aware item vectors."""
        if not self.content:
            return {}
        size = self.n_items_ + 1

        def table(codes: np.ndarray | None) -> np.ndarray:
            return np.zeros(size, np.int64) if codes is None else np.asarray(codes, np.int64)[:size]

        brand, top = table(self.item_features_.brand), table(self.item_features_.top_category)
        return {
            "item_brand": brand.tolist(),
            "n_brands": int(brand.max(initial=0)),
            "item_top_category": top.tolist(),
            "n_top_categories": int(top.max(initial=0)),
        }

    def _stage_record(
        self, stage: int, rows: list[dict[str, Any]], best_before: float, before: list | None
    ) -> dict[str, Any]:
        """What a stage did; a stage that did not beat the one before gives its weights back."""
        losses = [np.nan if row["val_loss"] is None else row["val_loss"] for row in rows]
        record: dict[str, Any] = {
            "stage": stage,
            "name": STAGE_NAMES.get(stage, f"stage {stage}"),
            "epochs_run": len(rows),
            "best_epoch": None,
            "best_val_loss": None,
            "kept": True,
        }
        if before is None or not rows:  # no validation slice: every epoch is kept
            return record
        if np.isfinite(losses).any():
            best_index = int(np.nanargmin(losses))
            record["best_epoch"] = best_index + 1
            record["best_val_loss"] = float(losses[best_index])
        if record["best_val_loss"] is None or not record["best_val_loss"] < best_before:
            self.model_.set_weights(before)
            record["kept"] = False
            logger.warning(
                "Stage %d (%s) rejected: its best validation loss %s (epoch %s) is not below %.4f "
                "before it; the weights from before it were restored.",
                stage, record["name"], record["best_val_loss"] or "diverged", record["best_epoch"] or "-",
                best_before,
            )  # fmt: skip
        else:
            logger.info(
                "Stage %d (%s) kept: best validation loss %.4f at its epoch %d of %d.",
                stage, record["name"], record["best_val_loss"], record["best_epoch"], len(rows),
            )  # fmt: skip
        return record

    @property
    def learned_mlp(self) -> bool:
        """Whether the embeddings and the MLP were trained and kept (stage 2 not rejected)."""
        return any(
            record["stage"] == 2 and record["kept"] and record["epochs_run"] for record in self.stages_
        )

    def refit_params(self) -> dict[str, Any]:
        """Parameters that repeat this fit on more events without a validation slice.

        Each stage runs for the epochs that were best on validation, a rejected stage for
        none, so the refit on every event (holdout included) ships what evaluation chose.
        """
        epochs = {record["stage"]: record["best_epoch"] or record["epochs_run"] for record in self.stages_}
        kept = {record["stage"]: record["kept"] for record in self.stages_}
        return {
            **self.get_params(),
            "scalar_epochs": epochs.get(1, 0) if kept.get(1, False) else 0,
            "epochs": epochs.get(2, 0) if kept.get(2, False) else 0,
            "validation_fraction": 0.0,
        }

    def fit_preprocessed(self, train: pd.DataFrame, preprocessor: Any) -> NextItemRecommender:
        return self.fit(train, int(preprocessor.n_items_), ItemFeatures.from_preprocessor(preprocessor))

    def _xy(self, cases: CaseBatch) -> tuple[dict[str, np.ndarray], np.ndarray]:
        x = self._inputs(cases)
        if self.sampled_:
            x["target"] = cases.targets.astype(np.int32)
            return x, np.zeros(len(cases), dtype=np.int32)  # the target is column 0
        return x, cases.targets.astype(np.int32)

    def export_weights(self) -> dict[str, np.ndarray]:
        """The Keras model's arrays, and the freshness term's (not part of the Keras model)."""
        weights = export_weights(self.model_)
        # The priors' dense [n_priors, n_items + 1, k] tables are mostly empty slots: a version
        # keeps their compressed rows, which serving maps from the file as they are.
        weights.update(PriorTable(weights.pop("prior_items"), weights.pop("prior_scores")).exported())
        # Which prior each row of the prior tables is: similar lists read co-view evidence there.
        weights["prior_names"] = np.asarray(self.priors_, dtype=str)
        added = self.item_features_.added
        if self.freshness and added is not None:
            weights["freshness"] = np.asarray(self.freshness, np.float32)
            weights["item_added"] = np.asarray(added, np.float64)[: self.n_items_ + 1]
        return weights

    def score(self, cases: CaseBatch) -> np.ndarray:
        return self.tower_.scores(self._inputs(cases), now=cases.now)

    def keras_scores(self, cases: CaseBatch) -> np.ndarray:
        """Scores from the Keras model itself (for the parity test with the numpy tower)."""
        scores = np.array(keras.ops.convert_to_numpy(self.model_(self._inputs(cases))), dtype=np.float32)
        scores[:, 0] = -np.inf
        self.tower_.add_freshness(scores, cases.now)  # a ranking term outside the Keras model
        return scores
