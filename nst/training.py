"""The fast mode's training: random crops of the photos, Adam steps on fw under one
tf.distribute strategy, checkpoints, and the training run's record, progress and previews.

Promises: a run resumed from its checkpoint continues exactly as the uninterrupted run
would have (the crops depend only on the seed and the step; fw, Adam and the step are
saved together, atomically); Ctrl-C, SIGTERM and SIGHUP stop between two steps with the
checkpoint, the model, the record and the figure saved; a record never claims settings
its model was not trained with. Importing this module does not import TensorFlow.
"""
import json
import math
import os
import signal
import sys
import time
import uuid

import numpy as np
from PIL import Image

from nst import outputs
from nst.inputs import IMAGE_MAX_BYTES, check_regular_file, load_image
from nst.record import format_seconds, library_versions, portable
from nst.runtime import FatalError, Interrupted, StopRequest, keras, note, signals_ignored, tf
from nst.transform_net import MIN_PHOTO_SIDE, build_transform_net, save_model, stylise_pixels

MAX_PREVIEW_SIDE = 512          # previews are stylised at most this high or wide


def readable_photos(paths, size):
    """The paths Pillow can open that are at least size/4 on their short side; a note
    for each one skipped."""
    readable = []
    for path in paths:
        try:
            check_regular_file(path, "photo", IMAGE_MAX_BYTES)
        except FatalError as e:
            note(f"skipped: {e}")
            continue
        try:
            with Image.open(path) as image:
                short = min(image.size)
        except Exception as e:  # noqa: BLE001  any failure to open means: skip it
            note(f"skipped '{path}': not an image Pillow can read ({type(e).__name__})")
            continue
        if short < max(MIN_PHOTO_SIDE, size // 4):
            note(f"skipped '{path}': {short} px on its short side is too small")
            continue
        readable.append(path)
    return readable


class PhotoCrops:
    """The training photo with index i: a random crop of size x size, maybe flipped, its
    colours maybe jittered.

    The photo is first scaled so that its short side is between 1 and 2 times scale_size
    (default: size), whole scenes and details both (augment=False: 1.5 times, never
    flipped, to measure what the random scales and flips are worth): small crops of the crop-size
    schedule take scale_size from the final crops, so that they are windows of photos
    at the scale the net ends its training on, not of smaller photos. jitter, from 0,
    scales brightness, contrast and saturation each by a random factor in 1 +- jitter.
    Photo i depends only on (seed, i), so a resumed run sees exactly the photos an
    uninterrupted one would have seen from that step on.
    """

    def __init__(self, paths, size, seed, scale_size=None, jitter=0.0, augment=True):
        self.paths, self.size, self.seed = paths, size, seed
        self.scale_size, self.jitter, self.augment = scale_size or size, jitter, augment
        self.broken = set()

    def __call__(self, index):
        rng = np.random.default_rng([self.seed, int(index)])
        while True:
            path = self.paths[rng.integers(len(self.paths))]
            pixels = self.crop(path, rng)
            if pixels is not None:
                return pixels if self.jitter == 0 else jitter_colours(pixels, self.jitter,
                                                                       rng)
            if len(self.broken) == len(self.paths):
                raise FatalError("none of the training photos can be decoded")

    def crop(self, path, rng):
        try:
            with Image.open(path) as image:
                # draft() decodes a large JPEG at a fraction of its size
                factor = rng.uniform(1.0, 2.0) if self.augment else 1.5
                short = int(self.scale_size * factor)
                image.draft("RGB", (short * image.size[0] // min(image.size),
                                    short * image.size[1] // min(image.size)))
                image = load_image(path, "training") if image.mode not in (
                    "RGB", "L") else image.convert("RGB")
        except (FatalError, OSError, ValueError, SyntaxError) as e:
            if path not in self.broken:
                self.broken.add(path)
                note(f"skipped '{path}' while training: it cannot be decoded ({e})")
            return None
        scale = short / min(image.size)
        width = max(self.size, round(image.size[0] * scale))
        height = max(self.size, round(image.size[1] * scale))
        image = image.resize((width, height), Image.BICUBIC)
        left = rng.integers(width - self.size + 1)
        top = rng.integers(height - self.size + 1)
        pixels = np.asarray(image, dtype=np.float32)[top:top + self.size,
                                                     left:left + self.size]
        return pixels[:, ::-1] if self.augment and rng.random() < 0.5 else pixels


def jitter_colours(pixels, amount, rng):
    """pixels (H, W, 3) float32 0-255 with brightness, contrast and saturation each
    scaled by a factor drawn from 1 +- amount: a photo's exposure and white balance
    should not decide the strokes fw paints."""
    brightness, contrast, saturation = rng.uniform(1 - amount, 1 + amount, 3)
    grey = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
    pixels = grey[..., None] + saturation * (pixels - grey[..., None])
    pixels = grey.mean() + contrast * (pixels - grey.mean())
    return np.clip(pixels * brightness, 0, 255).astype(np.float32)


def photo_dataset(crops, first_step, steps, batch_size, small_crops=None, small_steps=0):
    """tf.data batches for steps first_step .. steps-1, decoded on the fly, in order:
    steps before small_steps from small_crops, the rest from crops."""
    def batches(source, first, last):
        size = source.size
        indices = tf.data.Dataset.range(first * batch_size, last * batch_size)
        images = indices.map(
            lambda i: tf.ensure_shape(tf.numpy_function(source, [i], tf.float32),
                                      (size, size, 3)),
            num_parallel_calls=2, deterministic=True)
        return images.batch(batch_size, drop_remainder=True)

    dataset = batches(crops, max(first_step, small_steps), steps)
    if small_crops is not None and first_step < small_steps:
        dataset = batches(small_crops, first_step, min(small_steps, steps)).concatenate(
            dataset)
    return dataset.prefetch(2)


def choose_strategy():
    """MirroredStrategy over several GPUs; else the default (one device) strategy.
    Under MultiWorkerMirroredStrategy (TF_CONFIG set) the same code trains unchanged."""
    if "TF_CONFIG" in os.environ:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def warmed_up(learning_rate, warmup_steps):
    """Adam's step size at step s (a tensor): rising linearly to learning_rate over the
    first warmup_steps, then constant. Adam's first steps move every weight by about the
    step size whatever its gradient: on a trained net (--init-model) they undo much of
    what it knew before the moments settle."""
    if warmup_steps <= 0:
        return learning_rate

    class WarmUp(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):  # Keras passes Adam's step count
            return learning_rate * tf.minimum(1.0, (tf.cast(step, tf.float32) + 1)
                                              / warmup_steps)

        def get_config(self):
            return {"learning_rate": learning_rate, "warmup_steps": warmup_steps}
    return WarmUp()


class Trainer:
    """fw, its Adam optimiser and the loss, under one tf.distribute strategy. Adam's
    step count is among its saved variables, so a warm-up resumes where it was."""

    def __init__(self, strategy, loss, filters, residual_blocks, learning_rate, precision,
                 seed, global_batch, optimizer=None, warmup_steps=0):
        self.strategy, self.loss, self.global_batch = strategy, loss, global_batch
        with strategy.scope():
            self.net = build_transform_net(filters, residual_blocks, precision, seed)
            self.optimizer = (optimizer or keras.optimizers.Adam)(
                warmed_up(learning_rate, warmup_steps))
            self.optimizer.build(self.net.trainable_variables)
        self.step = tf.function(self._step)

    def _replica_step(self, photos):
        with tf.GradientTape() as tape:
            generated = self.net(photos, training=True)
            total, parts = self.loss(photos, generated, self.global_batch)
        variables = self.net.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables, strict=True))
        return tf.stack([total, *parts])

    def _step(self, photos):
        """One Adam step on a (distributed) batch; returns [total, content, style, tv]."""
        per_replica = self.strategy.run(self._replica_step, args=(photos,))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def distribute(self, dataset):
        return self.strategy.experimental_distribute_dataset(dataset)

    def state(self):
        """fw's weights and Adam's variables (step count, moments), as numpy arrays."""
        return ([w.numpy() for w in self.net.weights],
                [v.numpy() for v in self.optimizer.variables])

    def restore(self, net_weights, optimizer_variables):
        for variable, value in zip(self.net.weights, net_weights, strict=True):
            variable.assign(value)
        for variable, value in zip(self.optimizer.variables, optimizer_variables, strict=True):
            variable.assign(value)


CHECKPOINT_MAX_BYTES = 2 ** 31  # a checkpoint larger than this is not one of ours
RECORD_MAX_BYTES = 2 ** 28


def save_checkpoint(path, trainer, step, run_id):
    """fw, Adam, the step and the run's id, written atomically, so --resume continues
    exactly here, and only with the record of the same run."""
    net_weights, optimizer_variables = trainer.state()
    arrays = {f"net_{i}": w for i, w in enumerate(net_weights)}
    arrays.update({f"adam_{i}": v for i, v in enumerate(optimizer_variables)})

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, step=step, run_id=run_id or "", **arrays)
    outputs.atomic_write(path, write)


