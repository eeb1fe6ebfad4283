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
        return user, mix.astype(np.float32)

    def scores(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """float32 [n, n_items + 1]: every item scored; column 0 (padding) is -inf.

        Besides the matrix product, history items get their repeat logits and their
        co-occurrence neighbours the priors' (one small gather per history position).
        """
        user, mix = self.forward(inputs)
        scores = user @ self.item_table.T + self.item_bias
        w = self.weights
        if "repeat_type" in w:
            items, types, ages = inputs["items"], inputs["types"], inputs["ages"]
            n, length = items.shape
            rows = np.arange(n)
            positions = np.arange(len(w["repeat_position"]) - length, len(w["repeat_position"]))
            mask = (items > 0).astype(np.float32)
            repeat = (
                w["repeat_type"][types] + w["repeat_age"][ages] + w["repeat_position"][positions]
            ) + mix[:, :1]
            repeat *= mask
            for m in range(len(w["prior_type"])):
                weight = (
                    w["prior_type"][m][types] + w["prior_age"][m][ages] + w["prior_position"][m][positions]
                )
                weight = (weight + mix[:, 1 + m : 2 + m]) * mask
                for p in range(length):
                    # Neighbours of one item are distinct (only padding 0 repeats, and it is -inf).
                    scores[rows[:, None], w["prior_items"][m][items[:, p]]] += (
                        weight[:, p, None] * w["prior_scores"][m][items[:, p]]
                    )
            for p in range(length):
                scores[rows, items[:, p]] += repeat[:, p]
        scores[:, 0] = -np.inf
        return scores.astype(np.float32, copy=False)
