"""The recurrent encoder-decoder: shapes, no attention on padding, cached decoding equal to teacher forcing
(each cell with Bahdanau and a Luong score), the shared searches, padding not changing a sentence's
result, save and reload, a few fit() steps on a copy task."""
import re

import keras
import numpy as np
import pytest

from apps.seq2seq_attention.model import Seq2SeqConfig, build_seq2seq
from data.text.subword import BOS, EOS, PAD
from layers.decoding.search import beam_search, greedy_search
from layers.losses.sequence import MaskedSmoothedCrossEntropy
from tests.conftest import compile_built

V, E, UNITS = 20, 6, 8
SOURCE = np.array([[5, 6, 7, 8, EOS], [9, 10, EOS, PAD, PAD]], np.int32)  # the second has two padding positions
TARGET_IN = np.array([[BOS, 11, 12, 13], [BOS, 14, EOS, PAD]], np.int32)
KINDS = {  # stacked layers on two of them
    "gru-bahdanau": dict(cell="gru", attention="bahdanau", encoder_layers=2, decoder_layers=2),
    "lstm-bahdanau": dict(cell="lstm", attention="bahdanau"),
    "gru-luong_general": dict(cell="gru", attention="luong_general"),
    "lstm-luong_dot": dict(cell="lstm", attention="luong_dot", decoder_layers=2),
}
_MODELS = {}


def tiny(kind, **overrides):
    """A seeded tiny model of `kind` (cached unless `overrides` are given)."""
    if overrides or kind not in _MODELS:
        keras.utils.set_random_seed(0)
        cfg = Seq2SeqConfig(**{**KINDS[kind], "embedding_dim": E, "units": UNITS, "dropout": 0.0, **overrides})
        model = build_seq2seq(cfg, V)
        if overrides:
            return model
        _MODELS[kind] = model
    return _MODELS[kind]


def _greedy(model, source, length):
    tokens, weights = greedy_search(model.decode_step, model.start_decoding(source, length), source.shape[0],
                                    source.shape[1], BOS, EOS, length)
    return tokens.numpy(), weights.numpy()


def test_config_checks_and_tied_embeddings():
    with pytest.raises(ValueError, match="even"):
        Seq2SeqConfig(units=7).check()
    untied = build_seq2seq(Seq2SeqConfig(embedding_dim=E, units=UNITS), V)
    tied = build_seq2seq(Seq2SeqConfig(embedding_dim=E, units=UNITS, tie_embeddings=True), V)
    assert untied.count_params() - tied.count_params() == V * E


@pytest.mark.parametrize("kind", ["gru-bahdanau", "lstm-luong_dot"])
def test_logits_shape_and_no_attention_on_padding(kind):
    model = tiny(kind)
    assert tuple(model((SOURCE, TARGET_IN)).shape) == (2, 4, V)
    maps = model.attention_weights(SOURCE, TARGET_IN).numpy()
    assert maps.shape == (2, 4, 5) and maps.dtype == np.float32
    assert np.all(maps[1, :, 3:] == 0.0)
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", list(KINDS))
def test_cached_decoding_equals_teacher_forcing(kind):
    model, length = tiny(kind), 6
    tokens, _ = _greedy(model, SOURCE, length)
    target_in = np.concatenate([np.full((2, 1), BOS), tokens[:, :-1]], 1).astype("int32")
    full = keras.ops.log_softmax(model((SOURCE, target_in), training=False), axis=-1).numpy()
    state = model.start_decoding(SOURCE, length)
    structure = {k: (v.shape, v.dtype) for k, v in state.items()}
    for t in range(length):
        log_probs, state, weights = model.decode_step(target_in[:, t], t, state)
        assert log_probs.dtype == "float32" and weights.dtype == "float32" and tuple(weights.shape) == (2, 5)
        np.testing.assert_allclose(log_probs.numpy(), full[:, t], atol=1e-5)
    assert {k: (v.shape, v.dtype) for k, v in state.items()} == structure
    ended = np.cumsum(tokens == EOS, 1) - (tokens == EOS) > 0  # positions after a sentence's EOS hold PAD
    np.testing.assert_array_equal(np.where(ended, PAD, full.argmax(-1)), tokens)


