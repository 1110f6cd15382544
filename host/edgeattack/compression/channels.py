"""prune-channels step: structured pruning that removes whole conv filters and dense units, then
rebuilds a narrower model and fine-tunes it (unlike `prune`, the int8 file really shrinks and the
device really runs fewer instructions).

A "channel space" is the last axis of a tensor, followed through the graph from the layer that
creates it (a Conv2D's filters or a Dense's units) through layers that keep channel c in place
(BatchNormalization and DepthwiseConv2D with depth_multiplier 1, whose per-channel weights are cut
with it; activations, pooling, padding, dropout) to the layers that consume it (a Conv2D's input
channels, a Dense's input rows, and after Flatten the rows c, C + c, 2C + c, ... of every position).
Element-wise merges (Add and friends, i.e. residual joins) tie the channel spaces of their inputs
together: the joined spaces are pruned as one, with one kept set chosen from the summed normalized
scores of every layer that creates them. A space is left whole when it reaches the model output,
feeds a layer not listed above (Concatenate, Reshape, Softmax, grouped or separable convs, ...), or
meets a merge with an input that is not a prunable space; the step's details say which and why.

Removing channel c is exactly zeroing it in the original model (its consumers then add nothing
from it), which is what the tests check before fine-tuning.
"""
from __future__ import annotations

import copy
import math

import numpy as np

from ..errors import UsageError
from .context import StepContext

SCORES = ("l1", "l2")

# Layers that keep channel c at position c and hold no per-channel weights.
_PASS = {"Activation", "ReLU", "LeakyReLU", "ELU", "MaxPooling2D", "AveragePooling2D",
         "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ZeroPadding2D", "Cropping2D",
         "UpSampling2D", "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout",
         "MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D", "GlobalMaxPooling1D"}
# Element-wise joins of several inputs: their channel spaces must be pruned together.
_MERGE = {"Add", "Subtract", "Average", "Maximum", "Minimum", "Multiply"}


class _Space:
    """One channel space (after joins: the union of several)."""

    def __init__(self, producer: str, channels: int):
        self.producers = [producer]     # Conv2D / Dense layers creating it
        self.members = []               # BatchNormalization / DepthwiseConv2D cut with it
        self.consumers = []             # (layer, spatial positions or None) reading it
        self.layers = [producer]        # every layer whose output is in this space
        self.channels = channels
        self.blocked: list[str] = []


class _Graph:
    def __init__(self):
        self.parent: dict[int, int] = {}
        self.spaces: dict[int, _Space] = {}

    def new(self, producer: str, channels: int) -> int:
        gid = len(self.parent)
        self.parent[gid] = gid
        self.spaces[gid] = _Space(producer, channels)
        return gid

    def find(self, gid: int) -> int:
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def space(self, gid: int) -> _Space:
        return self.spaces[self.find(gid)]

    def union(self, a: int, b: int) -> int:
        a, b = self.find(a), self.find(b)
        if a == b:
            return a
        sa, sb = self.spaces[a], self.spaces.pop(b)
        if sa.channels != sb.channels:  # cannot happen in a model that built
            sa.blocked.append("joined spaces of different widths")
        for attr in ("producers", "members", "consumers", "layers", "blocked"):
            getattr(sa, attr).extend(getattr(sb, attr))
        self.parent[b] = a
        return a

    def block(self, gid: int, reason: str) -> None:
        s = self.space(gid)
        if reason not in s.blocked:
            s.blocked.append(reason)

    def roots(self) -> list[int]:
        return sorted(self.spaces)


