"""The face-verification app: embeddings trained with triplet loss; what is specific to the task.

    python -m apps face_verification train                     # dlib's ResNet fine-tuned on AT&T faces
    python -m apps face_verification evaluate                  # accuracy, ROC, EER, TAR@FAR, top-1/top-5
    python -m apps face_verification predict a.png b.png       # distance, decision, probability
    python -m apps face_verification predict --gallery people/ face.png
    python -m apps face_verification calibrate --data.source folder --data.path my_people/
    python -m apps face_verification export
"""
import dataclasses
import functools
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from apps.core.app import App, SmokeExample
from apps.core.errors import UserError
from apps.core.files import atomic_write_text
from apps.core.finetune import finetune_phases
from apps.core.registry import register_app
from apps.core.splits import RecordedSplits
from apps.face_verification.config import FaceConfig
from apps.face_verification.model import (PAIR_LOGITS, build_embedder, embedder_of, embedding_function, native_size,
                                             pair_head_weights)
from apps.face_verification.pictures import save_distance_histogram, save_embedding_map, save_pair_sheet, save_roc
from apps.face_verification.serving import FaceServing
from apps.face_verification.verification import (THRESHOLD_RULE, best_threshold, calibrated_probability,
                                                  default_folds, distance_matrix, fit_calibration,
                                                  hardest_pairs, identification_report, make_pairs,
                                                  pair_distances, verification_report)
from data.faces.pipeline import (describe_identities, eval_batches, framing, load_face_splits, split_record, square_mode,
                                 train_epoch)
from data.faces.sources import load_identity_folders, read_lfw_pairs
from data.images.files import image_paths, load_image_file
from layers.losses.metric_learning import MININGS, ActiveTripletFraction, make_metric_loss

CALIBRATION = "calibration.json"  # in the run directory: threshold and logistic calibration
CALIBRATE_SOURCE = "calibrate:"  # how a calibration made by `calibrate` (the user's own faces) begins its source
WEIGHTS_KEY = "weights_sha256"  # in calibration.json: the weights it was fitted on (weights_fingerprint)
# calibration.json's "distance": what its threshold is on (a binary run compares faces with its pair head)
SQUARED, PAIR_HEAD = "squared distance", "pair head's negated logit"
PROBABILITY_AT_THRESHOLD_TOLERANCE = 0.02  # a hand-edited calibration.json: how far from 0.5 p may be at the threshold