@pytest.mark.parametrize("kind", ["lstm-bahdanau", "gru-luong_general"])
def test_searches_run_and_beam_one_is_greedy(kind):
    model = tiny(kind)
    greedy, g_weights = _greedy(model, SOURCE, 7)
    beam, b_weights = beam_search(model.decode_step, model.start_decoding(SOURCE, 7), 2, 5, BOS, EOS, 7, beam=1, alpha=0.0)
    np.testing.assert_array_equal(greedy, beam.numpy())
    np.testing.assert_allclose(g_weights, b_weights.numpy(), atol=1e-6)
    wide, w_weights = beam_search(model.decode_step, model.start_decoding(SOURCE, 7), 2, 5, BOS, EOS, 7, beam=3)
    assert wide.shape == (2, 7) and w_weights.shape == (2, 7, 5)
    assert np.all((wide.numpy() >= 0) & (wide.numpy() < V))
    assert np.all(w_weights.numpy()[1, :, 3:] == 0.0)


@pytest.mark.parametrize("kind", ["gru-bahdanau", "lstm-luong_dot"])
def test_a_padded_batch_gives_each_sentence_its_own_result(kind):
    model = tiny(kind)
    batch_logits = model((SOURCE, TARGET_IN)).numpy()
    batch_tokens, batch_weights = _greedy(model, SOURCE, 6)
    for i, n in enumerate((SOURCE != PAD).sum(1)):
        alone = SOURCE[i:i + 1, :n]
        np.testing.assert_allclose(model((alone, TARGET_IN[i:i + 1])).numpy()[0], batch_logits[i], atol=1e-5)
        tokens, weights = _greedy(model, alone, 6)
        np.testing.assert_array_equal(tokens[0], batch_tokens[i])
        np.testing.assert_allclose(weights[0], batch_weights[i, :, :n], atol=1e-6)


@pytest.mark.parametrize("kind", ["gru-bahdanau", "lstm-luong_dot"])
def test_save_and_reload(kind, tmp_path):
    model = tiny(kind)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(again((SOURCE, TARGET_IN)), model((SOURCE, TARGET_IN)), atol=1e-6)
    np.testing.assert_array_equal(_greedy(again, SOURCE, 6)[0], _greedy(model, SOURCE, 6)[0])


def test_fit_reduces_the_loss_on_a_copy_task():
    rng = np.random.default_rng(0)
    n, length = 64, 6
    lengths = rng.integers(2, length, n)  # real tokens before EOS
    positions = np.arange(length)[None]
    target = np.where(positions < lengths[:, None], rng.integers(4, V, (n, length)), PAD)
    target[np.arange(n), lengths] = EOS
    target_in = np.concatenate([np.full((n, 1), BOS), target[:, :-1]], 1)
    x, y = (target.astype("int32"), target_in.astype("int32")), target.astype("int32")
    model = tiny("gru-luong_general", dropout=0.1)
    compile_built(model, optimizer=keras.optimizers.Adam(0.02), loss=MaskedSmoothedCrossEntropy(), jit_compile=False)
    before = model.evaluate(x, y, batch_size=32, verbose=0)
    model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    assert model.evaluate(x, y, batch_size=32, verbose=0) < before - 0.1


@pytest.mark.parametrize("kind", ["lstm-bahdanau", "gru-luong_general"])  # each cell, each attention's ops
def test_the_training_step_compiles_with_xla(kind):
    """The translation apps train with jit_compile on by default; the gradient of the decoder's time loop
    must compile (a Dense on a rank-3 query inside the loop did not). XLA compiling costs 9-19 s a model, so
    luong_dot, whose ops are luong_general's without its Dense, and the other two pairings are left out."""
    model = tiny(kind, dropout=0.1)
    target = np.array([[11, 12, 13, EOS], [14, EOS, PAD, PAD]], np.int32)
    compile_built(model, optimizer=keras.optimizers.Adam(0.01), loss=MaskedSmoothedCrossEntropy(), jit_compile=True)
    first = model.train_on_batch((SOURCE, TARGET_IN), target)
    for _ in range(3):
        last = model.train_on_batch((SOURCE, TARGET_IN), target)
    assert np.isfinite(last) and last < first


def test_checkpoint_keys_do_not_depend_on_the_models_built_before():
    """Checkpoint keys are variable paths: a second model in a process has the first one's names, which are
    those a fresh process gives (and runs saved before these names were fixed hold)."""
    from apps.core.checkpoints import model_variables

    first, second = (list(model_variables(tiny("gru-bahdanau", dropout=0.1))) for _ in range(2))
    assert first == second
    assert "seq2_seq/encoder_1/forward_gru_1/gru_cell/kernel" in first and "seq2_seq/bridge/kernel" in first, first
    assert not [k for k in first if re.search(r"seed_generator_\d", k)], first
