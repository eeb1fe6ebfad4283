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
        return (hidden @ w["user_projection_kernel"] + w["user_projection_bias"]).astype(np.float32)

    def scores(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """float32 [n, n_items + 1]: every item scored; column 0 (padding) is -inf."""
        scores = self.user_vectors(inputs) @ self.item_table.T + self.item_bias
        scores[:, 0] = -np.inf
        return scores
