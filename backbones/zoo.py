"""The suite's CNN zoo, scaled for CPU: LeNet-5, VGG, NiN, Inception, ResNet, DenseNet, MobileNetV2.

Each body returns its output, its pyramid {stride: feature map} (the last map at each stride) and
its feature layer names. Inputs are standardised pixels (see backbones.preprocessing).
"""
import keras

from backbones.registry import make_backbone, register_backbone
from layers import (ConvBNAct, DenseBlock, DepthwiseSeparableConv, InceptionBlock, InvertedResidual, NiNBlock,
                    ResidualBlock)

_INITIALIZERS = {"he": "he_normal", "xavier": "glorot_uniform"}


def _lenet5(x, o, common):
    c1 = ConvBNAct(6, 5, activation="tanh", name="c1", **common)(x)
    x = keras.layers.AveragePooling2D(2, name="s2")(c1)
    c3 = ConvBNAct(16, 5, activation="tanh", name="c3", **common)(x)
    s4 = keras.layers.AveragePooling2D(2, name="s4")(c3)
    x = keras.layers.Flatten()(s4)
    x = keras.layers.Dense(120, activation="tanh", name="f5")(x)
    return keras.layers.Dense(84, activation="tanh", name="f6")(x), {1: c1, 2: c3, 4: s4}, ["c1", "c3"]


def _vgg(x, o, common):
    pyramid, names = {}, []
    for stage in range(3):
        for i in range(o.depth):
            names.append(f"block{stage + 1}_conv{i + 1}")
            x = ConvBNAct(o.width * 2**stage, 3, name=names[-1], **common)(x)
        pyramid[2**stage] = x
        x = keras.layers.MaxPooling2D(2, name=f"block{stage + 1}_pool")(x)
    pyramid[8] = x
    return x, pyramid, names


def _nin(x, o, common):
    w = o.width
    a = NiNBlock(3 * w, 5, name="nin1", **common)(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="same")(a)
    b = NiNBlock(6 * w, 5, name="nin2", **common)(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="same")(b)
    c = NiNBlock(8 * w, 3, name="nin3", **common)(x)
    return c, {1: a, 2: b, 4: c}, ["nin1", "nin2", "nin3"]


def _inception(x, o, common):
    w = o.width
    x = ConvBNAct(2 * w, 3, name="stem", **common)(x)
    x = InceptionBlock(w, w, 2 * w, w // 4, w // 2, w // 2, name="inception3a", **common)(x)
    a = InceptionBlock(2 * w, 2 * w, 3 * w, w // 2, 3 * w // 2, w, name="inception3b", **common)(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="same")(a)
    x = InceptionBlock(3 * w, 3 * w // 2, 4 * w, w // 4, w, w, name="inception4a", **common)(x)
    b = InceptionBlock(4 * w, 2 * w, 5 * w, w // 2, 2 * w, 2 * w, name="inception4b", **common)(x)
    c = keras.layers.MaxPooling2D(3, 2, padding="same")(b)
    return c, {1: a, 2: b, 4: c}, ["stem", "inception3a", "inception3b", "inception4a", "inception4b"]


def _resnet(x, o, common):
    x = ConvBNAct(o.width, 3, name="stem", **common)(x)
    pyramid, names = {}, ["stem"]
    for stage in range(3):
        for i in range(o.depth):
            names.append(f"stage{stage + 1}_block{i + 1}")
            x = ResidualBlock(o.width * 2**stage, 2 if stage > 0 and i == 0 else 1, bottleneck=o.bottleneck,
                              name=names[-1], **common)(x)
        pyramid[2**stage] = x
    return x, pyramid, names


def _densenet(x, o, common):
    x = ConvBNAct(2 * o.width, 3, name="stem", **common)(x)
    pyramid, names = {}, ["stem"]
    for stage in range(3):
        names.append(f"dense{stage + 1}")
        x = DenseBlock(o.depth * 2, o.width // 2, name=names[-1], **common)(x)
        if stage < 2:
            x = ConvBNAct(x.shape[-1] // 2, 1, name=f"transition{stage + 1}", **common)(x)
            pyramid[2**stage] = x
            x = keras.layers.AveragePooling2D(2, name=f"transition{stage + 1}_pool")(x)
    pyramid[4] = x
    return x, pyramid, names


def _mobilenetv2(x, o, common):
    w = o.width
    x = ConvBNAct(w, 3, activation="relu6", name="stem", **common)(x)
    x = DepthwiseSeparableConv(w, name="separable", **common)(x)
    pyramid, names = {}, ["stem", "separable"]
    for stage, (mult, strides) in enumerate([(1.5, 1), (2, 2), (4, 2)]):
        for i in range(o.depth):
            names.append(f"stage{stage + 1}_block{i + 1}")
            x = InvertedResidual(int(w * mult), strides if i == 0 else 1, name=names[-1], **common)(x)
        pyramid[2**stage] = x
    x = pyramid[4] = ConvBNAct(8 * w, 1, activation="relu6", name="head_conv", **common)(x)
    return x, pyramid, names + ["head_conv"]


def _zoo_backbone(body):
    def build(input_shape, options, weights=None):
        inputs = keras.Input(input_shape)
        common = dict(use_bn=options.batch_norm, weight_decay=options.l2, kernel_initializer=_INITIALIZERS[options.init])
        x, stem = inputs, {}
        if options.stem_stride == 4:  # detection: the three stages then give strides 4, 8 and 16
            x = stem[2] = ConvBNAct(options.width // 2, 3, strides=2, name="stem_s2")(x)
            x = ConvBNAct(options.width, 3, strides=2, name="stem_s4")(x)
        elif options.stem_stride != 1:
            raise ValueError(f"stem_stride must be 1 or 4; got {options.stem_stride}")
        output, pyramid, names = body(x, options, common)
        pyramid = {**stem, **{stride * options.stem_stride: t for stride, t in pyramid.items()}}
        return make_backbone(inputs, output, pyramid, names)

    return build


for _name, _body, _what in [
        ("lenet5", _lenet5, "LeNet-5 (LeCun 1998): tanh convolutions, average pooling, dense layers"),
        ("vgg", _vgg, "VGG-style stacks of 3x3 convolutions (Simonyan & Zisserman 2014)"),
        ("nin", _nin, "Network in Network (Lin 2013): 1x1 'mlpconv' blocks"),
        ("inception", _inception, "GoogLeNet-style Inception blocks (Szegedy 2014)"),
        ("resnet", _resnet, "ResNet (He 2015): residual blocks, basic or bottleneck"),
        ("densenet", _densenet, "DenseNet (Huang 2016): dense blocks with transitions"),
        ("mobilenetv2", _mobilenetv2, "MobileNetV2 (Sandler 2018): inverted residuals, depthwise convolutions")]:
    register_backbone(_name, preprocessing="standardize", description=_what)(_zoo_backbone(_body))
