"""Prepared TensorFlow Datasets sets, opened offline from a local data_dir (nothing is downloaded)."""
from data.errors import DataError


def open_tfds(name, data_dir, split):
    """The builder of a tfds set prepared in `data_dir`, checked to hold `split` (nothing is downloaded)."""
    import tensorflow_datasets as tfds

    if not data_dir:
        raise DataError(f"tfds data set {name!r} needs --data.data_dir: this machine cannot download it")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # tfds raises several types for an unknown name
        raise DataError(f"unknown tfds data set {name!r}: {str(e).splitlines()[0]}") from None
    if not builder.is_prepared():
        raise DataError(
            f"tfds data set {name!r} is not prepared in {data_dir}; on a machine with network run "
            f"`tfds build {name} --data_dir {data_dir}` and copy that folder here"
        )
    if split not in builder.info.splits:
        raise DataError(f"tfds data set {name!r} has no split {split!r} (has {', '.join(builder.info.splits)})")
    return builder
