"""LightGBM model text, rewritten so that one pass over a customer's features serves every action.

Two rewrites of a fitted model's text (``Booster.model_to_string``), each read back by LightGBM itself:

* :func:`prune_action_splits`: in a model over customer features plus action columns, every split on an
  action column is decided once per action; each distinct resolved tree is kept once, with the actions
  that use it. A customer's trees are then walked once instead of once per action.
* :func:`merge_regressors`: plain regressors, one per action, become one model whose trees are summed per
  action (one LightGBM call instead of one per action).

Tree values are copied as text, so the rewritten models give the original numbers bit for bit; a model
these rewrites do not understand (not plain binary / L2, linear trees, ...) gives ``None`` and is
predicted as it is.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from features.models.lgbm import booster_predict, prediction_threads

_PRUNED_CUSTOMERS = 20_000  # customers per chunk of leaf indices
_ZERO = 1.0000000180025095e-35  # LightGBM's kZeroThreshold (a float constant)

_TREE_KEYS = frozenset(
    {
        "num_leaves", "num_cat", "split_feature", "split_gain", "threshold", "decision_type", "left_child",
        "right_child", "leaf_value", "leaf_weight", "leaf_count", "internal_value", "internal_weight",
        "internal_count", "cat_boundaries", "cat_threshold", "is_linear", "shrinkage",
    }
)  # fmt: skip
_PER_NODE = ("split_feature", "split_gain", "threshold", "decision_type", "internal_value", "internal_weight",
             "internal_count")  # fmt: skip
_PER_LEAF = ("leaf_value", "leaf_weight", "leaf_count")


def _parse_model(text: str) -> tuple[list[str], list[dict[str, str]], str] | None:
    """LightGBM model text as (header lines, trees as key -> value text, the text from ``end of trees``)."""
    start = text.find("\nTree=0\n")
    end = text.find("\nend of trees")
    if start < 0 or end < 0:
        return None
    header = [line for line in text[: start + 1].splitlines() if not line.startswith("tree_sizes=")]
    trees: list[dict[str, str]] = []
    for line in text[start + 1 : end].splitlines():
        if line.startswith("Tree="):
            trees.append({})
        elif line:
            key, _, value = line.partition("=")
            trees[-1][key] = value
    return header, trees, text[end + 1 :]


def _goes_left(tree: dict, node: int, fval: float) -> bool:
    """LightGBM's decision at ``node`` for a non-missing value (``Tree::NumericalDecision``/``CategoricalDecision``)."""
    dtype = int(tree["decision_type"][node])
    if dtype & 1:
        iv = int(fval)
        if iv < 0:
            return False
        cat = int(float(tree["threshold"][node]))
        lo, hi = tree["cat_boundaries"][cat], tree["cat_boundaries"][cat + 1]
        word = iv // 32
        return word < hi - lo and bool((tree["cat_threshold"][lo + word] >> (iv % 32)) & 1)
    missing = (dtype >> 2) & 3
    if missing == 1 and -_ZERO <= fval <= _ZERO:
        return bool(dtype & 2)
    return fval <= float(tree["threshold"][node])


def _resolve(tree: dict, values: dict[int, float], action_features: set[int]) -> dict | float:
    """The tree with every split on an action column decided by ``values``: a tree dict, or its constant."""
    feats = tree["split_feature"]
    left, right = tree["left_child"], tree["right_child"]

    def walk(node: int) -> int:
        while node >= 0 and feats[node] in action_features:
            node = left[node] if _goes_left(tree, node, values[feats[node]]) else right[node]
        return node

    root = walk(0)
    if root < 0:
        return float(tree["leaf_value"][~root])
    nodes: list[int] = []
    leaves: list[int] = []
    kids: list[list[int]] = []

    def visit(node: int) -> int:
        node = walk(node)
        if node < 0:
            leaves.append(~node)
            return ~(len(leaves) - 1)
        nodes.append(node)
        kids.append([0, 0])
        at = len(nodes) - 1
        kids[at][0] = visit(left[node])
        kids[at][1] = visit(right[node])
        return at

    visit(0)
    return {"nodes": tuple(nodes), "leaves": tuple(leaves), "kids": tuple(map(tuple, kids))}


def _tree_text(tree: dict[str, str], shape: dict, number: int) -> str:
    """One resolved tree in LightGBM's model text format (values copied as text: parsed bit for bit)."""
    tok = {k: tree[k].split(" ") for k in (*_PER_NODE, *_PER_LEAF)}
    lines = [f"Tree={number}", f"num_leaves={len(shape['leaves'])}", f"num_cat={tree['num_cat']}"]
    for k in _PER_NODE[:4]:
        lines.append(f"{k}=" + " ".join(tok[k][i] for i in shape["nodes"]))
    lines.append("left_child=" + " ".join(str(a) for a, _ in shape["kids"]))
    lines.append("right_child=" + " ".join(str(b) for _, b in shape["kids"]))
    for k in _PER_LEAF:
        lines.append(f"{k}=" + " ".join(tok[k][i] for i in shape["leaves"]))
    for k in _PER_NODE[4:]:
        lines.append(f"{k}=" + " ".join(tok[k][i] for i in shape["nodes"]))
    if int(tree["num_cat"]) > 0:
        lines += [f"cat_boundaries={tree['cat_boundaries']}", f"cat_threshold={tree['cat_threshold']}"]
    lines += [f"is_linear={tree['is_linear']}", f"shrinkage={tree['shrinkage']}"]
    return "\n".join(lines) + "\n\n\n"


