"""Greedy and beam search on a hand-made step function whose best sequence greedy search misses, and on a
recurrent-style step whose state is a nested structure."""
import numpy as np
import pytest
import tensorflow as tf

from data.text.subword import PAD
from layers.decoding.search import beam_search, greedy_search, length_penalty

BOS, EOS = 1, 2  # a toy vocabulary of 6 ids; PAD is the suite's, the searches' default
# next-token probabilities by previous token: greedy takes 3 (0.6) then must pay 0.3; 4 (0.4) leads to EOS at 1.0
TABLE = np.full((6, 6), 1e-6)
TABLE[BOS, [3, 4]] = [0.6, 0.4]
TABLE[3, [EOS, 5]] = [0.3, 0.7]
TABLE[4, EOS] = 1.0
TABLE[5, EOS] = 0.45
TABLE[5, 5] = 0.55
TABLE[EOS, EOS] = 1.0
LOG = tf.constant(np.log(TABLE / TABLE.sum(1, keepdims=True)), tf.float32)


def step(tokens, index, state):
    """Log-probabilities from the previous token; the state counts steps per row; weights are one-hot."""
    weights = tf.one_hot(tf.fill(tf.shape(tokens), index % 3), 3)
    return tf.gather(LOG, tokens), {"steps": state["steps"] + 1}, weights


def _run(search, **kw):
    state = {"steps": tf.zeros([2])}
    tokens, weights = search(step, state, 2, 3, BOS, EOS, **kw)
    return tokens.numpy(), weights.numpy()


def test_greedy_takes_the_locally_best_token():
    tokens, _ = _run(greedy_search, max_length=6)
    assert tokens[0].tolist()[:4] == [3, 5, 5, 5]  # 0.6 * 0.7 * 0.55 ... never ends well


def test_beam_finds_the_better_sequence_and_pads_after_the_end():
    tokens, weights = _run(beam_search, max_length=6, beam=3, alpha=0.0)
    assert tokens[0].tolist() == [4, EOS, PAD, PAD, PAD, PAD]  # p = 0.4 beats 0.6 * 0.3 = 0.18
    np.testing.assert_array_equal(weights[0, 2:], 0.0)  # nothing recorded after the end
    np.testing.assert_array_equal(weights[0, :2], np.eye(3)[[0, 1]])


def test_beam_one_equals_greedy():
    greedy, g_weights = _run(greedy_search, max_length=6)
    beam, b_weights = _run(beam_search, max_length=6, beam=1, alpha=0.0)
    np.testing.assert_array_equal(greedy, beam)
    np.testing.assert_array_equal(g_weights, b_weights)


def test_max_length_guard_stops_a_sequence_that_never_ends():
    tokens, _ = _run(greedy_search, max_length=4)
    assert tokens.shape == (2, 4) and EOS not in tokens[0]


def test_length_penalty_prefers_longer_hypotheses():
    """3,2 (p=0.18) vs 4,2 (0.4) vs 3,5,2 (0.189): a strong alpha cannot beat 0.4, but ranks 3,5,2 above 3,2."""
    short, long_ = np.log(0.18) / length_penalty(2, 2.0).numpy(), np.log(0.6 * 0.7 * 0.45) / length_penalty(3, 2.0).numpy()
    assert long_ > short
    tokens, _ = _run(beam_search, max_length=6, beam=3, alpha=2.0)
    assert tokens[0].tolist()[:2] == [4, EOS]


def test_runs_inside_a_tf_function():
    traced = tf.function(lambda: beam_search(step, {"steps": tf.zeros([2])}, 2, 3, BOS, EOS, 6, beam=3, alpha=0.6))
    assert traced()[0].numpy()[0].tolist()[:2] == [4, EOS]


def _tables(seed):
    """Two random next-token tables (one per sentence) that never propose PAD."""
    p = np.random.default_rng(seed).dirichlet(np.full(6, 0.7), size=(2, 6))
    p[..., PAD] = 1e-9
    return tf.constant(np.log(p / p.sum(-1, keepdims=True)), tf.float32)


TABLES = _tables(2)  # sentence 0 ends at once; on sentence 1 beam 3 leaves the greedy path mid-way


def recurrent_step(tokens, index, state):
    """A recurrent decoder's shape of state: a nested (h, [c]) of per-row tensors, not caches by position.
    h counts the tokens each row has read (so the weights, h itself, show whether rows were reordered
    with their hypotheses); "table" picks each sentence's own next-token table."""
    (h, (c,)), table = state["memory"], state["table"]
    h = h + tf.one_hot(tokens, 6)
    log_probs = tf.gather_nd(TABLES, tf.stack([table, tokens], 1))
    return log_probs, {"memory": (h, [c + 1]), "table": table}, h


@pytest.mark.parametrize("beam", [1, 3])
def test_a_recurrent_state_follows_its_hypotheses(beam):
    state = {"memory": (tf.zeros([2, 6]), [tf.zeros([2])]), "table": tf.constant([0, 1])}
    search = tf.function(lambda: beam_search(recurrent_step, state, 2, 6, BOS, EOS, max_length=6, beam=beam, alpha=0.6))
    tokens, weights = (t.numpy() for t in search())
    for row in range(2):
        seq = tokens[row].tolist()
        end = seq.index(EOS) + 1 if EOS in seq else len(seq)
        read = [BOS] + seq[:end - 1]
        for i in range(end):  # the state behind step i has read BOS and the hypothesis's first i tokens
            np.testing.assert_array_equal(weights[row, i], np.bincount(read[:i + 1], minlength=6))
        np.testing.assert_array_equal(weights[row, end:], 0.0)
    if beam == 3:
        assert tokens[1].tolist() == [5, 3, 1, 5, 3, 5]  # greedy: 5, 3, 5, 3, ... (so rows were reordered)
    if beam == 1:  # greedy on each sentence's own table
        for row in range(2):
            previous, expected = BOS, []
            for _ in range(6):
                previous = int(np.argmax(TABLES.numpy()[row, previous]))
                expected.append(previous)
                if previous == EOS:
                    break
            assert tokens[row].tolist()[:len(expected)] == expected
