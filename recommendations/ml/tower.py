"""The user tower in numpy, from exported weights: what serving and evaluation run.

It repeats ``NextItemModel.user_vector`` operation for operation (a test proves the two
agree), so a web process scores items with one float32 matrix product and never imports
TensorFlow.
"""

from __future__ import annotations

from ..extras import require

np = require("ml", "numpy")


class NumpyTower:
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = {name: np.asarray(value) for name, value in weights.items()}
        self.n_hidden = sum(
            1 for name in self.weights if name.startswith("hidden_") and name.endswith("_kernel")
        )
        self.item_table = self.weights["item_embedding"].astype(np.float32)
        self.item_bias = self.weights["item_bias"].astype(np.float32)

    def user_vectors(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.forward(inputs)[0]

    def forward(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(user vectors [n, D], mix [n, 1 + n_priors]) as ``NextItemModel.tower``."""
        user, mix, _ = self.forward_with_attention(inputs)
        return user, mix

    def forward_with_attention(
        self, inputs: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``forward`` plus the attention weight of each history position [n, L] (for reasons)."""
        w = self.weights
        items = inputs["items"]
        mask = (items > 0).astype(np.float32)
        history = (
            w["item_embedding"][items]
            + w["category_embedding"][w["item_category"][items]]
            + w["type_embedding"][inputs["types"]]
            + w["age_embedding"][inputs["ages"]]
        ) * mask[..., None]
        hidden = np.tanh(history @ w["attention_hidden_kernel"] + w["attention_hidden_bias"])
        scores = (hidden @ w["attention_score_kernel"])[..., 0]
        scores = np.where(mask > 0, scores, -1e9)
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights = scores / scores.sum(axis=1, keepdims=True) * mask
        pooled = (history * weights[..., None]).sum(axis=1)
        hidden = np.concatenate([pooled, history[:, -1, :], inputs["context"].astype(np.float32)], axis=1)
        for i in range(self.n_hidden):
            hidden = np.maximum(hidden @ w[f"hidden_{i}_kernel"] + w[f"hidden_{i}_bias"], 0.0)
        user = (hidden @ w["user_projection_kernel"] + w["user_projection_bias"]).astype(np.float32)
        mix = hidden @ w["mix_kernel"] + w["mix_bias"] if "mix_kernel" in w else np.zeros((len(items), 1))
        return user, mix.astype(np.float32), weights

    def history_terms(
        self, inputs: dict[str, np.ndarray], mix: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(repeat logit [n, L], prior weights [n_priors, n, L]) of each history position,
        or None for a model without the repeat and prior mechanisms."""
        w = self.weights
        if "repeat_type" not in w:
            return None
        items, types, ages = inputs["items"], inputs["types"], inputs["ages"]
        length = items.shape[1]
        positions = np.arange(len(w["repeat_position"]) - length, len(w["repeat_position"]))
        mask = (items > 0).astype(np.float32)
        repeat = (w["repeat_type"][types] + w["repeat_age"][ages] + w["repeat_position"][positions]) + mix[
            :, :1
        ]
        priors = np.stack(
            [
                (
                    w["prior_type"][m][types]
                    + w["prior_age"][m][ages]
                    + w["prior_position"][m][positions]
                    + mix[:, 1 + m : 2 + m]
                )
                * mask
                for m in range(len(w["prior_type"]))
            ]
        )
        return repeat * mask, priors

    def scores(
        self, inputs: dict[str, np.ndarray], forward: tuple[np.ndarray, np.ndarray] | None = None
    ) -> np.ndarray:
        """float32 [n, n_items + 1]: every item scored; column 0 (padding) is -inf.

        Besides the matrix product, history items get their repeat logits and their
        co-occurrence neighbours the priors' (one small gather per history position).
        ``forward`` passes ``forward(inputs)`` when the caller already has it.
        """
        user, mix = forward if forward is not None else self.forward(inputs)
        scores = user @ self.item_table.T + self.item_bias
        terms = self.history_terms(inputs, mix)
        if terms is not None:
            w = self.weights
            repeat, priors = terms
            items = inputs["items"]
            rows = np.arange(len(items))
            for m, weight in enumerate(priors):
                for p in range(items.shape[1]):
                    # Neighbours of one item are distinct (only padding 0 repeats, and it is -inf).
                    scores[rows[:, None], w["prior_items"][m][items[:, p]]] += (
                        weight[:, p, None] * w["prior_scores"][m][items[:, p]]
                    )
            for p in range(items.shape[1]):
                scores[rows, items[:, p]] += repeat[:, p]
        scores[:, 0] = -np.inf
        return scores.astype(np.float32, copy=False)

    def contributions(
        self, inputs: dict[str, np.ndarray], mix: np.ndarray, attention: np.ndarray, candidates: np.ndarray
    ) -> np.ndarray:
        """[L, J]: how much each history position of case 0 adds to each candidate's score.

        The repeat and co-occurrence terms are exact (the score is their sum); the user
        vector's share is approximated by the position's attention weight times the cosine
        of the two item embeddings. Serving names the largest as the reason.
        """
        items = inputs["items"][0]
        table = self.item_table
        history = table[items]
        chosen = table[candidates]
        norms = np.linalg.norm(history, axis=1)[:, None] * np.linalg.norm(chosen, axis=1)[None, :]
        result = attention[0][:, None] * (history @ chosen.T) / np.maximum(norms, 1e-9)
        terms = self.history_terms(inputs, mix)
        if terms is not None:
            repeat, priors = terms
            w = self.weights
            for m in range(len(priors)):
                neighbours = w["prior_items"][m][items]  # [L, k]
                match = neighbours[:, :, None] == candidates[None, None, :]  # [L, k, J]
                scores = (w["prior_scores"][m][items][:, :, None] * match).sum(axis=1)
                result += priors[m][0][:, None] * scores
            result += repeat[0][:, None] * (items[:, None] == candidates[None, :])
        result[items == 0] = -np.inf
        return result