def damaged_checkpoint(path, error):
    return FatalError(f"checkpoint '{path}' is damaged or not a checkpoint "
                      f"({type(error).__name__}); train again without --resume")


def read_checkpoint(path):
    """(step, run id or None, {name: array}) of a checkpoint, or FatalError: anything
    but a whole checkpoint (empty, truncated, random bytes, another kind of file) is
    refused before it can be half-used."""
    check_regular_file(path, "checkpoint", CHECKPOINT_MAX_BYTES,
                       "; train again without --resume")
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
        step = int(arrays.pop("step"))
        run_id = str(arrays.pop("run_id", "")) or None
        if "net_0" not in arrays:
            raise KeyError("net_0")
    except Exception as e:  # noqa: BLE001  numpy's and zipfile's errors: all mean damaged
        raise damaged_checkpoint(path, e) from None
    return step, run_id, arrays


def read_record(path):
    """The training record at path, None if there is none, or FatalError if it is not a
    whole record (it would resume a run whose history nobody can vouch for)."""
    if not os.path.lexists(path):
        return None
    check_regular_file(path, "training record", RECORD_MAX_BYTES)
    try:
        with open(path) as f:
            record = json.load(f)
        if not (isinstance(record.get("settings"), dict)
                and isinstance(record.get("history"), list)):
            raise TypeError("no settings or history")
        for entry in record["history"]:
            int(entry["step"])
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as e:
        raise FatalError(f"training record '{path}' is damaged ({type(e).__name__}); remove "
                         "it to resume with a new record, or train again without --resume"
                         ) from None
    return record