def _inputs(config: dict, sequential: bool) -> list[tuple[str, str, list[str]]]:
    """(layer name, class name, names of the layers feeding it) in topological order."""
    out, prev = [], None
    for entry in config["layers"]:
        name, cls = entry["config"]["name"], entry["class_name"]
        if sequential:
            out.append((name, cls, [prev] if prev else []))
            prev = name
            continue
        nodes = entry.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise UsageError(f"prune-channels: layer {name!r} is shared (called {len(nodes)} times); "
                             f"channel pruning takes models whose layers are each used once")
        srcs = []
        for node in nodes:
            items = node["args"] if isinstance(node, dict) else node
            for item in items:
                srcs.append(item[0] if isinstance(item, (list, tuple)) else item)
        out.append((name, cls, srcs))
    return out


def analyse(model) -> tuple[_Graph, dict[str, tuple]]:
    """The channel spaces of a tf_keras model: (graph, output of each layer as (space id or None,
    flattened positions or None))."""
    from ..tfutil import keras

    k = keras()
    sequential = isinstance(model, k.Sequential)
    config = model.get_config()
    g = _Graph()
    out: dict[str, tuple] = {}
    for name, cls, srcs in _inputs(config, sequential):
        if cls == "InputLayer":  # a Sequential's config lists it; its model.layers does not
            out[name] = (None, None)
            continue
        layer = model.get_layer(name)
        cls = type(layer).__name__
        ins = [out.get(s, (None, None)) for s in srcs]
        tracked = [gid for gid, _ in ins if gid is not None]

        def barrier(reason=f"feeds {cls} {name}"):
            for gid in tracked:
                g.block(gid, reason)
            out[name] = (None, None)

        if cls in ("Conv2D", "Dense"):
            if cls == "Conv2D" and (layer.groups != 1 or layer.data_format != "channels_last"):
                barrier()
                continue
            if len(ins) == 1 and ins[0][0] is not None:
                if cls == "Conv2D" and ins[0][1] is not None:
                    barrier()
                    continue
                g.space(ins[0][0]).consumers.append((name, ins[0][1]))
            width = layer.filters if cls == "Conv2D" else layer.units
            out[name] = (g.new(name, width), None)
        elif cls in ("DepthwiseConv2D", "BatchNormalization"):
            axis = getattr(layer, "axis", [-1])
            axis = axis if isinstance(axis, (list, tuple)) else [axis]
            rank = len(layer.input_shape)
            ok = (cls == "BatchNormalization" and list(axis) in ([-1], [rank - 1])) or \
                 (cls == "DepthwiseConv2D" and layer.depth_multiplier == 1
                  and layer.data_format == "channels_last")
            if not (ok and len(ins) == 1 and ins[0][0] is not None and ins[0][1] is None):
                barrier()
                continue
            s = g.space(ins[0][0])
            s.members.append(name)
            s.layers.append(name)
            out[name] = ins[0]
        elif cls in _PASS:
            if len(ins) != 1 or ins[0][0] is None:
                out[name] = (None, None)
                continue
            if ins[0][1] is not None and cls not in ("Activation", "ReLU", "LeakyReLU", "ELU",
                                                     "Dropout", "GaussianNoise", "GaussianDropout"):
                barrier()
                continue
            g.space(ins[0][0]).layers.append(name)
            out[name] = ins[0]
        elif cls == "Flatten":
            if len(ins) != 1 or ins[0][0] is None or layer.data_format != "channels_last":
                barrier()
                continue
            gid, flat = ins[0]
            if flat is None:
                shape = layer.input_shape[1:-1]
                if any(d is None for d in shape):
                    barrier(f"feeds Flatten {name} of unknown size")
                    continue
                flat = int(np.prod(shape)) if len(shape) else 1
            g.space(gid).layers.append(name)
            out[name] = (gid, flat)
        elif cls in _MERGE:
            if len(tracked) != len(ins) or any(flat is not None for _, flat in ins):
                barrier(f"joined in {cls} {name} with an input that is not a prunable channel space")
                continue
            gid = tracked[0]
            for other in tracked[1:]:
                gid = g.union(gid, other)
            g.space(gid).layers.append(name)
            out[name] = (gid, None)
        else:
            barrier()
    outputs = config.get("output_layers") if not sequential else [[config["layers"][-1]["config"]["name"]]]
    for item in outputs or []:
        gid = out.get(item[0], (None, None))[0]
        if gid is not None:
            g.block(gid, "reaches the model output")
    return g, out


