"""The image-classification app: what is specific to the task; the runner does the rest.

    python -m apps image_classification train --epochs 3
    python -m apps image_classification evaluate
    python -m apps image_classification predict shirt.png photos/
    python -m apps image_classification export
"""
import keras
import numpy as np
import tensorflow as tf

from apps.core.app import App, SmokeExample
from apps.core.errors import UserError
from apps.core.finetune import finetune_phases
from apps.core.registry import register_app
from apps.core.splits import RecordedSplits
from apps.image_classification.config import ClassificationConfig
from apps.image_classification.metrics import classification_report, plot_confusion_matrix
from apps.image_classification.model import build_classifier
from data.images.decode import decode_image_batch
from data.images.files import image_paths, refuse_dark_16_bit_png, refused_because
from data.images.pipeline import channel_stats, eval_batches, load_splits, split_record, train_epoch
from data.images.sources import load_embedded


@register_app("image_classification")
class ImageClassification(RecordedSplits, App):
    """Image classification: a CNN zoo trained from scratch, or a pretrained backbone fine-tuned."""

    Config = ClassificationConfig
    default_data = "embedded Fashion-MNIST subset, 6,000 + 1,000 images"
    file_sources = ("folder",)  # data whose splits are recorded file by file

    def __init__(self, config, run_dir=None):
        super().__init__(config, run_dir)
        self.class_names = None
        self.input_shape = None

    def load_splits(self, record, names):
        splits = load_splits(self.config.data, self.config.seed, record, names)
        if "train" in splits:
            self.input_shape = tuple(splits["train"].images.shape[1:])
        return splits

    def make_split_record(self, splits):
        return split_record(self.config.data, self.config.seed, splits)

    def state(self):
        """Called by the runner on the chief alone, as training starts (a new run's before the other workers
        read its splits): the splits are recorded, so that the other workers, a resumed run and `evaluate`
        see the same files."""
        self.record_splits()
        return {"class_names": self.class_names, "input_shape": list(self.input_shape)}

    def load_state(self, state):
        self.class_names = state["class_names"]
        self.input_shape = tuple(state["input_shape"])

    @classmethod
    def smoke_example(cls, folder):
        path = folder / "sample.png"
        tf.io.write_file(str(path), tf.io.encode_png(load_embedded("fashion_mnist")["test"].images[0]))
        flags = ["--epochs", "1", "--batch_size", "32", "--data.limit", "640", "--learning_rate", "0.003",
                 "--model.width", "8", "--model.depth", "1", "--verbose", "line"]
        return SmokeExample(flags, str(path), {"images": [path.read_bytes()]})

    def build_model(self):
        train = self.splits["train"]
        return build_classifier(self.config.model, self.input_shape, len(self.class_names), channel_stats(train.images))

    def build_dataset(self, split, epoch=0):
        cfg = self.config
        if split == "train":
            return train_epoch(self.splits["train"], cfg.data, cfg.batch_size, cfg.seed, epoch)
        return eval_batches(self.splits[split], cfg.batch_size)

    def compile_defaults(self):
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        if len(self.class_names) >= 5:
            metrics.append(keras.metrics.TopKCategoricalAccuracy(5, name="top5"))
        return {"loss": keras.losses.CategoricalCrossentropy(label_smoothing=self.config.label_smoothing), "metrics": metrics}

    def phases(self):
        return finetune_phases(self.config.model, self.config.epochs)

    def evaluate(self, model, out_dir):
        test = self.test_split()
        self.refuse_other_classes(test, by_count=self.config.data.source == "idx")  # IDX files name no classes
        if tuple(test.images.shape[1:]) != tuple(model.input_shape[1:]):
            raise UserError(f"test images are {test.images.shape[1:]} but the model expects {model.input_shape[1:]}; "
                            "use the data settings the model was trained with")
        probabilities = _batched_call(model, eval_batches(test, self.config.batch_size).map(lambda x, y: x))
        report = classification_report(test.labels, probabilities, self.class_names)
        plot_confusion_matrix(np.array(report["confusion_matrix"]), self.class_names, out_dir / "confusion_matrix.png")
        return report

    def predict(self, model, inputs):
        paths = image_paths(inputs)
        h, w, c = self.input_shape
        images = []
        for p in paths:
            data = p.read_bytes()
            try:
                images.append(decode_image_batch(tf.constant([data]), (h, w), c)[0])
            except tf.errors.InvalidArgumentError as e:
                raise UserError(f"{p}: {refused_because(e, data)}") from None
            refuse_dark_16_bit_png(p, data)
        probabilities = _batched_call(model, tf.data.Dataset.from_tensor_slices(tf.stack(images)).batch(64))
        k = min(self.config.top_k, len(self.class_names))
        records = []
        for p, probs in zip(paths, probabilities):
            top = np.argsort(-probs)[:k]
            records.append(f"{p}: " + ", ".join(f"{self.class_names[i]} ({probs[i]:.3f})" for i in top))
        return records

    def serving_model(self, model):
        return ClassifierServing(model, self.class_names, self.input_shape)


class ClassifierServing(tf.Module):
    """Encoded images in; class ids, class names and probabilities out. The request is checked before
    decoding (data.images.decode): an image whose header claims more than `max_pixels` pixels (None:
    data.images.decode.MAX_PIXELS, 120 megapixels), or a truncated JPEG/PNG, is an INVALID_ARGUMENT
    naming `images` and its index."""

    def __init__(self, model, class_names, input_shape, max_pixels=None):
        super().__init__()
        self.model = model
        self.class_names = tf.constant(class_names)
        self.size = tuple(input_shape[:2])
        self.channels = input_shape[2]
        self.max_pixels = max_pixels

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")], autograph=False)
    def serve(self, images):
        pixels = tf.cast(decode_image_batch(images, self.size, self.channels, self.max_pixels), tf.float32)
        probabilities = self.model(pixels, training=False)
        class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {"class_ids": class_ids, "class_names": tf.gather(self.class_names, class_ids),
                "probabilities": probabilities}


def _batched_call(model, dataset):
    """Run `model` over a dataset of image batches with one traced function (faster than predict)."""
    call = tf.function(lambda x: model(x, training=False))
    return np.concatenate([call(tf.cast(x, tf.float32)).numpy() for x in dataset])