def prune_action_splits(booster, layout: dict) -> dict | None:
    """The model with its action splits decided per action: each distinct resolved tree once, plus which
    actions use it. A customer then needs one pass over these trees instead of one per action.
    ``None`` when the model is not a plain binary one (then the design rows are predicted)."""
    parsed = _parse_model(booster.model_to_string())
    if parsed is None:
        return None
    header, trees, tail = parsed
    head = dict(line.partition("=")[::2] for line in header if "=" in line)
    objective = head.get("objective", "").split(" ")
    if objective[0] != "binary" or head.get("num_tree_per_iteration", "1") != "1" or "average_output" in header:
        return None
    sigmoid = next((float(t.split(":", 1)[1]) for t in objective[1:] if t.startswith("sigmoid:")), 1.0)
    act_values = layout["act_values"]
    if not np.isfinite(act_values).all():
        return None  # missing-category handling differs between LightGBM versions: keep the design path
    K = len(act_values)
    action_features = {int(p) for p in layout["act_pos"]}
    per_action = [{int(p): float(act_values[k, j]) for j, p in enumerate(layout["act_pos"])} for k in range(K)]
    out_trees: list[str] = []
    leaf_values: list[np.ndarray] = []
    use: list[np.ndarray] = []
    bias = np.zeros(K)
    for tree in trees:
        if set(tree) - _TREE_KEYS or tree.get("is_linear", "0") != "0":
            return None
        if int(tree["num_leaves"]) <= 1:
            bias += float(tree["leaf_value"].split(" ")[0])
            continue
        parsed_tree = {
            "split_feature": [int(t) for t in tree["split_feature"].split(" ")],
            "decision_type": tree["decision_type"].split(" "),
            "threshold": tree["threshold"].split(" "),
            "left_child": [int(t) for t in tree["left_child"].split(" ")],
            "right_child": [int(t) for t in tree["right_child"].split(" ")],
            "leaf_value": tree["leaf_value"].split(" "),
            "cat_boundaries": [int(t) for t in tree.get("cat_boundaries", "").split(" ") if t],
            "cat_threshold": [int(t) for t in tree.get("cat_threshold", "").split(" ") if t],
        }
        variants: dict[tuple, np.ndarray] = {}
        if action_features.isdisjoint(parsed_tree["split_feature"]):
            shapes = [_resolve(parsed_tree, per_action[0], action_features)] * K
        else:
            shapes = [_resolve(parsed_tree, per_action[k], action_features) for k in range(K)]
        for k, shape in enumerate(shapes):
            if isinstance(shape, float):
                bias[k] += shape
                continue
            key = (shape["nodes"], shape["leaves"], shape["kids"])
            if key not in variants:
                variants[key] = np.zeros(K)
                out_trees.append(_tree_text(tree, shape, len(out_trees)))
                leaf_values.append(np.array([float(parsed_tree["leaf_value"][i]) for i in shape["leaves"]]))
                use.append(variants[key])
            variants[key][k] = 1.0
    if not out_trees:
        return {"booster": None, "bias": bias, "sigmoid": sigmoid}
    text = "\n".join(header) + "\n" + "".join(out_trees) + tail
    width = max(len(v) for v in leaf_values)
    table = np.zeros((len(leaf_values), width))
    for t, v in enumerate(leaf_values):
        table[t, : len(v)] = v
    return {
        "booster": lgb.Booster(model_str=text),
        "leaf_values": table,
        "tree_index": np.arange(len(leaf_values))[None, :],
        "tree_actions": np.array(use),
        "bias": bias,
        "sigmoid": sigmoid,
    }


def pruned_predict(pruned: dict, layout: dict, Xf: np.ndarray) -> np.ndarray:
    """``(n, K)`` probabilities from the action-resolved trees: each customer's rows are evaluated once."""
    n = len(Xf)
    K = len(pruned["bias"])
    raw = np.empty((n, K))
    step = _leaf_rows(0 if pruned["booster"] is None else pruned["leaf_values"].shape[0])
    for start in range(0, n, step):
        part = Xf[start : start + step]
        if pruned["booster"] is None:
            raw[start : start + len(part)] = pruned["bias"]
            continue
        D = np.full((len(part), layout["width"]), np.nan)  # action columns are never read by these trees
        put_features(D, part, layout)
        leaf = booster_predict(pruned["booster"], D, num_threads=prediction_threads(), pred_leaf=True)
        leaf = np.asarray(leaf, dtype=np.intp).reshape(len(part), -1)
        values = pruned["leaf_values"][pruned["tree_index"], leaf]
        raw[start : start + len(part)] = values @ pruned["tree_actions"] + pruned["bias"]
    return 1.0 / (1.0 + np.exp(-pruned["sigmoid"] * raw))


