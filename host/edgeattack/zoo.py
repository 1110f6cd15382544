"""The model zoo (CONVENTIONS: Names). Each builder takes input_shape, classes and a width multiplier
(a distilled student is a narrower one) and returns an uncompiled tf_keras model ending in Softmax.
"""
from __future__ import annotations

from .errors import UsageError

# name -> (default input shape, default classes)
ZOO = {
    "cnn-digits": ((8, 8, 1), 10),
    "cnn-mnist": ((28, 28, 1), 10),
    "resnet8": ((32, 32, 3), 10),
    "dscnn": ((49, 10, 1), 12),
    "mobilenet-tiny": ((32, 32, 3), 10),
}


def _ch(n: int, width: float) -> int:
    return max(1, int(round(n * width)))


def build_model(name: str, input_shape=None, classes: int | None = None, width: float = 1.0):
    if name not in ZOO:
        raise UsageError(f"--model {name}: unknown zoo model; choose one of {', '.join(ZOO)}")
    if width <= 0:
        raise UsageError(f"--width {width}: the width multiplier must be > 0")
    default_shape, default_classes = ZOO[name]
    shape = tuple(int(v) for v in (input_shape or default_shape))
    classes = int(classes or default_classes)
    if len(shape) != 3:
        raise UsageError(f"input shape {shape}: zoo models take images HxWxC")
    from .tfutil import keras

    k = keras()
    builder = {"cnn-digits": _cnn_digits, "cnn-mnist": _cnn_mnist, "resnet8": _resnet8,
               "dscnn": _dscnn, "mobilenet-tiny": _mobilenet_tiny}[name]
    try:
        model = builder(k, shape, classes, width)
    except ValueError as e:  # e.g. pooling larger than the feature map
        raise UsageError(f"--model {name}: input shape {shape} does not fit this model ({e})") from None
    model._name = name.replace("-", "_")
    return model


def _head(k, x, classes):
    x = k.layers.Dense(classes)(x)
    return k.layers.Softmax()(x)


def _cnn_digits(k, shape, classes, w):
    inp = k.Input(shape)
    x = k.layers.Conv2D(_ch(16, w), 3, padding="same", activation="relu")(inp)
    x = k.layers.MaxPooling2D(2)(x) if min(shape[:2]) >= 2 else x
    x = k.layers.Conv2D(_ch(32, w), 3, padding="same", activation="relu")(x)
    x = k.layers.MaxPooling2D(2)(x) if min(shape[:2]) >= 4 else x
    x = k.layers.Flatten()(x)
    x = k.layers.Dense(_ch(64, w), activation="relu")(x)
    return k.Model(inp, _head(k, x, classes))


def _cnn_mnist(k, shape, classes, w):
    inp = k.Input(shape)
    x = k.layers.Conv2D(_ch(32, w), 3, activation="relu")(inp)
    x = k.layers.MaxPooling2D(2)(x)
    x = k.layers.Conv2D(_ch(64, w), 3, activation="relu")(x)
    x = k.layers.MaxPooling2D(2)(x)
    x = k.layers.Flatten()(x)
    x = k.layers.Dense(_ch(128, w), activation="relu")(x)
    return k.Model(inp, _head(k, x, classes))


def _conv_bn_relu(k, x, filters, kernel, strides=1, relu=True):
    x = k.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                        kernel_regularizer=k.regularizers.l2(1e-4))(x)
    x = k.layers.BatchNormalization()(x)
    return k.layers.Activation("relu")(x) if relu else x


def _resnet8(k, shape, classes, w):
    # MLPerf Tiny image-classification ResNet-8: three residual stacks (16, 32, 64 filters).
    inp = k.Input(shape)
    x = _conv_bn_relu(k, inp, _ch(16, w), 3)
    for i, filters in enumerate((16, 32, 64)):
        f = _ch(filters, w)
        strides = 1 if i == 0 else 2
        y = _conv_bn_relu(k, x, f, 3, strides)
        y = _conv_bn_relu(k, y, f, 3, relu=False)
        if strides != 1 or x.shape[-1] != f:
            x = k.layers.Conv2D(f, 1, strides=strides, padding="same",
                                kernel_regularizer=k.regularizers.l2(1e-4))(x)
        x = k.layers.Activation("relu")(k.layers.Add()([x, y]))
    x = k.layers.AveragePooling2D(pool_size=tuple(int(d) for d in x.shape[1:3]))(x)
    x = k.layers.Flatten()(x)
    return k.Model(inp, _head(k, x, classes))


def _dscnn(k, shape, classes, w):
    # MLPerf Tiny keyword-spotting DS-CNN: a strided 10x4 conv, then depthwise-separable blocks.
    f = _ch(64, w)
    inp = k.Input(shape)
    x = _conv_bn_relu(k, inp, f, (10, 4), strides=2)
    for _ in range(4):
        x = k.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = k.layers.Activation("relu")(k.layers.BatchNormalization()(x))
        x = _conv_bn_relu(k, x, f, 1)
    x = k.layers.AveragePooling2D(pool_size=tuple(int(d) for d in x.shape[1:3]))(x)
    x = k.layers.Flatten()(x)
    return k.Model(inp, _head(k, x, classes))


def _mobilenet_tiny(k, shape, classes, w):
    # MobileNet-style: explicit ZeroPadding2D before strided convs and global average pooling
    # (MEAN), operators microcontroller runtimes must support. The padding is symmetric on purpose:
    # SAME-like (0, 1) padding would be folded into the conv by the converter, leaving no PAD op.
    inp = k.Input(shape)
    x = k.layers.ZeroPadding2D(1)(inp)
    x = k.layers.Conv2D(_ch(8, w), 3, strides=2, padding="valid", use_bias=False)(x)
    x = k.layers.ReLU(6.0)(k.layers.BatchNormalization()(x))
    for filters, strides in ((16, 1), (32, 2), (32, 1), (64, 2)):
        if strides == 2:
            x = k.layers.ZeroPadding2D(1)(x)
        x = k.layers.DepthwiseConv2D(3, strides=strides, padding="same" if strides == 1 else "valid",
                                     use_bias=False)(x)
        x = k.layers.ReLU(6.0)(k.layers.BatchNormalization()(x))
        x = k.layers.Conv2D(_ch(filters, w), 1, use_bias=False)(x)
        x = k.layers.ReLU(6.0)(k.layers.BatchNormalization()(x))
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inp, _head(k, x, classes))


def count_params(model) -> int:
    return int(model.count_params())
