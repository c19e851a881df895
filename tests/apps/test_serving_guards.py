"""Serving inputs are guarded: unusual requests get an INVALID_ARGUMENT naming the input (and the bad
indices) or a documented result. (The declared 1-D string batch and the refusal of another rank or an
empty batch: every app's export, in test_every_app.py's clean process.)

The modules are built in-process from the apps' own classes with tiny untrained models (the guards do
not depend on the weights)."""
import io
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data.generated.toy_text import ES, EN
from data.text.subword import EOS, PAD
from tests.data.images.test_decode import huge_jpeg, huge_png

IMAGE_APPS = ["image_classification", "object_detection", "semantic_segmentation", "face_verification"]


def _jpeg(size=(24, 32)):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _classifier(max_pixels=None):
    from apps.image_classification.app import ClassifierServing

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    return ClassifierServing(model, ["a", "b"], (8, 8, 3), max_pixels)


def _detector(max_pixels=None):
    from apps.core.config import apply_overrides
    from apps.object_detection.app import DetectorServing, ObjectDetection
    from apps.object_detection.model import build_detector

    cfg = apply_overrides(ObjectDetection.Config(), {
        "data.image_size": "64", "model.width": "8", "model.fpn_width": "16", "model.head_width": "16",
        "model.head_depth": "1"})
    app = ObjectDetection(cfg)
    model = build_detector(app.config.model, 64, 2, app.coder.anchors_per_cell)
    return DetectorServing(model, app.coder, ["a", "b"], 64, 0.05, 0.5, 10, max_pixels)


def _segmenter(max_pixels=None):
    from apps.semantic_segmentation.model import ModelConfig, build_segmenter
    from apps.semantic_segmentation.serving import SegmenterServing

    return SegmenterServing(build_segmenter(ModelConfig(width=2, depth=2), 2), ["a", "b"], 4, max_pixels=max_pixels)


def _faces(max_pixels=None):
    from apps.face_verification.model import ModelConfig, build_embedder
    from apps.face_verification.serving import FaceServing

    model = build_embedder(ModelConfig(backbone="resnet", weights=None, width=2, depth=1, embedding_dim=4), 16)
    return FaceServing(model, 16, {"threshold": 1.0, "slope": -4.0, "intercept": 4.0}, max_pixels=max_pixels)


def _translator():
    from apps.transformer_translation.model import Transformer
    from layers.decoding.translator import TranslationServing
    from data.text.subword import EOS, Subwords, train_sentencepiece

    source = train_sentencepiece([w.capitalize() + "." for w in EN] + [" ".join(EN)] * 3, vocab_size=300)
    target = train_sentencepiece([w.capitalize() + "." for w in ES] + [" ".join(ES)] * 3, vocab_size=300)
    model = Transformer(len(Subwords(source)), len(Subwords(target)), hidden_dim=16, encoder_layers=1,
                        decoder_layers=1, num_heads=2, intermediate_dim=32, dropout=0.0)
    dummy = np.full((1, 4), EOS, np.int32)
    model((dummy, dummy))
    return TranslationServing(model, source, target, max_length=16, beam=2)


def _embeddings():
    from apps.word_embeddings.serving import EmbeddingServing

    words = ["cat", "dog", "war", "peace", "king"]
    return EmbeddingServing(np.random.default_rng(0).normal(size=(len(words), 4)).astype(np.float32), words)


BUILD = {"image_classification": _classifier, "object_detection": _detector, "semantic_segmentation": _segmenter,
         "face_verification": _faces}


@pytest.fixture(scope="module")
def translator():
    return _translator()


@pytest.fixture(scope="module")
def embeddings():
    return _embeddings()


def _error(call, *args):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        call(*args)
    return " ".join(str(error.value).split())