def merge_regressors(boosters: dict[int, lgb.Booster], K: int) -> dict | None:
    """Plain L2 regressors (one per action index) as one model: every customer walks all their trees in one
    LightGBM call instead of one call per action, and each action sums its own trees' leaves.
    ``None`` when a regressor is not a plain one (then each is predicted on its own)."""
    header: list[str] | None = None
    tail = ""
    width = None
    out_trees: list[str] = []
    leaf_values: list[np.ndarray] = []
    starts: list[int] = []  # each action's trees are consecutive: first tree of each action with trees
    groups: list[int] = []
    bias = np.zeros(K)
    for k, booster in boosters.items():
        parsed = _parse_model(booster.model_to_string())
        if parsed is None:
            return None
        head_lines, trees, rest = parsed
        head = dict(line.partition("=")[::2] for line in head_lines if "=" in line)
        plain = head.get("objective", "").split(" ") == ["regression"]  # identity output (no sqrt, no exp)
        if not plain or head.get("num_tree_per_iteration", "1") != "1" or "average_output" in head_lines:
            return None
        if header is None:
            header, tail, width = head_lines, rest, head.get("max_feature_idx")
        elif head.get("max_feature_idx") != width:
            return None
        for tree in trees:
            if set(tree) - _TREE_KEYS or tree.get("is_linear", "0") != "0":
                return None
            n_leaves = int(tree["num_leaves"])
            values = tree["leaf_value"].split(" ")
            if n_leaves <= 1:
                bias[k] += float(values[0])
                continue
            left = [int(t) for t in tree["left_child"].split(" ")]
            right = [int(t) for t in tree["right_child"].split(" ")]
            kids = tuple(zip(left, right, strict=True))
            shape = {"nodes": tuple(range(n_leaves - 1)), "leaves": tuple(range(n_leaves)), "kids": kids}
            if not groups or groups[-1] != k:
                starts.append(len(out_trees))
                groups.append(k)
            out_trees.append(_tree_text(tree, shape, len(out_trees)))
            leaf_values.append(np.array([float(v) for v in values]))
    if header is None:
        return None
    if not out_trees:
        return {"booster": None, "bias": bias}
    table = np.zeros((len(leaf_values), max(len(v) for v in leaf_values)))
    for t, v in enumerate(leaf_values):
        table[t, : len(v)] = v
    return {
        "booster": lgb.Booster(model_str="\n".join(header) + "\n" + "".join(out_trees) + tail),
        "leaf_values": table,
        "tree_index": np.arange(len(leaf_values))[None, :],
        "starts": np.array(starts, dtype=np.intp),
        "groups": np.array(groups, dtype=np.intp),
        "bias": bias,
    }


def merged_predict(merged: dict, Xf: np.ndarray) -> np.ndarray:
    """``(n, K)`` sums of each action's regressor trees (column of an action without a regressor: 0)."""
    n = len(Xf)
    out = np.tile(merged["bias"], (n, 1))
    if merged["booster"] is None:
        return out
    step = _leaf_rows(merged["leaf_values"].shape[0])
    for start in range(0, n, step):
        part = Xf[start : start + step]
        leaf = booster_predict(merged["booster"], part, num_threads=prediction_threads(), pred_leaf=True)
        leaf = np.asarray(leaf, dtype=np.intp).reshape(len(part), -1)
        values = merged["leaf_values"][merged["tree_index"], leaf]
        # Each tree belongs to one action: per-action sums of consecutive trees, not a dense product.
        out[start : start + len(part), merged["groups"]] += np.add.reduceat(values, merged["starts"], axis=1)
    return out


def put_features(D: np.ndarray, part: np.ndarray, layout: dict) -> None:
    """Write the customers' feature columns into design rows ``D``: one block copy when the design keeps
    the features in order side by side (the usual layout), else a column gather."""
    pos, src = layout["feat_pos"], layout["feat_src"]
    n = len(pos)
    if n and n == part.shape[1] and np.array_equal(src, np.arange(n)) and np.array_equal(pos, pos[0] + np.arange(n)):
        D[:, pos[0] : pos[0] + n] = part
    else:
        D[:, pos] = part[:, src]


def _leaf_rows(n_trees: int) -> int:
    """Customers per chunk of leaf indices: bounds the (customers x trees) matrices to ~4 M entries."""
    return max(256, min(_PRUNED_CUSTOMERS, 4_000_000 // max(n_trees, 1)))