def check_resume(paths):
    """Before TensorFlow loads: the checkpoint and the record a --resume would read are
    whole, and of the same run. Returns the record (None if there is none)."""
    _, run_id, _ = read_checkpoint(paths["checkpoint"])
    record = read_record(paths["record"])
    if record is not None and run_id and record.get("run_id") not in (None, run_id):
        raise FatalError(f"checkpoint '{paths['checkpoint']}' is another run's than the "
                         f"record '{paths['record']}'; train again without --resume")
    return record


def load_checkpoint(path, trainer):
    """The step the checkpoint at path was saved at, after restoring fw and Adam."""
    step, _, arrays = read_checkpoint(path)
    try:
        net = [arrays[f"net_{i}"] for i in range(len(trainer.net.weights))]
        adam = [arrays[f"adam_{i}"] for i in range(len(trainer.optimizer.variables))]
    except KeyError as e:
        raise damaged_checkpoint(path, e) from None
    shapes = [w.shape for w in trainer.net.weights]
    if [a.shape for a in net] != [tuple(s) for s in shapes] or len(arrays) != len(net) + len(
            adam):
        raise FatalError(f"checkpoint '{path}' is of another network (--filters, "
                         "--residual-blocks); resume with the settings it was trained with")
    trainer.restore(net, adam)
    return step


