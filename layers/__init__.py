"""Custom Keras layers: one class per file, registered for serialisation; imports nothing from apps."""
from layers.ada_in import AdaIN
from layers.channel_group import ChannelGroup
from layers.conv_bn_act import ConvBNAct
from layers.dense_block import DenseBlock
from layers.depthwise_separable_conv import DepthwiseSeparableConv
from layers.fire_module import FireModule
from layers.image_preprocess import ImagePreprocess
from layers.inception_block import InceptionBlock
from layers.inverted_residual import InvertedResidual
from layers.nin_block import NiNBlock
from layers.pairwise_logits import PairwiseLogits
from layers.reflection_pad_2d import ReflectionPad2D
from layers.residual_block import ResidualBlock
from layers.zero_padded_add import ZeroPaddedAdd

__all__ = ["AdaIN", "ChannelGroup", "ConvBNAct", "DenseBlock", "DepthwiseSeparableConv", "FireModule", "ImagePreprocess",
           "InceptionBlock", "InvertedResidual", "NiNBlock", "PairwiseLogits", "ReflectionPad2D",
           "ResidualBlock", "ZeroPaddedAdd"]