def _norm_scores(model, s: _Space, score: str) -> np.ndarray:
    total = np.zeros(s.channels)
    for name in s.producers:
        kernel = model.get_layer(name).get_weights()[0]
        flat = kernel.reshape(-1, kernel.shape[-1])
        v = np.abs(flat).sum(axis=0) if score == "l1" else np.sqrt((flat ** 2).sum(axis=0))
        total += v / v.mean() if v.mean() > 0 else v
    return total


def plan(model, ratio: float, score="l1", layers=None) -> dict:
    """Which channels to keep: {"spaces": [...], "skipped": [...]}.

    ratio: fraction of each chosen space's channels removed (rounded, at least one kept).
    score: "l1" / "l2" (norm of each filter's weights; joined spaces sum their producers' norms
    divided by each producer's mean), or {layer name: per-channel scores} (higher = more
    important): only the spaces of the named layers are pruned then (any layer whose output is in
    the space may be named, e.g. the ReLU after a conv). layers: names of layers whose spaces to
    prune (default: every prunable space)."""
    if not 0 < ratio < 1:
        raise UsageError(f"prune-channels: ratio must be in (0, 1) (got {ratio!r}); it is the "
                         f"fraction of each layer's channels removed")
    given = score if isinstance(score, dict) else None
    if given is None and score not in SCORES:
        raise UsageError(f"prune-channels: unknown score {score!r}; use one of {', '.join(SCORES)} "
                         f"(or, from Python, a dict of per-channel scores)")
    g, _ = analyse(model)
    by_layer = {n: r for r in g.roots() for n in g.spaces[r].layers}
    names = list(given) if given is not None else layers
    chosen = None
    if names is not None:
        chosen = set()
        for n in names:
            if n not in by_layer:
                known = ", ".join(sorted(by_layer)) or "none"
                raise UsageError(f"prune-channels: layer {n!r} has no channel space to prune (layers "
                                 f"with one: {known})")
            s = g.spaces[by_layer[n]]
            if s.blocked:
                raise UsageError(f"prune-channels: the channels of layer {n!r} cannot be pruned: "
                                 f"{'; '.join(s.blocked)}")
            chosen.add(by_layer[n])
    spaces, skipped = [], []
    for r in g.roots():
        s = g.spaces[r]
        if s.blocked:
            skipped.append({"layers": s.producers, "reason": "; ".join(s.blocked)})
            continue
        if chosen is not None and r not in chosen:
            continue
        if given is not None:
            total = np.zeros(s.channels)
            for n in s.layers:
                if n in given:
                    v = np.asarray(given[n], dtype=np.float64).reshape(-1)
                    if v.shape != (s.channels,) or not np.all(np.isfinite(v)):
                        raise UsageError(f"prune-channels: the scores for layer {n!r} must be "
                                         f"{s.channels} finite numbers (got shape {v.shape})")
                    total += v
            values = total
        else:
            values = _norm_scores(model, s, score)
        remove = min(s.channels - 1, math.floor(ratio * s.channels + 0.5))
        if remove < 1:
            skipped.append({"layers": s.producers, "reason": f"{s.channels} channels: none to remove "
                                                             f"at ratio {ratio}"})
            continue
        order = np.argsort(values, kind="stable")
        kept = np.sort(order[remove:])
        spaces.append({"producers": list(s.producers), "members": list(s.members),
                       "consumers": [c for c, _ in s.consumers],
                       "joined": len(s.producers) > 1, "channels_before": s.channels,
                       "channels_after": int(len(kept)), "kept": kept.tolist(),
                       "removed": np.sort(order[:remove]).tolist(),
                       "_consumers": list(s.consumers)})
    if not spaces:
        reasons = "; ".join(f"{', '.join(x['layers'])}: {x['reason']}" for x in skipped) or \
            "no Conv2D or Dense layer"
        raise UsageError(f"prune-channels: nothing to prune ({reasons})")
    return {"spaces": spaces, "skipped": skipped}