def training_paths(model):
    """Where training writes: the model, its checkpoint, record, previews and figure."""
    stem = os.path.splitext(model)[0]
    return {"model": model, "checkpoint": stem + ".ckpt.npz", "record": stem + ".json",
            "previews": stem + "_previews", "figure": stem + "_training.png"}


class TrainingRun:
    """The bookkeeping of a training run: record, progress line, checkpoints, previews."""

    def __init__(self, args, paths, trainer, preview, record):
        self.args, self.paths, self.trainer, self.record = args, paths, trainer, record
        self.preview = preview
        self.seconds_before = record.get("training_seconds") or 0.0
        self.start = time.time()
        self.first_step = record["history"][-1]["step"] if record["history"] else 0

    def seconds(self):
        return self.seconds_before + time.time() - self.start

    def after_step(self, step, values):
        loss, content, style, tv = (float(v) for v in values)
        if not all(math.isfinite(v) for v in (loss, content, style, tv)):
            raise FatalError(f"the loss became NaN or infinite at step {step}; the "
                             f"checkpoint in {self.paths['checkpoint']} holds the last "
                             "good state; try a smaller --learning-rate")
        self.record["history"].append({"step": step, "loss": loss, "content": content,
                                       "style": style, "tv": tv,
                                       "seconds": round(self.seconds(), 3)})
        args = self.args
        if step % args.log_every == 0 or step == args.steps:
            done = step - self.first_step
            rate = done / max(time.time() - self.start, 1e-9)
            eta = (args.steps - step) / rate if rate > 0 else 0.0
            print(f"step {step}/{args.steps}  loss {loss:.3g} (content {content:.3g}, "
                  f"style {style:.3g}, tv {tv:.3g})  {rate:.2f} steps/s  "
                  f"ETA {format_seconds(eta)}", flush=True)
        if step % args.preview_every == 0 or step == args.steps:
            self.save_preview(step)
        if step % args.checkpoint_every == 0:
            self.checkpoint(step, "running")

    def save_preview(self, step):
        os.makedirs(self.paths["previews"], exist_ok=True)
        outputs.save_image(stylise_pixels(self.trainer.net, self.preview),
                      os.path.join(self.paths["previews"], f"step_{step:06d}.png"))

    def checkpoint(self, step, status):
        save_checkpoint(self.paths["checkpoint"], self.trainer, step, self.record.get("run_id"))
        save_model(self.trainer.net, self.paths["model"])
        self.record.update(status=status, step=step,
                           training_seconds=round(self.seconds(), 3))
        outputs.save_json(self.record, self.paths["record"])
        if status != "running":  # an interrupted run shows how far it got, too
            plot_training(self.record["history"], self.paths["previews"],
                          self.paths["figure"])

    def finish(self, step):
        self.checkpoint(step, "completed")
        print(f"saved {self.paths['model']}, {self.paths['figure']} and "
              f"{self.paths['record']} ({format_seconds(time.time() - self.start)})")


def new_record(args, weights_line, precision, photos, preview_path, strategy):
    return {
        "status": "running", "run_id": uuid.uuid4().hex,
        "style": portable(args.style), "photos": portable(args.photos),
        "photo_count": len(photos), "preview_photo": portable(preview_path),
        "settings": {k: portable(v) for k, v in vars(args).items()
                     if k not in ("debug", "command")},
        "weights": portable(weights_line), "precision": precision,
        "devices": strategy.num_replicas_in_sync, "libraries": library_versions(),
        "step": 0, "training_seconds": 0.0, "history": [],
    }


# What --resume may change: how long and how often, where, and the arithmetic (a run may
# move to a machine without bfloat16). Anything else would make the record lie about the
# model, or the run differ from an uninterrupted one.
RESUMABLE_CHANGES = {"model", "resume", "overwrite", "steps", "checkpoint_every",
                     "preview_every", "log_every", "precision", "preview"}
