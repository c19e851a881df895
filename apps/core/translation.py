"""What every translation app shares: the configuration of everything but the model (`TranslationConfig`)
and the app around any model with the decoding interface of layers/decoding/search.py
(`TranslationApp`): data preparation (SentencePiece subwords, held-out groups), length-bucketed token
batches, the loss, translation through the exported module, sacreBLEU/chrF evaluation, attention plots,
predict and export. An app supplies its model config, `build_model()` and its smoke-test model flags:

    @dataclasses.dataclass
    class MyConfig(TranslationConfig):
        model: MyModelConfig = field(MyModelConfig())

    @register_app("my_translation")
    class MyTranslationApp(TranslationApp):
        '''Sentence pairs in; my model translates them.'''
        Config = MyConfig
        smoke_model_flags = ("--model.units", "32")

        def build_model(self):
            return MyModel(len(self.prepared.source), len(self.prepared.target), **vars(self.config.model))
"""
import dataclasses
import sys

import numpy as np

from apps.core.app import App, SmokeExample, fills_every_replica
from apps.core.config import field
from apps.core.errors import UserError
from apps.core.plots import plot_attention
from apps.core.run_config import FitConfig
from data.generated.toy_text import write_word_pairs
from data.text.normalize import normalize
from data.text.pair_batches import bucket_length
from data.text.pair_corpus import bucketed, load, prepare
from data.text.pairs import TranslationDataConfig
from data.text.scoring import score_translations
from data.text.subword import EOS, PAD
from layers.decoding.translator import TranslationServing
from layers.losses.sequence import MaskedSmoothedCrossEntropy, MaskedTokenAccuracy


@dataclasses.dataclass
class NoModel:
    """The `model` section of TranslationConfig until an app declares its own (no options)."""


@dataclasses.dataclass
class TranslationConfig(FitConfig):
    """Options of a translation run but the model's; an app redeclares `model` with its model config
    (it keeps its place after `data` in --help and config.json) and overrides defaults it wants otherwise."""

    data: TranslationDataConfig = field(TranslationDataConfig())
    model: NoModel = field(NoModel())
    epochs: int = field(8, "passes over the training pairs; resuming a finished run with more epochs extends it", min=1)
    batch_size: int = field(4096, "padded tokens per batch and side; rows = batch_size // bucket length (at least 1)",
                            min=1)
    learning_rate: float = field(1e-3, "peak learning rate, reached at the end of warm-up", min=0.0)
    schedule: str = field("constant", "learning-rate schedule", ["inverse_sqrt", "constant", "cosine", "linear"])
    label_smoothing: float = field(0.1, "label smoothing of the token cross-entropy", min=0.0, max=1.0, max_exclusive=True)
    clipnorm: float = field(1.0, "clip each gradient to this norm", min=0.0, min_exclusive=True)
    jit_compile: bool = field(True, "compile the training step with XLA (one compilation per bucket length)")
    beam_size: int = field(4, "beam width for evaluate, predict and export (1: greedy)", min=1)
    length_penalty: float = field(0.6, "GNMT length-penalty exponent alpha for beam search (0: none)", min=0.0)
    long_inputs: str = field("truncate", "sources longer than --data.max_length: truncate with a warning, or fail",
                             ["truncate", "fail"])
    attention: bool = field(False, "predict: also write cross-attention heat maps (PNG) to the run's predict/ folder")
    examples: int = field(10, "evaluate: example translations printed", min=0)
    eval_batch: int = field(64, "sentences translated per call in evaluate and predict", min=1)


