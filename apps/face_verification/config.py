"""Configuration of the face-verification app; the defaults fine-tune dlib's face ResNet on the embedded
AT&T faces with semi-hard triplets (FaceNet), offline."""
import dataclasses
from typing import Optional

from apps.core.config import field
from apps.core.run_config import SCHEDULES, FitConfig
from apps.face_verification.model import ModelConfig
from data.faces.pipeline import FaceDataConfig

LOSSES = ["batch_hard", "semi_hard", "batch_all", "binary", "circle"]


@dataclasses.dataclass
class FaceConfig(FitConfig):
    epochs: int = field(10, "total epochs; resuming a finished run with more epochs extends it", min=1)
    batch_size: int = field(32, "evaluation batch size (training batches are P x K: --data.identities_per_batch x "
                                "--data.images_per_identity)", min=1)
    learning_rate: float = field(1e-4, "peak learning rate", min=0.0)
    schedule: str = field("cosine", "learning-rate schedule", SCHEDULES)
    warmup_epochs: float = field(1.0, "linear warm-up length in epochs", min=0.0)
    data: FaceDataConfig = field(FaceDataConfig())
    model: ModelConfig = field(ModelConfig(weights="dlib"))
    loss: str = field("semi_hard", "triplet mining (batch_hard, semi_hard, batch_all), the binary same/different "
                                    "head on |f(a) - f(b)|, or keras' Circle loss", LOSSES)
    margin: float = field(0.2, "triplet margin alpha, in squared distance between unit embeddings (0..4)", min=0.0)
    flip_test: bool = field(False, "evaluate, calibrate, predict and export embed each face and its mirror image and "
                                   "use their normalised mean (the flip test): more accurate, twice the work per face")
    eval_folds: int = field(0, "evaluate: identity-disjoint folds of the test people, each scored at the threshold "
                               "chosen on the others (0: 10, or fewer so that every fold holds 5 people or more)", min=0)
    impostors_per_fold: int = field(2000, "evaluate: impostor pairs drawn per fold (all genuine pairs are used)", min=1)
    examples: int = field(20, "evaluate: people drawn in the embedding map", min=2)
    gallery: Optional[str] = field(None, "predict: a folder of <person>/<image> files to identify faces against")