@pytest.mark.parametrize("app", IMAGE_APPS)
def test_image_signatures_refuse_huge_and_truncated_images_by_index(app):
    module = BUILD[app]()  # kept: a tf.function method holds its module weakly
    serve = module.serve
    good = _jpeg()
    assert serve(tf.constant([good]))
    started = time.time()
    huge = _error(serve, tf.constant([good, good, huge_png()]))
    assert "claim more than 120000000 pixels (width x height), the serving limit, at indices:] [2]" in huge
    assert "claim more than 120000000 pixels" in _error(serve, tf.constant([huge_jpeg()]))
    assert time.time() - started < 20  # refused from the header: nothing was decoded
    cut = _error(serve, tf.constant([good[:-100], good]))
    assert "`images` holds truncated or corrupt images" in cut and "at indices:] [0]" in cut


@pytest.mark.parametrize("app", IMAGE_APPS)
def test_image_pixel_limit_is_a_constructor_argument(app):
    good = _jpeg((24, 32))  # 768 pixels
    allowed, refused = BUILD[app](max_pixels=768), BUILD[app](max_pixels=767)
    assert allowed.serve(tf.constant([good]))
    assert "claim more than 767 pixels" in _error(refused.serve, tf.constant([good]))


def test_face_verify_refuses_unpaired_batches():
    module = _faces()
    good = _jpeg()
    out = module.verify(tf.constant([good, good]), tf.constant([good, _jpeg((30, 20))]))
    assert out["distances"].shape == (2,) and bool(out["same"][0]) and float(out["distances"][0]) < 1e-6
    assert "`images_a` and `images_b` must hold the same number of images" in _error(
        module.verify, tf.constant([good, good]), tf.constant([good]))
    cut = _error(module.verify, tf.constant([good]), tf.constant([good[:-100]]))
    assert "`images_b` holds truncated or corrupt images" in cut and "at indices:] [0]" in cut


def test_translation_refuses_empty_batches_and_invalid_utf8(translator):
    for call in (translator.serve, translator.attention):
        assert "`sentences` is empty: send at least one sentence" in _error(call, tf.constant([], tf.string))
        message = _error(call, tf.constant([b"Two red.", "Más".encode("latin-1"), b"ok \xed\xa0\x80"]))
        assert "`sentences` holds text that is not valid UTF-8, at indices:] [1 2]" in message


def test_translation_of_empty_and_very_long_sentences(translator):
    long_ = "Two red " * 125_000  # a megabyte: cut to 64 x max_length characters before tokenising
    started = time.time()
    out = translator.serve(tf.constant(["", " \t\u00a0", "Two red.", long_, "Two red. " * 20]))
    assert time.time() - started < 30
    assert out["translations"].numpy().tolist()[:2] == [b"", b""]
    assert out["truncated"].numpy().tolist() == [False, False, False, True, True]
    assert out["translations"].numpy()[2] == translator.serve(tf.constant(["Two red."]))["translations"].numpy()[0]
    seen = translator.attention(tf.constant(["", "Two red."]))  # what the attention plots draw: nothing decoded
    assert seen["target_ids"].numpy()[0].tolist()[:2] == [EOS, PAD] and not seen["weights"].numpy()[0].any()
    assert seen["target_ids"].numpy()[1].tolist()[:2] != [EOS, PAD] and seen["weights"].numpy()[1].any()


def test_word_embeddings_guards(embeddings):
    for call in (embeddings.serve, lambda w: embeddings.neighbors(w, tf.constant(2))):
        assert "`words` is empty: send at least one word" in _error(call, tf.constant([], tf.string))
        assert "`words` holds text that is not valid UTF-8, at indices:] [1]" in _error(
            call, tf.constant([b"cat", b"\xc3"]))
    out = embeddings.serve(tf.constant(["", "a" * 1_000_000, " Cat "]))
    assert out["in_vocabulary"].numpy().tolist() == [False, False, True]
    assert not out["vectors"].numpy()[:2].any()
    near = embeddings.neighbors(tf.constant(["", "dog"]), tf.constant(2))
    assert near["neighbors"].numpy()[0].tolist() == [b"", b""]
    assert near["in_vocabulary"].numpy().tolist() == [False, True]
