"""Load a user's Keras model as a tf_keras (Keras 2) model, whatever Keras saved it.

tfmot works only with tf_keras, but TF 2.21's default `keras` is Keras 3, whose files tf_keras cannot
read. Keras 2 files (.keras, .h5, SavedModel folders) load directly. A Keras 3 file (.keras zip or .h5)
is loaded with Keras 3, its config is translated to the Keras 2 schema, rebuilt with tf_keras, given
the Keras 3 weights, and accepted only if both models give the same outputs on random inputs.

TensorFlow is imported only inside load_model (the CLI imports this module for --help).
"""
from __future__ import annotations

import contextlib
import inspect
import json
import os
import tempfile
import zipfile

from .errors import UsageError

__all__ = ["load_model", "OUTPUT_ATOL"]

# A rebuild is accepted when max|keras3 - tf_keras| < OUTPUT_ATOL * max(1, max|keras3|) for every
# output. Both run the same TF kernels, so they agree to float32 rounding; scaling by the output
# magnitude keeps large logits from being rejected for a last-bit difference.
OUTPUT_ATOL = 1e-4

_FORMATS = "give a .keras, .h5 or SavedModel folder"
_RESAVE = ("re-save it with tf_keras (`import tf_keras; m.save('model.keras')`) or use built-in "
           "layers that tf_keras also has")

# Base-layer keyword arguments tf_keras accepts on top of each layer's own __init__ parameters.
_BASE_KWARGS = {"name", "trainable", "dtype", "dynamic", "input_dim", "input_shape",
                "batch_input_shape", "batch_size", "weights", "activity_regularizer", "autocast",
                "implementation"}

# Keras 3 options tf_keras lacks, with the value that means "off": dropped only when they hold it.
# None and False are treated as "off" for any key; anything else must match this table.
_KERAS3_ONLY_DEFAULTS = {
    "lora_alpha": None, "fill_mode": "constant", "fill_value": 0.0, "antialias": False,
    "pad_to_aspect_ratio": False, "rms_scaling": False, "sparse": False, "ragged": False,
    # tf_keras layers without a data_format argument (preprocessing) work channels-last only.
    "data_format": "channels_last",
}

# Keras 3 renames of arguments that keep their meaning in tf_keras, per layer class.
_RENAMED_KEYS = {"LeakyReLU": {"negative_slope": "alpha"}}

# Keras 3 activation names with an identical tf_keras activation under another name.
_ACTIVATION_ALIASES = {"silu": "swish"}

_MODEL_CLASSES = {"Functional", "Sequential", "Model"}


class _Unsupported(Exception):
    """A Keras 3 layer or feature that has no faithful tf_keras equivalent."""

    def __init__(self, layer: str, reason: str):
        super().__init__(f"layer '{layer}': {reason}")


def load_model(path, safe_mode: bool = True):
    """Load a Keras model file or SavedModel folder as an uncompiled tf_keras model.

    Accepts tf_keras `.keras`/`.h5`/SavedModel folders and Keras 3 `.keras`/`.h5` files (Sequential
    or Functional, built-in layers). Raises UsageError naming the file, and for Keras 3 models the
    layer, when the input is not a Keras model or cannot be rebuilt faithfully.

    safe_mode=True refuses Lambda layers holding Python bytecode in every format (tf_keras's own
    safe mode covers only .keras; a user's .h5 could otherwise run code when loaded).
    """
    path = os.fspath(path)
    kind, suffix = _detect(path)
    with _named(path, suffix) as named:
        if kind == "keras3":
            return _load_keras3(path, named, safe_mode)
        return _load_tf_keras(path, named, safe_mode)


@contextlib.contextmanager
def _named(path: str, suffix: str | None):
    """Both Kerases pick their reader by file extension; we decide by content. A file whose name
    does not say what it is gets a correctly named symlink in a temporary folder."""
    if suffix is None or path.lower().endswith(suffix):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="edgeattack-model-") as tmp:
        link = os.path.join(tmp, "model" + suffix)
        os.symlink(os.path.abspath(path), link)
        yield link


# ----------------------------------------------------------------------------------------- formats

def _not_a_model(path: str, why: str) -> UsageError:
    return UsageError(f"{path}: not a Keras model ({why}); {_FORMATS}")


