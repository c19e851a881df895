"""mAP by pycocotools (the field's reference), per-class AP, the precision-recall curve, and box drawings."""
import contextlib
import io
import zlib

import numpy as np
from PIL import Image, ImageDraw
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from apps.core.plots import plt

_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def _xywh(yxyx):
    y0, x0, y1, x1 = (float(v) for v in yxyx)
    return [x0, y0, x1 - x0, y1 - y0]


def coco_evaluate(truth, detections, class_names, image_hw):
    """truth: per image (boxes yxyx, labels, crowd); detections: per image (boxes yxyx, scores, class ids),
    all in image pixels. Returns (report dict, COCOeval) with COCO's 101-point interpolated APs."""
    images = [{"id": i, "height": int(h), "width": int(w)} for i, (h, w) in enumerate(image_hw)]
    annotations = []
    for i, (boxes, labels, crowd) in enumerate(truth):
        for box, label, is_crowd in zip(boxes, labels, crowd):
            xywh = _xywh(box)
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(label) + 1, "bbox": xywh,
                                "area": xywh[2] * xywh[3], "iscrowd": int(is_crowd)})
    results = [[i, *_xywh(b), float(s), int(c) + 1]
               for i, (boxes, scores, classes) in enumerate(detections) for b, s, c in zip(boxes, scores, classes)]
    report = {"images": len(images), "objects": sum(not a["iscrowd"] for a in annotations), "detections": len(results)}
    if not results:
        return {**report, "map_50": 0.0, "map_50_95": 0.0, "per_class": {n: {"ap_50": 0.0, "ap_50_95": 0.0} for n in class_names}}, None
    with contextlib.redirect_stdout(io.StringIO()) as log:
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": k + 1, "name": n} for k, n in enumerate(class_names)]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(np.array(results, np.float64)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    report.update(map_50_95=float(ev.stats[0]), map_50=float(ev.stats[1]), coco_summary=log.getvalue().split("\n")[-13:-1])
    precision = ev.eval["precision"][:, :, :, 0, -1]  # (iou thresholds, recall points, classes), area all, 100 dets
    per_class = {}
    for k, name in enumerate(class_names):
        p = precision[:, :, k]
        per_class[name] = ({"ap_50": float(np.mean(p[0])), "ap_50_95": float(np.mean(p))} if (p > -1).all()
                           else {"ap_50": None, "ap_50_95": None})  # no object of this class in the split
    report["per_class"] = per_class
    return report, ev


def plot_pr_curves(ev, class_names, path):
    """Precision against recall at IoU 0.5, one line per class (COCO's interpolated curve)."""
    fig, ax = plt.subplots(figsize=(6, 5))
    recall = ev.params.recThrs
    for k, name in enumerate(class_names):
        p = ev.eval["precision"][0, :, k, 0, -1]
        if (p > -1).all():
            ax.plot(recall, p, label=f"{name} (AP {p.mean():.2f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="precision-recall at IoU 0.5")
    if len(class_names) <= 20:
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_detections(image, boxes_xyxy, class_names, scores, path, truth_xyxy=()):
    """Write `image` (uint8 HxWx3) with labelled boxes (and ground truth in white, thin) as a PNG."""
    picture = Image.fromarray(np.asarray(image, np.uint8))
    if max(picture.size) < 256:  # small scenes are enlarged so labels stay readable
        factor = 256 / max(picture.size)
        picture = picture.resize((round(picture.width * factor), round(picture.height * factor)), Image.NEAREST)
    else:
        factor = 1.0
    draw = ImageDraw.Draw(picture)
    for box in truth_xyxy:
        draw.rectangle([v * factor for v in box], outline=(255, 255, 255), width=1)
    for box, name, score in zip(boxes_xyxy, class_names, scores):
        x0, y0, x1, y1 = (v * factor for v in box)
        colour = _PALETTE[zlib.crc32(name.encode()) % len(_PALETTE)]
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=2)
        label = f"{name} {score:.2f}"
        top = max(y0 - 11, 0)
        draw.rectangle([x0, top, x0 + 6 * len(label) + 2, top + 11], fill=colour)
        draw.text((x0 + 1, top), label, fill=(0, 0, 0))
    picture.save(path)
