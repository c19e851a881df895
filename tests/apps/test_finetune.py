"""One fine-tuning mechanism for every vision app: frozen head phase, then the top N layers or all."""
import pytest

from apps.core.errors import UserError
from apps.core.finetune import FinetuneConfig, finetune_phases


def _phases(**kwargs):
    return [(p.name, p.until_epoch, p.lr_factor) for p in finetune_phases(FinetuneConfig(**kwargs), 10)]


def test_without_weights_or_frozen_epochs_everything_trains():
    assert _phases(weights=None, freeze_epochs=3) == [("train", 10, 1.0)]
    assert _phases(weights="imagenet", freeze_epochs=0) == [("train", 10, 1.0)]


def test_frozen_then_unfrozen_at_the_learning_rate_factor():
    assert _phases(weights="imagenet", freeze_epochs=3, unfreeze_layers="all") == [("head", 3, 1.0), ("finetune", 10, 0.1)]
    assert _phases(weights="w.h5", freeze_epochs=3, unfreeze_layers="4", finetune_lr_factor=0.5) == [
        ("head", 3, 1.0), ("finetune", 10, 0.5)]
    assert _phases(weights="imagenet", freeze_epochs=3, unfreeze_layers="0") == [("head", 10, 1.0)]


def test_a_bad_layer_count_names_the_option():
    with pytest.raises(UserError, match="'model.unfreeze_layers' must be 'all' or a layer count >= 0; got 'some'"):
        finetune_phases(FinetuneConfig(weights="imagenet", freeze_epochs=1, unfreeze_layers="some"), 3)