def _sentences(inputs):
    """predict's sentences as (names, texts): each argument ("argument 2"), and for "-" every line of standard
    input ("line 5 of standard input"), blank lines included: they translate to blank lines, so that output line
    N answers input line N of `predict - < sentences.txt`. A UTF-8 byte-order mark is dropped."""
    names, texts = [], []
    for number, item in enumerate(inputs, 1):
        if item != "-":
            names.append(f"argument {number}")
            texts.append(item)
            continue
        stream = getattr(sys.stdin, "buffer", None)  # bytes, so that a bad line is named by its number
        for line_number, line in enumerate(stream if stream is not None else sys.stdin, 1):
            if isinstance(line, bytes):
                try:
                    line = line.decode("utf-8")
                except UnicodeDecodeError:
                    raise UserError(f"line {line_number} of standard input is not UTF-8 text: {line[:60]!r}; "
                                    "convert it, e.g. with iconv -t UTF-8") from None
            names.append(f"line {line_number} of standard input")
            texts.append((line.removeprefix("\ufeff") if line_number == 1 else line).rstrip("\r\n"))
    if not any(text.strip() for text in texts):
        raise UserError("predict needs sentences: as arguments, or - to read them from standard input, one a line")
    for name, text in zip(names, texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # bytes Python kept as surrogates (a UTF-8 locale reading other bytes)
            raise UserError(f"{name} is not UTF-8 text: {text.encode('utf-8', 'replace')[:60]!r}; "
                            "convert it, e.g. with iconv -t UTF-8") from None
    return names, texts


class TranslationApp(App):
    """Sentence pairs in; a model that translates, scored with sacreBLEU and chrF. Subclasses supply
    `Config` (a TranslationConfig), `build_model()` and `smoke_model_flags`."""

    Config = TranslationConfig
    default_data = "embedded Tatoeba English-Spanish subset, 30,000 sentence pairs"
    predict_inputs = "SENTENCE"
    predict_inputs_help = 'source sentences, e.g. "I am hungry."; - reads them from standard input, one a line'
    serving_imports = ("tensorflow_text",)  # the SentencePiece ops inside the export
    smoke_model_flags = ()  # --model.* flags that make the smoke test's model tiny

    def __init__(self, config, run_dir=None):
        super().__init__(config, run_dir)
        self._prepared = None
        self._batches = {}
        self._module = None

    @property
    def prepared(self):
        if self._prepared is None:
            self._prepared = prepare(self.config.data, self.run_dir / "data", self.config.seed)
        return self._prepared

    def state(self):
        p = self.prepared
        return {"data": "data", "source_vocabulary": len(p.source), "target_vocabulary": len(p.target),
                "max_length": self.config.data.max_length}

    def load_state(self, state):
        self._prepared = load(self.run_dir / state["data"])

    def resume_state(self, state):
        """A resumed run keeps the pairs it trains on: another --data.max_length (which drops the longer pairs)
        is refused (runs recorded before it was: not checked)."""
        saved, now = state.get("max_length", self.config.data.max_length), self.config.data.max_length
        if saved != now:
            raise UserError(f"{self.run_dir} holds a run trained with --data.max_length {saved}, not {now}; resume "
                            f"it with --data.max_length {saved}, or train in a new --run_dir")

    def _split(self, split):
        if split not in self._batches:
            d = self.config.data
            self._batches[split] = bucketed(self.prepared, split, d.max_length, self.config.batch_size)
            if split == "train":
                b = self._batches[split]
                print(f"train: {b.pairs:,} pairs in {len(b):,} batches of {self.config.batch_size} padded tokens "
                      f"a side ({b.padding_share():.0%} padding)")
        return self._batches[split]

    def check_replicas(self, replicas):
        """A batch of a bucket of length L holds --batch_size // L pairs: every bucket's count must leave no
        replica empty. From the configuration alone (every length up to --data.max_length), before any data."""
        tokens, longest = self.config.batch_size, self.config.data.max_length
        rows = sorted({max(tokens // bucket_length(n, longest), 1) for n in range(1, longest + 1)})
        short = [n for n in rows if not fills_every_replica(n, replicas)]
        if short:
            need = max(replicas * (replicas - 1), replicas)  # enough for any count from there up
            raise UserError(f"--batch_size {tokens} tokens makes batches of {short[0]} sentence pairs (at length "
                            f"--data.max_length {longest} or below), which leaves one of the {replicas} replicas "
                            f"without any; use --batch_size {need * longest} or more")

    @classmethod
    def smoke_example(cls, folder):
        pairs = write_word_pairs(folder / "pairs.tsv")
        flags = ["--data.source", "tsv", "--data.path", str(pairs), "--epochs", "1", "--batch_size", "512",
                 "--data.dev_size", "50", "--data.test_size", "100", "--data.vocab_size", "300", "--data.max_length",
                 "16", *cls.smoke_model_flags, "--learning_rate", "0.005", "--jit_compile", "false", "--beam_size", "2",
                 "--verbose", "line"]
        return SmokeExample(flags, "Two red.", {"sentences": [b"Two red.", b"Nine blue."]})

    def build_dataset(self, split, epoch=0):
        name = {"train": "train", "val": "dev", "test": "test"}[split]
        return self._split(name).dataset(self.config.seed, epoch, shuffle=split == "train")

    def compile_defaults(self):
        return {"loss": MaskedSmoothedCrossEntropy(self.config.label_smoothing), "metrics": [MaskedTokenAccuracy()],
                "jit_compile": self.config.jit_compile}

    def _serving(self, model):
        """The serving module of `model` at the configured beam size, made once (its traced graphs are reused)."""
        if self._module is None or self._module.model is not model or self._module.beam != self.config.beam_size:
            p, cfg = self.prepared, self.config
            self._module = TranslationServing(model, p.source.proto, p.target.proto, cfg.data.max_length,
                                              cfg.beam_size, cfg.length_penalty)
        return self._module

    def _check_lengths(self, sentences, names=None):
        """Warn about (or refuse) sources longer than the model's maximum length; `names` say where each came
        from (default "input N")."""
        limit = self.config.data.max_length - 1
        names = names or [f"input {i + 1}" for i in range(len(sentences))]
        lengths = [len(ids) for ids in self.prepared.source.encode(normalize(s) for s in sentences)]
        long_ = [i for i, n in enumerate(lengths) if n > limit]
        if long_ and self.config.long_inputs == "fail":
            i = long_[0]
            raise UserError(f"{names[i]} has {lengths[i]} subword tokens, more than --data.max_length allows "
                            f"({limit} + end token): {sentences[i][:60]!r}; shorten it or pass --long_inputs truncate")
        if long_:
            print(f"warning: {len(long_)} input(s) longer than {limit} subword tokens are truncated "
                  f"(first: {names[long_[0]]}); --long_inputs fail refuses them instead")

    def translate(self, model, sentences, names=None):
        """Translations of `sentences`, in batches of --eval_batch, through the serving module (`names`: where
        each came from, for the messages)."""
        module = self._serving(model)
        self._check_lengths(sentences, names)
        out = []
        for i in range(0, len(sentences), self.config.eval_batch):
            result = module.serve(np.array(sentences[i:i + self.config.eval_batch], dtype=object))
            out += [t.decode("utf-8") for t in result["translations"].numpy()]
        return out

    def evaluate(self, model, out_dir):
        cfg, test = self.config, self.prepared.splits["test"]
        sources, references = [s for s, _ in test], [t for _, t in test]
        hypotheses, scores = score_translations(sources, references, lambda unique: self.translate(model, unique))
        model.compile(loss=MaskedSmoothedCrossEntropy(0.0), metrics=[MaskedTokenAccuracy()])
        token_scores = model.evaluate(self.build_dataset("test"), verbose=0, return_dict=True)
        (out_dir / "translations.tsv").write_text(
            "source\treference\ttranslation\n" + "".join(f"{s}\t{r}\t{h}\n" for s, r, h in zip(sources, references, hypotheses)),
            encoding="utf-8")
        examples = [{"source": s, "reference": r, "translation": h}
                    for s, r, h in list(zip(sources, references, hypotheses))[:cfg.examples]]
        for e in examples:
            print(f"  {e['source']}\n    -> {e['translation']}\n    (reference: {e['reference']})")
        self._plot_attention(model, sources[:3], out_dir)
        print(scores.summary())
        m = scores.rounded()
        return {"bleu": m["bleu"], "bleu_multi_reference": m["bleu_multi_reference"], "chrf": m["chrf"],
                "token_accuracy": round(float(token_scores["token_accuracy"]), 4),
                "test_cross_entropy": round(float(token_scores["loss"]), 4), "test_pairs": m["pairs"],
                "test_sources": m["unique_sources"], "references_per_source": m["references_per_source"],
                "beam_size": cfg.beam_size, "length_penalty": cfg.length_penalty,
                "bleu_signature": m["bleu_signature"], "chrf_signature": m["chrf_signature"],
                "bleu_multi_reference_signature": m["bleu_multi_reference_signature"], "examples": examples}

    def _plot_attention(self, model, sentences, out_dir, numbers=None):
        """attention_<n>.png for each sentence, n from `numbers` (default 1, 2, ...)."""
        result = self._serving(model).attention(np.array(sentences, dtype=object))
        paths = []
        for i, sentence in enumerate(sentences):
            source = [int(t) for t in result["source_ids"][i].numpy() if t != PAD]
            target = list(result["target_ids"][i].numpy())
            target = target[:target.index(EOS) + 1] if EOS in target else [t for t in target if t != PAD]
            weights = result["weights"][i].numpy()[:len(target), :len(source)]
            path = out_dir / f"attention_{numbers[i] if numbers else i + 1}.png"
            plot_attention(weights, self.prepared.source.pieces(source), self.prepared.target.pieces(target), path,
                           f"{sentence[:50]} -> {result['translations'][i].numpy().decode('utf-8')[:50]}")
            paths.append(path)
        return paths

    def predict(self, model, inputs):
        names, texts = _sentences(inputs)
        kept = [i for i, text in enumerate(texts) if text.strip()]  # a blank line stays a blank line
        inputs = [texts[i] for i in kept]
        translations = [""] * len(texts)
        for i, translation in zip(kept, self.translate(model, inputs, [names[i] for i in kept])):
            translations[i] = translation
        records = [f"{s}\t{t}" for s, t in zip(texts, translations)]
        if self.config.attention:
            folder = self.run_dir / "predict"
            folder.mkdir(parents=True, exist_ok=True)
            paths = []
            for i in range(0, len(inputs), self.config.eval_batch):
                batch = slice(i, i + self.config.eval_batch)  # each map numbered by its input's line or argument
                paths += self._plot_attention(model, inputs[batch], folder, [k + 1 for k in kept[batch]])
            records.append("attention maps: " + ", ".join(str(p) for p in paths))
        return records

    def serving_model(self, model):
        return self._serving(model)

    def extra_signatures(self, module):
        """`attention`: sentences in; translations and the attention weights over the source tokens out."""
        return {"attention": module.attention}
