"""Benchmark: the recurrent seq2seq-with-attention app on the full English-Spanish Anki pairs, on the
Transformer benchmark's data, split, budget and measurements (bench/translation.py), so the two stand
side by side at the same wall time.

    .venv/bin/python bench/seq2seq.py --minutes 60          # train <= 60 min, evaluate greedy and beam 4, latency
    .venv/bin/python bench/seq2seq.py --timing_only         # a few hundred steps: tokens/s and MFU only

FLOPs are counted analytically per token from the layer shapes (training = 3 x forward): the
bidirectional encoder's gates, the attention keys' projection, per target token the attention
(query projection, scores and weighted sum over the source), the decoder cells, the readout
tanh(W_c [h; context]) and the output layer.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.translation import arguments, run  # noqa: E402

# Batches of 2,048 padded tokens (about 150 sentences, the batch of the recurrent NMT papers): the same tokens/s
# as 6,144 here (2,382 vs 2,337 target tokens/s), three times the updates, and a lower loss at equal tokens.
# Seven epochs of cosine decay fit the 60 minutes at that rate.
RECIPE = {"data.source": "tsv", "data.test_size": 2000, "data.dev_size": 1000, "data.vocab_size": 8000,
          "data.max_length": 40, "seed": 0, "epochs": 7, "batch_size": 2048, "learning_rate": 2e-3,
          "schedule": "cosine", "warmup_epochs": 0.1,
          "model.cell": "gru", "model.attention": "bahdanau", "model.embedding_dim": 256, "model.units": 512,
          "model.dropout": 0.2, "verbose": "line"}


def gates_flops(cell, inputs, units):
    """Multiply-adds x 2 of one recurrent step's gates: GRU 3, LSTM 4 blocks of [inputs + units] x units."""
    return 2 * (4 if cell == "lstm" else 3) * (inputs + units) * units


def forward_flops(m, rows, source_length, target_length, source_real=None, target_real=None):
    """Forward FLOPs of a batch; with *_real token counts, only the work on real tokens."""
    e, u, v, cell = m["embedding_dim"], m["units"], m["target_vocab"], m["cell"]
    s_tok = source_real if source_real is not None else rows * source_length
    t_tok = target_real if target_real is not None else rows * target_length
    s_len = s_tok / rows  # attention span per target token
    encoder, width = 0.0, e
    for _ in range(m["encoder_layers"]):
        encoder += 2 * gates_flops(cell, width, u // 2)  # two directions of u // 2
        width = u
    keys = 0 if m["attention"] == "luong_dot" else 2 * u * u
    query = 2 * u * u if m["attention"] == "bahdanau" else 0
    attend = query + 2 * s_len * u * (2 if m["attention"] == "bahdanau" else 1) + 2 * s_len * u  # scores, weighted sum
    decoder, width = 0.0, e + (e if m["attention"] != "bahdanau" else u)
    for _ in range(m["decoder_layers"]):
        decoder += gates_flops(cell, width, u)
        width = u
    per_target = attend + decoder + 2 * (2 * u) * e + 2 * e * v  # + readout, output layer
    return s_tok * (encoder + keys) + t_tok * per_target


def main():
    from apps.seq2seq_attention.app import Seq2SeqAttentionApp

    run(Seq2SeqAttentionApp, RECIPE, forward_flops, arguments(__doc__.splitlines()[0]))


if __name__ == "__main__":
    main()