def _detect(path: str) -> tuple[str, str | None]:
    """Classify by content, not by extension: ('keras3' | 'tf_keras', the extension the Keras
    readers need, or None for a SavedModel folder)."""
    if not os.path.exists(path):
        raise _not_a_model(path, "no such file or directory")
    if os.path.isdir(path):
        if not (os.path.isfile(os.path.join(path, "saved_model.pb"))
                or os.path.isfile(os.path.join(path, "saved_model.pbtxt"))):
            raise _not_a_model(path, "a folder without saved_model.pb")
        if not os.path.isfile(os.path.join(path, "keras_metadata.pb")):
            raise UsageError(
                f"{path}: a TensorFlow SavedModel without Keras metadata (made by Keras 3 "
                f"model.export() or tf.saved_model.save), which cannot be rebuilt as a Keras model; "
                f"give the model's .keras file instead, or save it with tf_keras")
        return "tf_keras", None
    if zipfile.is_zipfile(path):
        return _detect_zip(path), ".keras"
    if _is_hdf5(path):
        return _detect_h5(path), ".h5"
    if _starts_with(path, b"PK"):
        raise _not_a_model(path, "a truncated or damaged zip")
    raise _not_a_model(path, "neither a .keras zip, an HDF5 file nor a SavedModel folder")


def _detect_zip(path: str) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "config.json" not in names:
                raise _not_a_model(path, "a zip without config.json")
            if not names & {"model.weights.h5", "model.weights.npz"}:
                raise _not_a_model(path, "a zip without model weights")
            meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise _not_a_model(path, f"damaged zip: {_first_line(e)}") from None
    version = str(meta.get("keras_version", ""))
    return "keras3" if version.startswith("3") else "tf_keras"