@register_app("face_verification")
class FaceVerification(RecordedSplits, App):
    """Face verification: an embedding network trained with triplet loss; same person or not, and who."""

    Config = FaceConfig
    default_data = "embedded AT&T faces, 40 people x 10 grey 92x112 images (AT&T Laboratories Cambridge)"
    predict_inputs = "FACE_A FACE_B"
    predict_inputs_help = "two face images (distance, decision, probability); more: each compared with the first; " \
                          "with --gallery DIR: faces to identify"
    file_sources = ("folder",)
    extra_verbs = {"calibrate": "refit the distance threshold and probability calibration on --data.path identity "
                                "folders (or --data.pairs), for the next predict and export"}

    def __init__(self, config, run_dir=None):
        super().__init__(config, run_dir)
        self.class_names = None

    @property
    def size(self):
        return self.config.data.image_size or native_size(self.config.model)

    def load_splits(self, record, names):
        return load_face_splits(self.config.data, self.config.seed, self.size, record, names)

    def make_split_record(self, splits):
        return split_record(self.config.data, self.config.seed, splits)

    def state(self):
        self.record_splits()
        note = describe_identities(self.splits["train"], self.config.data.images_per_identity)
        if note:
            print(note)
        mode, share = framing(self.config.data)
        return {"identities": self.class_names, "square": mode, "square_crop": share}

    def load_state(self, state):
        self.class_names = state["identities"]
        self._keep_framing(state)

    def resume_state(self, state):
        self._keep_framing(state)

    def _keep_framing(self, state):
        """A trained run's faces are framed as its network learned them, whatever the defaults or the data
        source say now (runs recorded before --data.square_crop: the whole square)."""
        data, now = self.config.data, framing(self.config.data)
        recorded = (state.get("square", now[0]), state.get("square_crop", 1.0))
        if recorded != now and (data.square, data.square_crop) != (None, None):
            print(f"note: the run's framing (--data.square {recorded[0]} --data.square_crop {recorded[1]:g}) is kept")
        self.config = dataclasses.replace(self.config, data=dataclasses.replace(data, square=recorded[0],
                                                                                 square_crop=recorded[1]))

    @classmethod
    def smoke_example(cls, folder):
        from data.faces.sources import load_embedded_faces

        faces = load_embedded_faces()
        pair = folder / "pair"  # predict takes the folder: its two faces are compared
        pair.mkdir(parents=True, exist_ok=True)
        paths = [pair / f"face{i}.png" for i in (0, 1)]
        for i, path in enumerate(paths):
            tf.io.write_file(str(path), tf.io.encode_png(faces.images[i * 10]))
        flags = ["--model.backbone", "resnet", "--model.width", "4", "--model.depth", "1", "--model.weights", "none",
                 "--data.image_size", "32", "--epochs", "1", "--data.identities_per_batch", "4",
                 "--data.images_per_identity", "2", "--verbose", "line"]
        return SmokeExample(flags, str(pair), {"images": [paths[0].read_bytes(), paths[1].read_bytes()]})

    def build_model(self):
        return build_embedder(self.config.model, self.size, pair_head=self.config.loss == "binary")

    def train_batch_size(self):
        """P identities x K images (--batch_size is the evaluation batch)."""
        return self.config.data.identities_per_batch * self.config.data.images_per_identity

    def check_replicas(self, replicas):
        """Each replica mines triplets within its own share of the P x K batch (whole identities when P is a
        multiple of the replicas): it needs two identities at least, or it has no negatives."""
        p, k = self.config.data.identities_per_batch, self.config.data.images_per_identity
        if p < 2 * replicas or p % replicas:
            each = max(2, -(-p // replicas))
            raise UserError(f"--data.identities_per_batch {p} on {replicas} replicas: each replica mines triplets in its "
                            f"own share of the batch and needs whole identities, two at least; use a multiple of "
                            f"{replicas}, e.g. --data.identities_per_batch {replicas * each} (x {k} images each)")

    def build_dataset(self, split, epoch=0):
        cfg = self.config
        if split == "train":
            return train_epoch(self.splits["train"], cfg.data, cfg.seed, epoch)
        if not len(self.splits[split].labels):
            return None
        return eval_batches(self.splits[split], cfg.batch_size)

    def compile_defaults(self):
        cfg = self.config
        # --margin is the triplet margin: the pair loss has none, Circle keeps keras' own (0.4 on cosine similarity)
        loss = make_metric_loss(cfg.loss, cfg.margin if cfg.loss in MININGS else None)
        metrics = [] if cfg.loss == "binary" else [ActiveTripletFraction(margin=cfg.margin, mining=_mining(cfg.loss))]
        return {"loss": loss, "metrics": metrics}

    def phases(self):
        return finetune_phases(self.config.model, self.config.epochs)

    def start_training(self, model):
        """A binary run's pair head starts as the L1-distance classifier of the training faces: every weight
        the slope a, the bias b of p(same) = sigmoid(a x L1 + b) fitted by logistic regression on the training
        pairs' L1 distances under the starting network (same and different weighed equally). A random head
        barely moves at fine-tuning's rate in a short run, and the network bends to its random weights instead:
        on the 4 AT&T folds the head it trained scored 66.7% balanced, EER 36.8% (bench/README.md)."""
        if self.config.loss != "binary":
            return
        train = self.splits["train"]
        a, b, same, _ = make_pairs(train.labels, 1, None, self.config.seed)
        if same.all() or not same.any():
            print("note: the training faces give no genuine or no impostor pair: the binary pair head starts random")
            return
        embeddings = embedding_function(model, batch_size=self.config.batch_size)(train.images)
        l1 = np.abs(embeddings[a] - embeddings[b]).sum(-1)
        slope, intercept = fit_calibration(l1, same)
        if slope >= 0:  # no signal yet (a random network): logit 0 at the median distance, falling with it
            slope = -1.0 / max(float(np.std(l1)), 1e-6)
            intercept = -slope * float(np.median(l1))
        head = model.get_layer(PAIR_LOGITS).dense
        head.set_weights([np.full(head.kernel.shape, slope, np.float32), np.full(head.bias.shape, intercept, np.float32)])
        print(f"binary: the pair head starts as the L1-distance classifier of the {len(train.labels)} training faces "
              f"(w = {slope:.4g} for every dimension, b = {intercept:.4g}; {int(same.sum())} genuine / "
              f"{int((~same).sum())} impostor pairs)")

    def finish_training(self, model):
        """WiSE-FT: the saved weights of every layer that started pretrained (the backbone, and the projection
        when it is dlib's) are (1 - a) x the pretrained + a x the fine-tuned ones (a = --model.wise_ft); layers
        that started random keep their trained weights. Fine-tuning on a few hundred faces separates those people
        well and moves the distances of unseen people away from the threshold chosen on them; the mix keeps the
        pretrained network's sense of faces at no cost at inference (bench/README.md: 4 AT&T folds with
        --flip_test, balanced accuracy 93.9% -> 96.0%, EER 3.31% -> 3.00%)."""
        cfg = self.config.model
        if not cfg.weights or cfg.wise_ft == 1.0:
            return
        share, start = cfg.wise_ft, self.build_model()
        for name in start.pretrained_layers:
            trained = model.get_layer(name)
            trained.set_weights([(1.0 - share) * p + share * t
                                 for p, t in zip(start.get_layer(name).get_weights(), trained.get_weights())])
        print(f"WiSE-FT: the saved weights of {' and '.join(start.pretrained_layers)} are {1 - share:g} x the "
              f"pretrained ({cfg.weights}) + {share:g} x the fine-tuned ones (--model.wise_ft; the checkpoints keep "
              "the fine-tuned)")

    def _embedding(self, model):
        """images -> embeddings as this run makes them (with --flip_test or not): evaluate, calibrate, predict."""
        return embedding_function(model, self.config.flip_test, self.config.batch_size)

    @staticmethod
    def _distances(model):
        """(embeddings, i, j) -> the distances of pairs (i[k], j[k]) as this run compares faces: squared Euclidean,
        or a binary run's trained pair head (verification.pair_distances)."""
        return functools.partial(pair_distances, head=pair_head_weights(model))

    # ---- evaluation -------------------------------------------------------------------------------------

    def _test_pairs(self, embed, distances):
        """The test split, its embeddings, and its LFW-style pairs (Pairs) with their distances."""
        cfg = self.config
        test = self.test_split()
        people = len(np.unique(test.labels))
        if people < 4:  # two folds of two people: an impostor pair needs two, a threshold another fold
            raise UserError(f"the run's test split holds {people} people; evaluation needs at least 4 (two folds of two): "
                            "train with fewer --data.folds (a larger test share) or more people, or run calibrate on "
                            "identity folders of your own (--data.path)")
        if cfg.eval_folds == 1:
            raise UserError("--eval_folds 1 leaves no other fold to choose each fold's threshold on: give 2 or more, "
                            f"or 0 ({default_folds(people)} for these {people} people)")
        folds = cfg.eval_folds or default_folds(people)
        if people < 2 * folds:
            raise UserError(f"the run's test split holds {people} people, too few for --eval_folds {cfg.eval_folds} "
                            f"(two people each): give --eval_folds {people // 2}")
        embeddings = embed(test.images)
        pairs = make_pairs(test.labels, folds, cfg.impostors_per_fold, cfg.seed)
        if not np.any(pairs.same):
            raise UserError(f"none of the test split's {people} people has two images, so there is no genuine pair to "
                            "verify: evaluate on a pairs file (--data.pairs) or identity folders with 2+ images a person")
        return test, embeddings, pairs, distances(embeddings, pairs.i, pairs.j)

    def evaluate(self, model, out_dir):
        cfg = self.config
        embed, compare = self._embedding(model), self._distances(model)
        if cfg.data.pairs:
            distances, same, fold, count = self._lfw_pairs(embed, compare)
            report = {"pairs_file": cfg.data.pairs}
        else:
            test, embeddings, pairs, distances = self._test_pairs(embed, compare)
            same, fold = pairs.same, pairs.fold
            report = {"identification": identification_report(embeddings, test.labels, cfg.seed,
                                                               head=pair_head_weights(model))}
            save_embedding_map(embeddings, test.labels, test.class_names, out_dir / "embedding.png", cfg.examples)
            count = len(test.labels)
        report = {**verification_report(distances, same, fold), **report, "images": count}
        source = f"evaluate: pairs of {cfg.data.pairs}" if cfg.data.pairs else "evaluate: test pairs"
        calibration = self._save_calibration(model, distances, same, source, keep_yours=True)
        report["calibration"] = calibration
        save_roc(report, out_dir / "roc.png")
        save_distance_histogram(distances, same, calibration["threshold"], out_dir / "distances.png",
                                _distance_kind(model))
        if not cfg.data.pairs:  # the farthest genuine and the nearest impostor pairs, decided at the threshold
            rows = hardest_pairs(distances, same)
            save_pair_sheet(test.images[pairs.i[rows]], test.images[pairs.j[rows]], distances[rows], same[rows],
                            calibration["threshold"], out_dir / "hardest_pairs.png")
        roc = report.pop("roc")  # arrays: drawn, and written beside metrics.json as numbers
        np.savetxt(out_dir / "roc.csv", np.stack([roc["far"], roc["tar"], roc["threshold"]], 1), delimiter=",",
                   header="far,tar,threshold", comments="", fmt="%.6g")
        print(_summary(report))
        return report

    def _lfw_pairs(self, embed, distances):
        cfg = self.config.data
        file_a, file_b, same, fold = read_lfw_pairs(cfg.pairs, cfg.path)
        if same.all() or not same.any():
            raise UserError(f"{cfg.pairs} lists only {'matched' if same.all() else 'mismatched'} pairs ({len(same)}): "
                            "verification needs both kinds, same person (name n1 n2) and different people "
                            "(name1 n1 name2 n2)")
        files = sorted(set(file_a) | set(file_b))
        index = {f: i for i, f in enumerate(files)}
        images = np.stack([load_image_file(Path(cfg.path) / f, (self.size, self.size), 3, square_mode(cfg)) for f in files])
        embeddings = embed(images)
        a, b = np.array([index[f] for f in file_a]), np.array([index[f] for f in file_b])
        return distances(embeddings, a, b), same, fold, len(files)

    def _save_calibration(self, model, distances, same, source, keep_yours=False):
        """Choose the threshold (by balanced accuracy) and fit the logistic calibration centred on it (p = 0.5
        there: the decision and the probability agree), and write them to calibration.json with the fingerprint
        of `model`'s weights; with `keep_yours` (evaluate), one that `calibrate` made from the user's own faces
        for these same weights is kept and this one only returned."""
        threshold = best_threshold(distances, same, balanced=True)
        slope, intercept = fit_calibration(distances, same, center=threshold)
        calibration = {"threshold": float(threshold), "slope": float(slope), "intercept": float(intercept),
                       "threshold_rule": THRESHOLD_RULE, "pairs": int(len(same)), "genuine": int(np.sum(same)),
                       "source": source, "flip_test": self.config.flip_test, "distance": _distance_kind(model),
                       WEIGHTS_KEY: weights_fingerprint(model)}
        path = self.run_dir / CALIBRATION
        if keep_yours and path.is_file():
            try:
                yours = read_calibration(path)
            except UserError:  # a damaged hand edit: said when predict or export reads it, replaced here
                print(f"note: {path} could not be read as a calibration: replaced by this evaluation's")
                yours = {}
            mine = yours.get("source", "")
            if (_by_calibrate(mine) and yours.get(WEIGHTS_KEY, calibration[WEIGHTS_KEY]) == calibration[WEIGHTS_KEY]
                    and yours.get("distance", SQUARED) == calibration["distance"]):
                print(f"note: {path} ({mine}) is kept for predict and export; this evaluation's own threshold, "
                      f"{calibration['threshold']:.4f}, is in metrics.json")
                return calibration
            if _by_calibrate(mine):
                what = ("earlier weights of this run" if yours.get(WEIGHTS_KEY, calibration[WEIGHTS_KEY])
                        != calibration[WEIGHTS_KEY] else f"the {yours.get('distance', SQUARED)}")
                print(f"note: {path} ({mine}) was fitted on {what}: replaced by this "
                      "evaluation's calibration; run calibrate again for your own faces")
        atomic_write_text(path, json.dumps(calibration, indent=2) + "\n")
        return calibration

    def calibration(self, model):
        """The run's calibration (evaluate or calibrate wrote it); made from the test split when there is none.
        One fitted on other weights than `model`'s (the run was trained again since) or with another
        --flip_test is refused."""
        path = self.run_dir / CALIBRATION
        if path.is_file():
            calibration = read_calibration(path)
            source = calibration.get("source", "unknown source")
            # evaluate keeps a calibration that calibrate made: then only calibrate replaces it
            redo = "calibrate again" if _by_calibrate(source) else "run evaluate or calibrate"
            fitted_on = calibration.get(WEIGHTS_KEY)  # files written before the fingerprint: accepted
            if fitted_on is not None and fitted_on != weights_fingerprint(model):
                raise UserError(f"{path} ({source}) was fitted on earlier weights than the run's model.keras (trained "
                                "again since): run evaluate or calibrate again")
            measured = calibration.get("distance", SQUARED)  # files written before the key: squared distances
            if measured != _distance_kind(model):
                raise UserError(f"{path} ({source}) is a threshold on the {measured}, and this run compares faces by "
                                f"the {_distance_kind(model)}: {redo}")
            made_with = calibration.get("flip_test", False)  # files written before the option: without it
            if made_with != self.config.flip_test:
                made, now = (f"--flip_test {str(v).lower()}" for v in (made_with, self.config.flip_test))
                raise UserError(f"{path} ({source}) is a threshold for embeddings made with {made}, and this command "
                                f"has {now}: give {made}, or {redo} with {now} first")
            return calibration
        print(f"note: {path} is missing (no evaluate or calibrate yet): calibrating on the run's test split now")
        _, _, pairs, distances = self._test_pairs(self._embedding(model), self._distances(model))
        return self._save_calibration(model, distances, pairs.same, "test pairs (automatic)")

    def calibrate(self, model):
        """Refit the threshold and the probability calibration on the user's own faces: identity folders
        (--data.path; all genuine pairs and sampled impostors) or an LFW pairs.txt (--data.pairs)."""
        cfg = self.config
        embed, compare = self._embedding(model), self._distances(model)
        if cfg.data.pairs:
            distances, same, _, _ = self._lfw_pairs(embed, compare)
            source = f"{CALIBRATE_SOURCE} {cfg.data.pairs}"
        else:
            if not cfg.data.path:
                raise UserError("calibrate needs your faces: --data.path FOLDER of <person>/<image> files "
                                "(or --data.pairs pairs.txt with --data.path)")
            faces = load_identity_folders(cfg.data.path, self.size, cfg.data.skip_bad_files, square_mode(cfg.data))
            if len(np.unique(faces.labels)) < 2:
                raise UserError(f"calibration needs genuine and impostor pairs: {cfg.data.path} holds one person; "
                                "give at least two people, one with 2+ images")
            embeddings = embed(faces.images)
            a, b, same, _ = make_pairs(faces.labels, 1, cfg.impostors_per_fold, cfg.seed)
            distances = compare(embeddings, a, b)
            source = f"{CALIBRATE_SOURCE} {cfg.data.path}"
        if not np.any(same) or np.all(same):
            raise UserError("calibration needs genuine and impostor pairs: give at least two people, one with 2+ images")
        calibration = self._save_calibration(model, distances, same, source)
        report = verification_report(distances, same, np.zeros(len(same), int))
        return {**calibration, "accuracy_at_threshold": report["accuracy_at_threshold"],
                "balanced_accuracy_at_threshold": report["balanced_accuracy_at_threshold"], "auc": report["auc"],
                "eer": report["eer"]}

    # ---- predict and export -----------------------------------------------------------------------------

    def predict(self, model, inputs):
        paths = image_paths(inputs)
        if len(paths) < 2 and not self.config.gallery:
            raise UserError("predict compares faces: give two images (or --gallery DIR and the faces to identify)")
        embed = self._embedding(model)
        calibration = self.calibration(model)
        threshold = calibration["threshold"]
        faces = np.stack([load_image_file(p, (self.size, self.size), 3, square_mode(self.config.data)) for p in paths])
        embeddings = embed(faces)
        if self.config.gallery:
            return self._identify(embed, pair_head_weights(model), paths, embeddings, threshold)
        others = np.arange(1, len(paths))
        distances = self._distances(model)(embeddings, np.zeros_like(others), others)  # each face against the first
        records = []
        for i, d in zip(others, distances.tolist()):
            p = float(calibrated_probability(d, calibration["slope"], calibration["intercept"]))
            decision = "same person" if d <= threshold else "different people"
            records.append(f"{paths[0]} vs {paths[i]}: distance {d:.4f} (threshold {threshold:.4f}) -> {decision}, "
                           f"probability same {p:.3f}")
        return records

    def _identify(self, embed, head, paths, embeddings, threshold):
        gallery = load_identity_folders(self.config.gallery, self.size, self.config.data.skip_bad_files,
                                        square_mode(self.config.data))
        distances = distance_matrix(embeddings, embed(gallery.images), head)  # every face against every enrolled one
        records = []
        for path, d in zip(paths, distances):
            best = int(np.argmin(d))
            name = gallery.class_names[gallery.labels[best]] if d[best] <= threshold else "unknown"
            records.append(f"{path}: {name} (closest {gallery.class_names[gallery.labels[best]]}, "
                           f"distance {d[best]:.4f}, threshold {threshold:.4f})")
        return records

    def serving_model(self, model):
        cfg = self.config
        return FaceServing(embedder_of(model, cfg.flip_test), self.size, self.calibration(model), square_mode(cfg.data),
                           head=pair_head_weights(model))

    def extra_signatures(self, module):
        return {"verify": module.verify}


def _distance_kind(model):
    """What a run's distances are (calibration.json's "distance"): a threshold on one means nothing on the other."""
    return SQUARED if pair_head_weights(model) is None else PAIR_HEAD


def weights_fingerprint(model):
    """sha256 of the model's weight values (with their shapes and dtypes, in order): a calibration belongs to
    the trained weights it was fitted on, and a run trained further has other ones. Re-saving the same weights
    keeps it (a hash of model.keras would not: the file records when it was saved)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(np.asarray(weight))
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def read_calibration(path):
    """calibration.json, checked: an object with finite numbers threshold, slope and intercept (a hand-edited
    file too), the slope not positive and p = 0.5 at the threshold (the decision and the probability agree); else
    a one-line UserError naming the file and the key. A file the app wrote before the weights fingerprint (it
    has a source but no fingerprint) fitted its intercept freely: accepted, with a note."""
    try:
        calibration = json.loads(Path(path).read_text())
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({e}): fix it, or delete it and run evaluate or calibrate") from None
    if not isinstance(calibration, dict):
        raise UserError(f"{path} holds a JSON {type(calibration).__name__}, not an object with threshold, slope and "
                        "intercept: fix it, or delete it and run evaluate or calibrate")
    for key in ("threshold", "slope", "intercept"):
        if key not in calibration:
            hint = (" (p(same) = sigmoid(slope * d + intercept): a slope < 0 and intercept = -slope * threshold put "
                    "p = 0.5 at the threshold)" if key != "threshold" else "")
            raise UserError(f"{path} has no \"{key}\"{hint}: add it, or run evaluate or calibrate to fit it")
        if not _finite_number(calibration[key]):
            raise UserError(f"{path}: \"{key}\" must be a finite number, not {json.dumps(calibration[key])[:40]}")
    for key, kind in (("flip_test", bool), ("source", str), (WEIGHTS_KEY, str)):
        if key in calibration and not isinstance(calibration[key], kind):
            raise UserError(f"{path}: \"{key}\" must be a {'true or false' if kind is bool else 'string'}, "
                            f"not {json.dumps(calibration[key])}")
    if calibration.get("distance", SQUARED) not in (SQUARED, PAIR_HEAD):
        raise UserError(f"{path}: \"distance\" must be \"{SQUARED}\" or \"{PAIR_HEAD}\" (a binary run's), not "
                        f"{json.dumps(calibration['distance'])[:40]}")
    threshold, slope, intercept = (float(calibration[k]) for k in ("threshold", "slope", "intercept"))
    if slope > 0:  # 0 is what the fit gives for a network whose genuine pairs are no closer than impostors
        raise UserError(f"{path}: \"slope\" must not be positive (p(same) = sigmoid(slope * d + intercept) falls as "
                        f"the distance d grows), not {slope:g}: fix it, or run evaluate or calibrate to fit it")
    p = calibrated_probability(threshold, slope, intercept)
    if abs(p - 0.5) > PROBABILITY_AT_THRESHOLD_TOLERANCE:
        if "source" in calibration and WEIGHTS_KEY not in calibration:
            print(f"note: {path} is from an older version ({calibration['source']}): its probability is {p:.2f} at "
                  "its threshold, not 0.5; run evaluate or calibrate to refit it")
            return calibration
        raise UserError(f"{path}: at the threshold {threshold:g} the probability is {p:.2f}, not 0.5, so \"same "
                        f"person\" and p > 0.5 would disagree: set \"intercept\" to {-slope * threshold + 0.0:.6g} "
                        "(-slope * threshold), or run evaluate or calibrate to refit both")
    return calibration


def _finite_number(value):
    """A JSON number (not a boolean) that is finite as a float (a 400-digit integer is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _by_calibrate(source):
    return source.startswith(CALIBRATE_SOURCE)


def _mining(loss):
    return loss if loss in MININGS else "batch_all"


def _summary(report):
    def rate(value):
        return "n/a" if value is None else f"{value:.4f}"

    tar = ", ".join(f"TAR@FAR={far} {rate(t['tar'])} ({t['impostor_pairs']} impostor pairs)"
                    for far, t in report["tar_at_far"].items())
    line = (f"verification accuracy {rate(report['accuracy_mean'])} +- {rate(report['accuracy_std'])} "
            f"({report['folds']} folds), AUC {report['auc']:.4f}, EER {report['eer']:.4f}, {tar}; "
            f"{report['genuine_pairs']} genuine / {report['impostor_pairs']} impostor pairs")
    ident = report.get("identification")
    if ident:
        line += (f"\nidentification top-1 {rate(ident['top1_accuracy'])}, top-5 {rate(ident['top5_accuracy'])} "
                 f"({ident['probes']} probes, {ident['gallery_identities']} enrolled)")
    return line
