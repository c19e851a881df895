"""The App contract: an app supplies only what is specific to its task; the runner does the rest."""
import dataclasses
from pathlib import Path

from apps.core.errors import UserError


def fills_every_replica(n, replicas):
    """Whether a batch of `n` split over `replicas` as tf.distribute splits it (ceil(n / replicas) to each
    replica in turn: 4 on three is 2 + 2 + 0) leaves none of them empty: with oneDNN, a replica given no
    example failed inside a fused kernel."""
    return n - (replicas - 1) * -(-n // replicas) >= 1


@dataclasses.dataclass
class SmokeExample:
    """What the every-app smoke test runs: tiny training flags (seconds on 2 cores), a `predict`
    argument and a serving request ({input name: list of bytes}) for the exported model."""

    train_flags: list
    predict_input: str
    request: dict


@dataclasses.dataclass
class Phase:
    """A stretch of training with its own trainable set and learning rate (fine-tuning)."""

    name: str
    until_epoch: int
    prepare: object = None  # callable(model) run before compiling the phase
    lr_factor: float = 1.0


class App:
    """Base class of every task app; see apps/image_classification/app.py for a full example."""

    name = None  # set by @register_app
    Config = None  # a RunConfig subclass with defaults that run offline
    default_data = None  # what `train` uses without data flags, for `python -m apps list` (e.g. "embedded ..., 6,000 images")
    predict_inputs = "FILE_OR_FOLDER"  # what `predict` takes, for the usage line and its help
    predict_inputs_help = "image files or folders"
    single_device = None  # why the app cannot train under a tf.distribute strategy (None: it can)
    extra_verbs = {}  # the app's own verbs beside train/evaluate/predict/export: {verb: help}; method app.<verb>(model)
    serving_imports = ()  # modules a process must import before loading the export (custom ops), e.g. tensorflow_text

    def __init__(self, config, run_dir=None):
        """`run_dir`: where the run's files go, handed over by the runner (default: --run_dir, else runs/<app>)."""
        self.config = config
        self.run_dir = Path(run_dir or self.default_run_dir(config))

    @classmethod
    def default_run_dir(cls, config):
        """--run_dir, else runs/<app> under the working directory."""
        return Path(config.run_dir or Path("runs") / cls.name)

    @classmethod
    def smoke_example(cls, folder):
        """Write whatever tiny data the smoke example needs into `folder`; return a SmokeExample."""
        raise NotImplementedError

    def build_model(self):
        """Return an uncompiled keras.Model (called inside the strategy scope)."""
        raise NotImplementedError

    def train_batch_size(self):
        """Examples in one global training batch, as the run's first line states it (--batch_size unless the
        app batches otherwise)."""
        return self.config.batch_size

    def check_replicas(self, replicas):
        """Refuse, before anything is written, a training batch that would leave one of `replicas` without
        examples (the app's own flags in the advice when it batches otherwise than by --batch_size)."""
        batch = self.train_batch_size()
        if not fills_every_replica(batch, replicas):
            each = -(-batch // replicas)
            raise UserError(f"a global batch of {batch} leaves a replica of the {replicas} without examples (each "
                            f"takes {each} in turn); use a multiple of {replicas}, e.g. --batch_size {replicas * each}")

    def build_dataset(self, split, epoch=0):
        """Batches of `split`. For "train": one epoch, order and augmentation a pure function of
        (config.seed, epoch), so a resumed run sees exactly the data an uninterrupted one would.
        "val" may be None when the app holds out no validation split."""
        raise NotImplementedError

    def compile_defaults(self):
        """{"loss": ..., "metrics": [...]}: the runner adds the optimizer from the config."""
        raise NotImplementedError

    def phases(self):
        """Training phases; by default one phase for all epochs."""
        return [Phase("train", self.config.epochs)]

    def evaluate(self, model, out_dir):
        """Task metrics as a dict (also written to out_dir as JSON and pictures)."""
        raise NotImplementedError

    def uses_trained_model(self, verb):
        """Whether `verb` needs the run's trained model (style transfer's Gatys `predict` optimises pixels
        instead, and is handed None)."""
        return True

    def predict(self, model, inputs):
        """Postprocessed predictions for user inputs (paths, strings) as printable records."""
        raise NotImplementedError

    def serving_model(self, model):
        """A tf.Module whose `serve` signature takes raw bytes/strings and returns task outputs."""
        raise NotImplementedError

    def build_optimizer(self, updates_per_epoch, lr_factor=1.0):
        """The Keras optimizer of a phase, from the FitConfig options; an app with its own update step
        (and only RunConfig options) returns its own."""
        from apps.core.optim import make_optimizer

        return make_optimizer(self.config, updates_per_epoch, lr_factor)

    def updates_per_epoch(self, steps_per_epoch):
        """Optimizer updates per epoch, which the learning-rate schedule counts: one per batch unless a
        train_step makes several (word_embeddings runs several SGD steps per call)."""
        return steps_per_epoch

    def extra_signatures(self, module):
        """Signatures exported beside `serving_default`: name -> a tf.function of the module with an input_signature."""
        return {}

    def export_files(self, model, directory):
        """Write extra files (e.g. plain-text vectors) into the export folder before it is moved into place."""

    def start_training(self, model):
        """A first change to the freshly built model before a run's first step, never on resume (the checkpoint's
        weights are the run's then): the face app starts a binary run's pair head from the training faces."""

    def finish_training(self, model):
        """A last change to the trained weights before model.keras is saved (the face app mixes them with the
        pretrained ones); the checkpoints keep the weights as trained, so a resumed run trains on from those."""

    def state(self):
        """JSON-able facts the app learned while training (class names...) saved with the run."""
        return {}

    def load_state(self, state):
        pass

    def resume_state(self, state):
        """A resumed training run's recorded state(), before its datasets are built: take from it what must
        not be learned again under today's flags (detection: its fitted anchors). The runner then calls
        state() again, which checks today's flags against the run's data as a new run would."""