def _starts_with(path: str, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


def _is_hdf5(path: str) -> bool:
    # HDF5's signature sits at offset 0 or at a power-of-two user-block offset from 512 on.
    sig = b"\x89HDF\r\n\x1a\n"
    try:
        with open(path, "rb") as f:
            if f.read(8) == sig:
                return True
            offset = 512
            size = os.path.getsize(path)
            while offset + 8 <= size:
                f.seek(offset)
                if f.read(8) == sig:
                    return True
                offset *= 2
    except OSError:
        return False
    return False


def _detect_h5(path: str) -> str:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
    except Exception as e:  # h5py raises OSError/KeyError variants on damaged files
        raise _not_a_model(path, f"damaged HDF5 file: {_first_line(e)}") from None
    if "model_config" not in attrs:
        raise _not_a_model(path, "HDF5 weights without a model config; save the whole model, not "
                                 "only its weights")
    version = attrs.get("keras_version", b"")
    version = version.decode() if isinstance(version, bytes) else str(version)
    return "keras3" if version.startswith("3") else "tf_keras"


def _load_tf_keras(path: str, named: str, safe_mode: bool):
    from .tfutil import keras

    tk = keras()
    from tf_keras.src.saving import serialization_lib

    try:
        # The scope extends safe mode to the legacy .h5 and SavedModel loaders.
        with serialization_lib.SafeModeScope(safe_mode):
            model = tk.models.load_model(named, compile=False, safe_mode=safe_mode)
    except Exception as e:
        _raise_if_unsafe(path, e)
        raise UsageError(f"{path}: tf_keras could not load this model ({_first_line(e)}); "
                         f"if it uses custom layers, re-save it with built-in layers only") from None
    if not isinstance(model, tk.Model):
        raise _not_a_model(path, f"loaded a {type(model).__name__}, not a Keras model")
    return model


# --------------------------------------------------------------------------------- Keras 3 rebuild

def _load_keras3(path: str, named: str, safe_mode: bool):
    import importlib

    import numpy as np

    from .tfutil import keras

    tk = keras()  # imports TensorFlow with TF_USE_LEGACY_KERAS set, so tf.keras stays tf_keras
    k3 = importlib.import_module("keras")  # the `keras` package is Keras 3 whatever the env says
    if not str(getattr(k3, "__version__", "")).startswith("3"):
        raise UsageError(f"{path}: saved by Keras 3, but the installed `keras` package is "
                         f"{getattr(k3, '__version__', '?')}; install keras>=3 to read it")
    try:
        src = k3.models.load_model(named, compile=False, safe_mode=safe_mode)
    except Exception as e:
        _raise_if_unsafe(path, e)
        raise UsageError(f"{path}: Keras 3 could not load this model ({_first_line(e)}); "
                         f"{_RESAVE}") from None
    cls = type(src).__name__
    if cls not in ("Functional", "Sequential"):
        raise UsageError(f"{path}: a Keras 3 {cls} model (subclassed); only Sequential and "
                         f"Functional models can be rebuilt in tf_keras; {_RESAVE}")
    try:
        config = _translate_model(cls, src.get_config(), tk)
        for layer_cfg in _leaf_layers(config):
            _check_layer(layer_cfg, tk)
    except _Unsupported as e:
        raise UsageError(f"{path}: cannot rebuild this Keras 3 model in tf_keras: {e}; "
                         f"{_RESAVE}") from None
    try:
        model_cls = tk.Sequential if cls == "Sequential" else tk.Model
        model = model_cls.from_config(config)
    except Exception as e:
        raise UsageError(f"{path}: cannot rebuild this Keras 3 model in tf_keras "
                         f"({_first_line(e)}); {_RESAVE}") from None
    _copy_weights(path, src, model)
    _check_outputs(path, src, model, np)
    return model


def _raise_if_unsafe(path: str, e: BaseException) -> None:
    if "safe_mode" in str(e):
        raise UsageError(f"{path}: holds Python code (a Lambda layer or lambda function) that "
                         f"loading would run; refused. Replace it with built-in layers (or, for a "
                         f"file you trust, call load_model(path, safe_mode=False))") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def _leaf_layers(config):
    """Every non-model layer config inside a translated model config (recursing into submodels)."""
    for entry in config["layers"]:
        if entry["class_name"] in _MODEL_CLASSES:
            yield from _leaf_layers(entry["config"])
        else:
            yield entry


def _check_layer(entry, tk) -> None:
    """Instantiate one layer alone, so a failure names that layer instead of the whole model."""
    name = entry["config"].get("name", "?")
    try:
        tk.layers.deserialize({"class_name": entry["class_name"], "config": entry["config"]})
    except Exception as e:
        raise _Unsupported(name, f"{entry['class_name']} does not build in tf_keras "
                                 f"({_first_line(e)})") from None


def _translate_model(cls: str, cfg: dict, tk) -> dict:
    if cls == "Sequential":
        out = {"name": cfg.get("name", "sequential"),
               "layers": [_translate_layer(e, tk, functional=False) for e in cfg["layers"]]}
        if cfg.get("build_input_shape"):
            out["build_input_shape"] = cfg["build_input_shape"]
        return out
    layers = [_translate_layer(e, tk, functional=True) for e in cfg["layers"]]
    # Node numbering differs for nested models. tf_keras counts a nested model's construction as its
    # node 0 when it has an input layer (asked of tf_keras per built layer). Keras 3 numbers calls
    # from 0 in inbound nodes, but from 1 for a nested Functional in input_layers/output_layers.
    firsts = {e["name"]: _first_node(e, tk) for e in layers}
    io_shifts = {e["name"]: firsts[e["name"]] - int(e["class_name"] == "Functional")
                 for e in layers}
    for entry in layers:
        entry["inbound_nodes"] = [_translate_node(n, firsts, entry["name"])
                                  for n in entry.pop("_k3_nodes")]
    out = {
        "name": cfg.get("name", "model"),
        "trainable": cfg.get("trainable", True),
        "layers": layers,
        "input_layers": _translate_refs(cfg["input_layers"], io_shifts),
        "output_layers": _translate_refs(cfg["output_layers"], io_shifts),
    }
    _check_refs(out, firsts)
    return out


def _first_node(entry: dict, tk) -> int:
    """The config index of a layer's first call as tf_keras will count it (1 for a nested model that
    counts its own construction as a node), asked of tf_keras itself rather than assumed."""
    if entry["class_name"] not in _MODEL_CLASSES:
        return 0
    from tf_keras.src.engine import functional

    try:
        layer = tk.layers.deserialize({"class_name": entry["class_name"],
                                       "config": entry["config"]})
    except Exception as e:
        raise _Unsupported(entry["name"], f"nested {entry['class_name']} model does not build in "
                                          f"tf_keras ({_first_line(e)})") from None
    return int(functional._should_skip_first_node(layer))


def _check_refs(config: dict, firsts: dict) -> None:
    """Every [layer, node, tensor] reference must name a node tf_keras will create: its from_config
    re-queues a call whose input node never appears and then loops forever instead of failing."""
    valid = {}
    for e in config["layers"]:
        if e["class_name"] == "InputLayer":
            valid[e["name"]] = None  # tf_keras maps any reference to an input layer to its node 0
        else:
            first = firsts[e["name"]]
            valid[e["name"]] = range(first, first + len(e["inbound_nodes"]))

    def refs(x):
        if isinstance(x, list) and len(x) in (3, 4) and isinstance(x[0], str) \
                and isinstance(x[1], int):
            if x[0] != "_CONSTANT_VALUE":
                yield x[0], x[1]
            if len(x) == 4 and isinstance(x[3], dict):
                yield from refs(list(x[3].values()))
        elif isinstance(x, dict):
            yield from refs(list(x.values()))
        elif isinstance(x, list):
            for v in x:
                yield from refs(v)

    sources = [(e["name"], e["inbound_nodes"]) for e in config["layers"]]
    sources += [("model inputs", config["input_layers"]), ("model outputs", config["output_layers"])]
    for user, data in sources:
        for name, node in refs(data):
            if name not in valid or (valid[name] is not None and node not in valid[name]):
                raise _Unsupported(user, f"refers to call {node} of layer '{name}', which the "
                                         f"model does not have")


def _translate_refs(refs, shifts):
    """[name, node, tensor] or a nest of them; node indices shifted for submodels."""
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
        return [refs[0], refs[1] + shifts.get(refs[0], 0), refs[2]]
    if isinstance(refs, dict):
        return {k: _translate_refs(v, shifts) for k, v in refs.items()}
    return [_translate_refs(r, shifts) for r in refs]


def _translate_layer(entry: dict, tk, functional: bool) -> dict:
    cls = entry["class_name"]
    cfg = entry.get("config", {})
    name = cfg.get("name", entry.get("name", "?"))
    module = str(entry.get("module") or "")
    if ".ops." in module:
        # e.g. `x * 2` or keras.ops.add(x, 1.0) on a Keras 3 tensor: recorded as an op, not a layer
        raise _Unsupported(name, f"a Keras 3 tensor operation ({module}.{cls}), not a layer; "
                                 f"use layers (Add, Multiply, Rescaling, ...) instead of ops")
    if entry.get("registered_name") not in (None, cls) or (module and not module.startswith("keras")):
        raise _Unsupported(name, f"custom layer {entry.get('registered_name') or cls}")
    if cls in _MODEL_CLASSES:
        out = {"class_name": "Functional" if cls == "Model" else cls,
               "config": _translate_model("Sequential" if cls == "Sequential" else "Functional",
                                          cfg, tk)}
    else:
        out = {"class_name": cls, "config": _translate_layer_config(cls, name, cfg, tk)}
    if functional:
        out["name"] = entry.get("name", name)
        out["_k3_nodes"] = entry.get("inbound_nodes", [])
    return out


def _tk_layer_class(cls: str, tk):
    layer_cls = getattr(tk.layers, cls, None)
    if not (isinstance(layer_cls, type) and issubclass(layer_cls, tk.layers.Layer)):
        return None
    return layer_cls


def _accepted_keys(layer_cls) -> set | None:
    """Constructor keywords of a tf_keras layer (None if it takes anything: checked when built)."""
    keys = set(_BASE_KWARGS)
    for klass in layer_cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        keys |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return keys
    return keys


def _translate_layer_config(cls: str, name: str, cfg: dict, tk) -> dict:
    layer_cls = _tk_layer_class(cls, tk)
    if layer_cls is None:
        raise _Unsupported(name, f"tf_keras has no {cls} layer")
    cfg = dict(cfg)
    cfg["dtype"] = _dtype_name(name, cfg.get("dtype"))
    if cfg["dtype"] is None:
        del cfg["dtype"]
    if cls == "InputLayer":
        if "batch_shape" in cfg:
            cfg["batch_input_shape"] = cfg.pop("batch_shape")
        if cfg.get("optional"):
            raise _Unsupported(name, "optional inputs")
        cfg.pop("optional", None)
        cfg.pop("input_tensor", None)
    for old, new in _RENAMED_KEYS.get(cls, {}).items():
        if old in cfg:
            cfg[new] = cfg.pop(old)
    if isinstance(cfg.get("activation"), str):
        cfg["activation"] = _ACTIVATION_ALIASES.get(cfg["activation"], cfg["activation"])
    if cfg.get("quantization_config") is not None or cfg.get("lora_rank"):
        raise _Unsupported(name, "Keras 3 quantization or LoRA")

    accepted = _accepted_keys(layer_cls)
    out = {}
    for key, value in cfg.items():
        if key not in accepted:
            if value is None or value is False or _KERAS3_ONLY_DEFAULTS.get(key, object()) == value:
                continue  # a Keras 3-only option left off: dropping it changes nothing
            raise _Unsupported(name, f"{cls} option {key}={value!r} has no tf_keras equivalent")
        out[key] = _translate_value(name, key, value, tk)
    return out


def _dtype_name(layer: str, dtype):
    """Keras 3 stores a DTypePolicy dict where tf_keras takes a policy name."""
    if not isinstance(dtype, dict):
        return dtype
    cls = dtype.get("class_name", "")
    if "Quantized" in cls:
        raise _Unsupported(layer, f"quantized dtype policy {dtype.get('config', {}).get('name')}")
    return dtype.get("config", {}).get("name")


def _is_serialized_object(value) -> bool:
    return isinstance(value, dict) and "class_name" in value and "config" in value


def _translate_value(layer: str, key: str, value, tk):
    """Nested Keras 3 objects (initializers, regularizers, constraints) to tf_keras's legacy form."""
    if not _is_serialized_object(value):
        return value
    cls, cfg = value["class_name"], value.get("config") or {}
    if value.get("registered_name") not in (None, cls):
        raise _Unsupported(layer, f"custom {key} {value['registered_name']}")
    module = str(value.get("module") or "")
    family = next((f for f in ("initializers", "regularizers", "constraints") if f in module
                   or key.endswith(f[:-1])), None)
    target = getattr(getattr(tk, family), cls, None) if family else None
    if target is None:
        if family == "initializers":
            return None  # weights are copied afterwards, so the default initializer is harmless
        raise _Unsupported(layer, f"{key} {cls} has no tf_keras equivalent")
    params = inspect.signature(target.__init__).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    kept = {}
    for k, v in cfg.items():
        if k in params or takes_any:
            kept[k] = v
        elif family != "initializers" and v is not None:
            raise _Unsupported(layer, f"{key} {cls} option {k}={v!r} has no tf_keras equivalent")
    return {"class_name": cls, "config": kept}


def _translate_node(node, shifts: dict, layer: str):
    """One Keras 3 call ({"args": [...], "kwargs": {...}}) to a Keras 2 node: a nest of
    [inbound_layer, node_index, tensor_index, kwargs] entries shaped like the call's first argument."""
    if not isinstance(node, dict) or "args" not in node:
        raise _Unsupported(layer, "unrecognised node format")
    args, kwargs = node.get("args") or [], node.get("kwargs") or {}
    if len(args) != 1:
        raise _Unsupported(layer, f"called with {len(args)} positional arguments (tf_keras "
                                  f"layers take one)")
    kwargs = {k: _kwarg(v, shifts) for k, v in kwargs.items() if v is not None}

    def entry(x):
        if _is_keras_tensor(x):
            name, node_index, tensor_index = x["config"]["keras_history"]
            return [name, node_index + shifts.get(name, 0), tensor_index, kwargs]
        if isinstance(x, list):
            return [entry(v) for v in x]
        if isinstance(x, dict) and not _is_serialized_object(x):
            return {k: entry(v) for k, v in x.items()}
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            return ["_CONSTANT_VALUE", -1, x, kwargs]
        raise _Unsupported(layer, f"called on a constant of type {type(x).__name__}")

    data = entry(args[0])
    # Keras 2 wraps a single inbound tensor in a list.
    return [data] if _is_entry(data) else data


def _kwarg(value, shifts):
    """Keras tensors inside call kwargs become [layer, node, tensor] references."""
    if _is_keras_tensor(value):
        name, node_index, tensor_index = value["config"]["keras_history"]
        return [name, node_index + shifts.get(name, 0), tensor_index]
    if isinstance(value, list):
        return [_kwarg(v, shifts) for v in value]
    return value


def _is_keras_tensor(x) -> bool:
    return isinstance(x, dict) and x.get("class_name") == "__keras_tensor__"


def _is_entry(x) -> bool:
    return isinstance(x, list) and len(x) == 4 and isinstance(x[0], str)


# ------------------------------------------------------------------------------- weights and check

def _copy_weights(path: str, src, model) -> None:
    """Layer by layer, by name, so a mismatch names the layer."""
    for src_layer in src.layers:
        name = src_layer.name
        try:
            dst_layer = model.get_layer(name)
        except ValueError:
            raise UsageError(f"{path}: layer '{name}' of the Keras 3 model is missing after the "
                             f"rebuild in tf_keras; {_RESAVE}") from None
        values = src_layer.get_weights()
        want = [tuple(w.shape) for w in dst_layer.weights]
        got = [tuple(v.shape) for v in values]
        if want != got:
            raise UsageError(f"{path}: layer '{name}' ({type(src_layer).__name__}) has weights "
                             f"{got} in Keras 3 but {want} in tf_keras; {_RESAVE}")
        if values:
            try:
                dst_layer.set_weights(values)
            except Exception as e:
                raise UsageError(f"{path}: cannot copy the weights of layer '{name}' "
                                 f"({_first_line(e)}); {_RESAVE}") from None


def _index_bound(model, i: int) -> int | None:
    """Inputs that feed an Embedding are indices: keep them below its input_dim (else None)."""
    try:
        consumers = [n.layer for n in model._input_layers[i]._outbound_nodes]
    except (AttributeError, IndexError):
        return None
    dims = [getattr(c, "input_dim", None) for c in consumers if type(c).__name__ == "Embedding"]
    dims = [d for d in dims if d]
    return min(dims) if dims else None


def _random_inputs(model, np):
    rng = np.random.default_rng(0)
    xs = []
    for i, t in enumerate(model.inputs):
        # Unknown dimensions (batch, free spatial/time axes) get a small fixed size.
        shape = [2] + [d if d is not None else 16 for d in t.shape.as_list()[1:]]
        dtype = t.dtype.as_numpy_dtype
        bound = _index_bound(model, i)
        if bound is not None or t.dtype.is_integer or t.dtype.is_bool:
            xs.append(rng.integers(0, bound or 2, shape).astype(dtype))
        else:
            xs.append(rng.standard_normal(shape).astype(dtype))
    return xs


def _check_outputs(path: str, src, model, np) -> None:
    xs = _random_inputs(model, np)
    feed = xs[0] if len(xs) == 1 else xs
    try:
        ref = src(feed, training=False)
        out = model(feed, training=False)
    except Exception as e:
        raise UsageError(f"{path}: the rebuilt tf_keras model does not run on random inputs "
                         f"({_first_line(e)}); {_RESAVE}") from None
    import tensorflow as tf

    refs = [np.asarray(r) for r in tf.nest.flatten(ref)]
    outs = [np.asarray(o) for o in tf.nest.flatten(out)]
    if len(refs) != len(outs):
        raise UsageError(f"{path}: the rebuilt tf_keras model has {len(outs)} outputs, the Keras 3 "
                         f"model {len(refs)}; {_RESAVE}")
    for i, (r, o) in enumerate(zip(refs, outs)):
        tol = OUTPUT_ATOL * max(1.0, float(np.max(np.abs(r))) if r.size else 1.0)
        diff = float(np.max(np.abs(r.astype(np.float64) - o.astype(np.float64)))) \
            if r.shape == o.shape else float("inf")
        if not diff < tol:
            where = _first_divergent_layer(src, model, feed, np)
            raise UsageError(f"{path}: the tf_keras rebuild differs from the Keras 3 model "
                             f"(output {i}: max abs diff {diff:.3g} > {tol:.3g}{where}); {_RESAVE}")


def _first_divergent_layer(src, model, feed, np) -> str:
    """Name the first layer (in the Keras 3 model's order) whose output differs, to point the user
    at the culprit. Best effort: empty when the models cannot be probed layer by layer."""
    try:
        import keras as k3
        import tf_keras as tk

        names = [l.name for l in src.layers if not type(l).__name__ == "InputLayer"]
        single = len(src.inputs) == 1  # match the structure of `feed` (Keras 3 warns otherwise)
        src_probe = k3.Model(src.inputs[0] if single else src.inputs,
                             [src.get_layer(n).output for n in names])
        dst_probe = tk.Model(model.inputs[0] if single else model.inputs,
                             [model.get_layer(n).output for n in names])
        for n, a, b in zip(names, src_probe(feed, training=False), dst_probe(feed, training=False)):
            a, b = np.asarray(a), np.asarray(b)
            tol = OUTPUT_ATOL * max(1.0, float(np.max(np.abs(a))) if a.size else 1.0)
            if a.shape != b.shape or not float(np.max(np.abs(a - b))) < tol:
                return f"; first differing layer '{n}' ({type(src.get_layer(n)).__name__})"
    except Exception:
        return ""
    return ""
