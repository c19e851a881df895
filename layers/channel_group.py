"""ChannelGroup: one of `groups` equal slices of a feature map's channels (darknet's grouped route)."""
import keras


@keras.saving.register_keras_serializable(package="suite")
class ChannelGroup(keras.layers.Layer):
    """Channels [group_id * c / groups, (group_id + 1) * c / groups) of the input: what darknet's
    `[route] groups=2 group_id=1` passes on, the second half of the channels, which CSPDarknet-tiny
    sends through its partial block while the whole map goes round it.

    >>> ChannelGroup(2, 1)(keras.ops.reshape(keras.ops.arange(4.0), (1, 1, 1, 4))).numpy().ravel().tolist()
    [2.0, 3.0]
    """

    def __init__(self, groups=2, group_id=0, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= int(group_id) < int(groups):
            raise ValueError(f"group_id must be in 0..{int(groups) - 1}; got {group_id}")
        self.groups = int(groups)
        self.group_id = int(group_id)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(f"ChannelGroup({self.groups}) needs a known channel count divisible by {self.groups}; "
                             f"got {channels}")

    def call(self, x):
        width = x.shape[-1] // self.groups
        return x[..., self.group_id * width:(self.group_id + 1) * width]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // self.groups)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "group_id": self.group_id}