def rebuild(model, the_plan: dict):
    """A narrower copy of `model` without the removed channels; every kept weight is copied."""
    from ..tfutil import keras

    k = keras()
    out_sel, member_sel, in_sel = {}, {}, {}
    for sp in the_plan["spaces"]:
        kept = np.asarray(sp["kept"])
        for n in sp["producers"]:
            out_sel[n] = kept
        for n in sp["members"]:
            member_sel[n] = kept
        for n, flat in sp["_consumers"]:
            if flat is None:
                in_sel[n] = kept
            else:  # Flatten of (..., C) in row-major order: position p, channel c is row p * C + c
                in_sel[n] = (np.arange(flat)[:, None] * sp["channels_before"] + kept[None, :]).ravel()
    config = copy.deepcopy(model.get_config())
    for entry in config["layers"]:
        cfg = entry["config"]
        if cfg["name"] in out_sel:
            cfg["filters" if "filters" in cfg else "units"] = int(len(out_sel[cfg["name"]]))
    sequential = isinstance(model, k.Sequential)
    new = (k.Sequential if sequential else k.Model).from_config(config)
    for layer in new.layers:
        old = model.get_layer(layer.name)
        weights = old.get_weights()
        name, cls = layer.name, type(layer).__name__
        if cls in ("Conv2D", "Dense") and weights:
            kernel = weights[0]
            if name in in_sel:
                kernel = np.take(kernel, in_sel[name], axis=-2)
            if name in out_sel:
                kernel = kernel[..., out_sel[name]]
                weights = [kernel] + [w[out_sel[name]] for w in weights[1:]]
            else:
                weights = [kernel] + weights[1:]
        elif name in member_sel:
            sel = member_sel[name]
            weights = [np.take(w, sel, axis=2) if w.ndim == 4 else w[sel] for w in weights]
        layer.set_weights(weights)
    return new


def public_plan(the_plan: dict) -> dict:
    """The plan without its internal fields (what the manifest records)."""
    return {"spaces": [{k: v for k, v in s.items() if not k.startswith("_")}
                       for s in the_plan["spaces"]],
            "skipped": the_plan["skipped"]}


def prune_channels(model, ratio: float, score="l1", layers=None):
    """(narrower model, details): the Python entry point behind the step (no fine-tuning)."""
    the_plan = plan(model, ratio, score, layers)
    new = rebuild(model, the_plan)
    details = public_plan(the_plan)
    details["model_params_before"] = int(model.count_params())
    details["model_params_after"] = int(new.count_params())
    return new, details


def run(ctx: StepContext, step) -> dict:
    p = step.params
    ctx.model, details = prune_channels(ctx.model, p["ratio"], p["score"], p["layers"])
    ctx.echo("  pruned channels: "
             + ", ".join(f"{'+'.join(s['producers'])} {s['channels_before']}->{s['channels_after']}"
                         for s in details["spaces"])
             + f"; params {details['model_params_before']} -> {details['model_params_after']}; "
               f"accuracy before fine-tuning {ctx.accuracy():.4f}")
    ctx.fit(ctx.model, p["epochs"], p["lr"], p["batch_size"], "prune-channels fine-tune")
    return details


def channel_spaces(model) -> list[dict]:
    """Every channel space of a model (for defenses that score channels themselves): producers,
    members, every layer whose output is in it (topological order), width, and why it cannot be
    pruned (empty when it can)."""
    g, _ = analyse(model)
    return [{"producers": list(s.producers), "members": list(s.members), "layers": list(s.layers),
             "channels": s.channels, "blocked": list(s.blocked)}
            for s in (g.spaces[r] for r in g.roots())]