# Where the first step's weights came from: a resumed run has its own, so --init-model
# need not be given again, and the record keeps the one it started from.
KEPT_ON_RESUME = {"init_model"}
PATH_SETTINGS = {"style", "photos", "weights"}


def resumed_record(paths, step, fresh, record):
    """The record of the run being resumed (record, as read_record read it; None: a new
    one begins at step), its history cut back to the checkpoint."""
    if record is None:
        note(f"no record '{paths['record']}'; starting a new one at step {step}")
        return dict(fresh, step=step)
    trained, now = record.get("settings", {}), fresh["settings"]

    def same(key):  # files by name: a run may be resumed from another folder
        if key in PATH_SETTINGS and isinstance(trained[key], str) and isinstance(now[key], str):
            return os.path.basename(trained[key]) == os.path.basename(now[key])
        return trained[key] == now[key]
    changed = sorted(k for k in now.keys() - RESUMABLE_CHANGES - KEPT_ON_RESUME
                     if k in trained and not same(k))
    if changed:
        was = ", ".join(f"--{k.replace('_', '-')} {trained[k]}" for k in changed)
        raise FatalError(f"--resume: '{paths['model']}' was trained with {was}; resume with "
                         "those, or train a new model")
    record["settings"].update({k: now[k] for k in RESUMABLE_CHANGES if k in now})
    record["history"] = [h for h in record.get("history", []) if h["step"] <= step]
    record.setdefault("resumed_at", []).append(step)
    record.setdefault("run_id", fresh["run_id"])  # records from before run ids
    return record


def run_steps(run, trainer, batches, step):
    """The training loop: one Adam step per batch, stopping cleanly on a signal. The last
    save, on a signal or at the end, is not cut short by another one."""
    with StopRequest() as stop:
        try:
            for batch in batches:
                if stop.signum is not None:
                    break
                values = trainer.step(batch).numpy()
                step += 1
                run.after_step(step, values)
        except Interrupted as e:
            stop.signum = e.signum
        with signals_ignored():
            if stop.signum is None:
                run.finish(step)
                return 0
            name = signal.Signals(stop.signum).name
            run.checkpoint(step, f"interrupted by {name}")
            print(f"interrupted ({name}) at step {step}: saved {run.paths['checkpoint']}, "
                  f"{run.paths['model']} and {run.paths['figure']}; --resume continues",
                  file=sys.stderr)
            return 128 + stop.signum


def preview_pixels(image, longest=MAX_PREVIEW_SIDE):
    image = image.copy()
    image.thumbnail((longest, longest), Image.BICUBIC)
    return np.asarray(image)


def plot_training(history, previews_folder, path, columns=6):
    """Loss curves (total, content, style, TV) above a row of previews over training."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    previews = sorted(os.listdir(previews_folder)) if os.path.isdir(previews_folder) else []
    if len(previews) > columns:  # evenly spaced, always with the last
        previews = [previews[round(i * (len(previews) - 1) / (columns - 1))]
                    for i in range(columns)]
    figure = plt.figure(figsize=(3 * max(len(previews), 4), 7.5))
    grid = figure.add_gridspec(2, max(len(previews), 1), height_ratios=[3, 2])
    ax = figure.add_subplot(grid[0, :])
    steps = [h["step"] for h in history]
    for key in ("loss", "content", "style", "tv"):
        ax.plot(steps, [h[key] for h in history], label="total" if key == "loss" else key,
                lw=2 if key == "loss" else 1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("weighted loss (mean over the batch)")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    for i, name in enumerate(previews):
        ax = figure.add_subplot(grid[1, i])
        ax.imshow(np.asarray(Image.open(os.path.join(previews_folder, name))))
        ax.set_title(f"step {int(name[5:11])}")
        ax.axis("off")
    figure.tight_layout()
    outputs.atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=80))
    plt.close(figure)
