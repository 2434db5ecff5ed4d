"""Fast style transfer: train the chapter's image transform network fw once per style,
then stylise any photo in one pass.

    python fast_style_transfer.py train STYLE --photos DIR --model models/NAME.keras
    python fast_style_transfer.py stylize models/NAME.keras PHOTO [PHOTO or FOLDER ...]

The second system of Chollet's "Deep Learning with Python" 8.3, after Johnson, Alahi &
Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and Super-Resolution" (2016):
a feed-forward network fw turns a photo x into y = fw(x); y's VGG19 features give the
chapter's content loss (against x's) and Gram-matrix style loss (against the style
image's), plus the total variation loss, and their sum trains fw with Adam on many
photos. Afterwards one pass of fw stylises a photo of any size. The VGG19, its weights,
the losses and the image handling are style_transfer.py's own, imported from it.
The constants below are the defaults of the command-line flags.
"""

import argparse
import json
import math
import os
import signal
import sys
import time
import weakref

import numpy as np
from PIL import Image

import style_transfer as st
from style_transfer import FatalError, note

tf, keras = st.load_tensorflow()  # the layers below subclass Keras'

# ----------------------------------------------------------------------------- defaults
# The loss: the chapter's formulas, with this mode's own layer and weights (README:
# "Fast mode" says how they were chosen).
CONTENT_LAYER = "block3_conv3"  # shallower than the chapter's block5_conv2, as Johnson et al.
STYLE_LAYERS = st.STYLE_LAYERS  # block1_conv1 ... block5_conv1, as the chapter
CONTENT_WEIGHT = 1e-1           # weight of the content loss
STYLE_WEIGHT = 1.0              # weight of the style loss
TV_WEIGHT = 1e-4                # weight of the total variation loss
# The chapter's loss is not free of the image's size: the content and TV losses sum over
# pixels, the style loss is normalised by the pixel count. So a weight means one balance
# at one size, and fw is trained on small crops but used on whole photos. The weights
# hold for a photo LOSS_HEIGHT high (the main script's height, and the benchmark's): a
# crop's content and TV losses count (LOSS_HEIGHT / --size)^2 times, and the style's
# Gram matrices are taken with the style image that high, as the main script takes them.
LOSS_HEIGHT = st.IMG_HEIGHT     # the height of photo the loss weights are meant for
STYLE_SIZE = LOSS_HEIGHT        # the style image's height when its Gram matrices are taken

# The network fw (Johnson et al.'s shape, narrower: see README "Fast mode").
FILTERS = (16, 32, 64)          # widths: first 9x9 convolution, then each stride-2 one
RESIDUAL_BLOCKS = 5             # residual blocks at the lowest resolution

# Training.
SIZE = 256                      # side of the square random crops fw is trained on
BATCH_SIZE = 4                  # photos per step, split across devices
STEPS = 2000                    # total Adam steps (with --resume: up to this many)
LEARNING_RATE = 4e-3            # Adam's step size
SEED = 0                        # seeds the crops, flips and fw's initial weights
CHECKPOINT_EVERY = 100          # save fw and Adam's state every K steps
PREVIEW_EVERY = 200             # stylise the held-out preview photo every K steps
LOG_EVERY = 10                  # print a progress line every K steps
PRECISION = st.PRECISION        # as style_transfer.py: bfloat16 where native

# Stylising.
OUTPUT_DIR = "outputs"
MIN_PHOTO_SIDE = 16             # fw halves each side twice and pads by 4 pixels
MODEL_MAX_BYTES = 2 ** 30       # a model file larger than this is not one of ours
MAX_PREVIEW_SIDE = 512          # previews are stylised at most this high or wide

IMAGE_EXTENSIONS = {ext for ext, fmt in Image.registered_extensions().items()
                    if fmt in Image.OPEN}
CUSTOM = "fast_style_transfer"  # the package name our layers are registered under


# ----------------------------------------------------------------------------- the network
@keras.saving.register_keras_serializable(package=CUSTOM)
class ReflectionPadding(keras.layers.Layer):
    """Pads height and width by mirroring the border, so edges look like the inside
    instead of a dark frame that zero padding would teach fw to paint."""

    def __init__(self, pad, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad

    def call(self, x):
        p = self.pad
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable(package=CUSTOM)
class InstanceNormalization(keras.layers.Layer):
    """Normalises each image's channels over its own pixels (Ulyanov et al. 2016): the
    result no longer depends on the photo's contrast, nor on the other photos in the batch,
    so a batch split across devices gives the same result."""

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones")
        self.offset = self.add_weight(name="offset", shape=(channels,), initializer="zeros")

    def call(self, x):
        mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + self.epsilon) * self.scale + self.offset

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def build_transform_net(filters=FILTERS, residual_blocks=RESIDUAL_BLOCKS,
                        precision="float32", seed=SEED):
    """fw: photo (N, H, W, 3) RGB in 0-255 -> stylised photo, same shape, about 0-255.

    H and W must be multiples of 4 (stylise pads to that). Instance normalisation and
    the output stay float32 in bfloat16 mode: their sums over a whole image need it.
    """
    compute = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    init = keras.initializers.GlorotUniform
    layer_seed = iter(range(seed * 1000, seed * 1000 + 1000))

    def conv(x, width, kernel, name, stride=1, norm=True, relu=True):
        x = ReflectionPadding(kernel // 2, name=name + "_pad", dtype=compute)(x)
        # a bias before instance normalisation is subtracted right away: none
        x = keras.layers.Conv2D(width, kernel, strides=stride, name=name, dtype=compute,
                                use_bias=not norm,
                                kernel_initializer=init(seed=next(layer_seed)))(x)
        if norm:
            x = InstanceNormalization(name=name + "_norm", dtype="float32")(x)
        return keras.layers.ReLU(name=name + "_relu", dtype=compute)(x) if relu else x

    photo = keras.Input(shape=(None, None, 3), name="photo")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_unit", dtype=compute)(photo)
    x = conv(x, filters[0], 9, "down0")
    x = conv(x, filters[1], 3, "down1", stride=2)
    x = conv(x, filters[2], 3, "down2", stride=2)
    for i in range(residual_blocks):
        y = conv(x, filters[2], 3, f"residual{i}_a")
        y = conv(y, filters[2], 3, f"residual{i}_b", relu=False)
        x = keras.layers.Add(name=f"residual{i}", dtype=compute)([x, y])
    # Resize, then convolve (Odena et al. 2016): a strided transposed convolution
    # overlaps unevenly and paints a checkerboard.
    for i, width in enumerate((filters[1], filters[0]), start=1):
        x = keras.layers.UpSampling2D(2, name=f"up{i}_resize", dtype=compute)(x)
        x = conv(x, width, 3, f"up{i}")
    x = conv(x, 3, 9, "out", norm=False, relu=False)
    x = keras.layers.Activation("linear", dtype="float32", name="out_float32")(x)
    # Unbounded, centred on mid-grey: a random fw starts as a flat grey image.
    y = keras.layers.Rescaling(127.5, offset=127.5, name="to_pixels", dtype="float32")(x)
    return keras.Model(photo, y, name="transform_net")


def architecture_of(net):
    """(filters, residual blocks) of a transform net, read off its layers."""
    widths = tuple(net.get_layer(name).filters for name in ("down0", "down1", "down2"))
    blocks = sum(1 for layer in net.layers if layer.name.endswith("_a")
                 and layer.name.startswith("residual"))
    return widths, blocks


def load_transform_net(path, precision="float32"):
    """The transform net saved at path, rebuilt in the given precision, or FatalError."""
    st.check_regular_file(path, "model", MODEL_MAX_BYTES)
    if not path.endswith(".keras"):
        raise FatalError(f"model '{path}' is not a .keras file made by "
                         "'fast_style_transfer.py train'")
    try:
        with st._quiet_stderr():
            saved = keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001  whatever it is, it is not one of ours
        raise FatalError(f"model '{path}' is not a transform net made by "
                         f"'fast_style_transfer.py train' ({type(e).__name__})") from None
    try:
        if saved.name != "transform_net":
            raise ValueError(saved.name)
        widths, blocks = architecture_of(saved)
    except ValueError:
        raise FatalError(f"model '{path}' is a Keras model but not a transform net made by "
                         "'fast_style_transfer.py train'") from None
    net = build_transform_net(widths, blocks, precision)
    net.set_weights(saved.get_weights())
    return net


def stylise_pixels(net, pixels):
    """Run fw on uint8 RGB pixels (H, W, 3) of any size; returns uint8 pixels, same size.

    The photo is mirrored out to a multiple of 4 on each side, for fw's two halvings
    and two doublings, and the result cropped back.
    """
    height, width = pixels.shape[:2]
    pad_h, pad_w = -height % 4, -width % 4
    x = np.pad(pixels.astype(np.float32), ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
    y = one_pass(net)(tf.constant(x[np.newaxis]))[0].numpy()[:height, :width]
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


_ONE_PASS = weakref.WeakKeyDictionary()


def one_pass(net):
    """fw's forward pass as one graph, traced once for every size. Called eagerly, Keras
    keeps every intermediate image until the pass ends: 1.3 GB per megapixel against
    0.26 GB as a graph, which also runs faster (measured on 2000x1500)."""
    if net not in _ONE_PASS:
        ref = weakref.ref(net)  # the cache must not keep fw alive
        _ONE_PASS[net] = tf.function(
            lambda x: ref()(x, training=False),
            input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
    return _ONE_PASS[net]


# ----------------------------------------------------------------------------- the loss
def vgg_input(rgb):
    """keras.applications.vgg19.preprocess_input as a differentiable graph op."""
    return rgb[..., ::-1] - tf.constant([103.939, 116.779, 123.68])


class PerceptualLoss:
    """The chapter's loss of a batch of fw's outputs, averaged over the batch:
    content_weight * content loss + style_weight * style loss + tv_weight * TV loss,
    with the layers and weights of settings (a style_transfer.LossSettings).

    The style Gram matrices are computed once, here, for crops of size x size. With
    loss_height, the content and TV losses of a crop count as those of a square photo
    that high (LOSS_HEIGHT says why); None counts them as they are.
    """

    def __init__(self, weights, style_image, size, settings, style_size=STYLE_SIZE,
                 precision="float32", loss_height=LOSS_HEIGHT):
        self.settings = settings
        self.img_size = size * size
        self.pixel_scale = 1.0 if loss_height is None else (loss_height / size) ** 2
        self.extractor = st.build_feature_extractor(weights, settings.layers, "max",
                                                    precision)
        # fw's input needs only the content layer: a shorter VGG19 for it
        self.content_extractor = st.build_feature_extractor(
            weights, [settings.content_layer], "max", precision)
        style_width = max(st.MIN_SIDE, round(style_image.size[0] * style_size
                                             / style_image.size[1]))
        style = st.preprocess_image(style_image, (style_width, style_size))
        self.style_grams = {layer: tf.constant(gram) for layer, gram in st.style_grams(
            self.extractor, [style], [1.0], settings.style_layers, self.img_size).items()}

    def __call__(self, photos, generated, global_batch):
        """(total, [content, style, tv]) summed over this batch and divided by
        global_batch, so that replicas' sums add up to the mean over all photos."""
        settings, layer = self.settings, self.settings.content_layer
        targets = self.content_extractor(vgg_input(photos))[layer]
        features = self.extractor(vgg_input(generated))
        content, style = [], []
        for i in range(photos.shape[0]):
            content.append(st.content_loss(targets[i], features[layer][i]))
            style.append(tf.add_n([st.style_loss(self.style_grams[name], features[name][i],
                                                 self.img_size)
                                   for name in settings.style_layers]))
        per_layer = settings.style_weight / len(settings.style_layers)
        scale = self.pixel_scale / global_batch
        content = settings.content_weight * scale * tf.add_n(content)
        style = per_layer * tf.add_n(style) / global_batch
        tv = settings.tv_weight * scale * st.total_variation_loss(generated)
        return content + style + tv, [content, style, tv]


# ----------------------------------------------------------------------------- the photos
def find_photos(folder):
    """Every file under folder (recursively) with an image extension, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files)
                  if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
    return found


def readable_photos(paths, size):
    """The paths Pillow can open that are at least size/4 on their short side; a note
    for each one skipped."""
    readable = []
    for path in paths:
        try:
            st.check_regular_file(path, "photo", st.IMAGE_MAX_BYTES)
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
    """The training photo with index i: a random crop of size x size, maybe flipped.

    Photo i depends only on (seed, i), so a resumed run sees exactly the photos an
    uninterrupted one would have seen from that step on.
    """

    def __init__(self, paths, size, seed):
        self.paths, self.size, self.seed = paths, size, seed
        self.broken = set()

    def __call__(self, index):
        rng = np.random.default_rng([self.seed, int(index)])
        while True:
            path = self.paths[rng.integers(len(self.paths))]
            pixels = self.crop(path, rng)
            if pixels is not None:
                return pixels
            if len(self.broken) == len(self.paths):
                raise FatalError("none of the training photos can be decoded")

    def crop(self, path, rng):
        try:
            with Image.open(path) as image:
                # The short side goes to between 1 and 2 crop sizes: whole scenes and
                # details both. draft() decodes a large JPEG at a fraction of its size.
                short = int(self.size * rng.uniform(1.0, 2.0))
                image.draft("RGB", (short * image.size[0] // min(image.size),
                                    short * image.size[1] // min(image.size)))
                image = st.load_image(path, "training") if image.mode not in (
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
        return pixels[:, ::-1] if rng.random() < 0.5 else pixels


def photo_dataset(crops, first_step, steps, batch_size):
    """tf.data batches for steps first_step .. steps-1, decoded on the fly, in order."""
    size = crops.size
    indices = tf.data.Dataset.range(first_step * batch_size, steps * batch_size)
    images = indices.map(
        lambda i: tf.ensure_shape(tf.numpy_function(crops, [i], tf.float32),
                                  (size, size, 3)),
        num_parallel_calls=2, deterministic=True)
    return images.batch(batch_size, drop_remainder=True).prefetch(2)


# ----------------------------------------------------------------------------- training
def choose_strategy():
    """MirroredStrategy over several GPUs; else the default (one device) strategy.
    Under MultiWorkerMirroredStrategy (TF_CONFIG set) the same code trains unchanged."""
    if "TF_CONFIG" in os.environ:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


class Trainer:
    """fw, its Adam optimiser and the loss, under one tf.distribute strategy."""

    def __init__(self, strategy, loss, filters, residual_blocks, learning_rate, precision,
                 seed, global_batch, optimizer=keras.optimizers.Adam):
        self.strategy, self.loss, self.global_batch = strategy, loss, global_batch
        with strategy.scope():
            self.net = build_transform_net(filters, residual_blocks, precision, seed)
            self.optimizer = optimizer(learning_rate)
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


def save_checkpoint(path, trainer, step):
    """fw, Adam and the step, written atomically, so --resume continues exactly here."""
    net_weights, optimizer_variables = trainer.state()
    arrays = {f"net_{i}": w for i, w in enumerate(net_weights)}
    arrays.update({f"adam_{i}": v for i, v in enumerate(optimizer_variables)})

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, step=step, **arrays)
    st.atomic_write(path, write)


def load_checkpoint(path, trainer):
    """The step the checkpoint at path was saved at, after restoring fw and Adam."""
    try:
        with np.load(path) as saved:
            net = [saved[f"net_{i}"] for i in range(len(trainer.net.weights))]
            adam = [saved[f"adam_{i}"] for i in range(len(trainer.optimizer.variables))]
            step = int(saved["step"])
    except (OSError, KeyError, ValueError) as e:
        raise FatalError(f"checkpoint '{path}' cannot be resumed from ({e}); "
                         "train again without --resume") from None
    shapes = [w.shape for w in trainer.net.weights]
    if [a.shape for a in net] != [tuple(s) for s in shapes]:
        raise FatalError(f"checkpoint '{path}' is of another network (--filters, "
                         "--residual-blocks); resume with the settings it was trained with")
    trainer.restore(net, adam)
    return step


def save_model(net, path):
    """fw as a float32 .keras file (whatever precision it trained in), atomically."""
    widths, blocks = architecture_of(net)
    plain = build_transform_net(widths, blocks, "float32")
    plain.set_weights(net.get_weights())
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp.keras")  # Keras wants .keras
    try:
        plain.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def training_paths(model):
    """Where training writes: the model, its checkpoint, record, previews and figure."""
    stem = os.path.splitext(model)[0]
    return {"model": model, "checkpoint": stem + ".ckpt.npz", "record": stem + ".json",
            "previews": stem + "_previews", "figure": stem + "_training.png"}


class StopRequest:
    """Turns Ctrl-C, SIGTERM and SIGHUP into a request that the loop honours between
    steps, so the checkpoint always holds a whole step; a second signal stops at once."""

    def __init__(self):
        self.signum = None
        self.previous = {}

    def __enter__(self):
        for signum in st.STOP_SIGNALS:
            self.previous[signum] = signal.signal(signum, self.request)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def request(self, signum, frame):
        if self.signum is not None:
            raise st.Interrupted(signum)
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step "
              "(again to stop now)", file=sys.stderr, flush=True)


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
                  f"ETA {st.format_seconds(eta)}", flush=True)
        if step % args.preview_every == 0 or step == args.steps:
            self.save_preview(step)
        if step % args.checkpoint_every == 0:
            self.checkpoint(step, "running")

    def save_preview(self, step):
        os.makedirs(self.paths["previews"], exist_ok=True)
        st.save_image(stylise_pixels(self.trainer.net, self.preview),
                      os.path.join(self.paths["previews"], f"step_{step:06d}.png"))

    def checkpoint(self, step, status):
        save_checkpoint(self.paths["checkpoint"], self.trainer, step)
        save_model(self.trainer.net, self.paths["model"])
        self.record.update(status=status, step=step,
                           training_seconds=round(self.seconds(), 3))
        st.save_json(self.record, self.paths["record"])
        if status != "running":  # an interrupted run shows how far it got, too
            plot_training(self.record["history"], self.paths["previews"],
                          self.paths["figure"])

    def finish(self, step):
        self.checkpoint(step, "completed")
        print(f"saved {self.paths['model']}, {self.paths['figure']} and "
              f"{self.paths['record']} ({st.format_seconds(time.time() - self.start)})")


def new_record(args, weights_line, precision, photos, preview_path, strategy):
    return {
        "status": "running", "style": args.style, "photos": args.photos,
        "photo_count": len(photos), "preview_photo": preview_path,
        "settings": {k: (list(v) if isinstance(v, tuple) else v)
                     for k, v in vars(args).items() if k not in ("debug", "command")},
        "weights": weights_line, "precision": precision,
        "devices": strategy.num_replicas_in_sync, "libraries": st.library_versions(),
        "step": 0, "training_seconds": 0.0, "history": [],
    }


# What --resume may change: how long and how often, where, and the arithmetic (a run may
# move to a machine without bfloat16). Anything else would make the record lie about the
# model, or the run differ from an uninterrupted one.
RESUMABLE_CHANGES = {"model", "resume", "overwrite", "steps", "checkpoint_every",
                     "preview_every", "log_every", "precision", "preview"}


def resumed_record(paths, step, fresh):
    """The record of the run being resumed, its history cut back to the checkpoint."""
    try:
        with open(paths["record"]) as f:
            record = json.load(f)
    except (OSError, ValueError):
        note(f"no readable record '{paths['record']}'; starting a new one at step {step}")
        return dict(fresh, step=step)
    trained, now = record.get("settings", {}), fresh["settings"]
    changed = sorted(k for k in now.keys() - RESUMABLE_CHANGES
                     if k in trained and trained[k] != now[k])
    if changed:
        was = ", ".join(f"--{k.replace('_', '-')} {trained[k]}" for k in changed)
        raise FatalError(f"--resume: '{paths['model']}' was trained with {was}; resume with "
                         "those, or train a new model")
    record["settings"].update({k: now[k] for k in RESUMABLE_CHANGES if k in now})
    record["history"] = [h for h in record.get("history", []) if h["step"] <= step]
    record.setdefault("resumed_at", []).append(step)
    return record


def training_inputs(args, photos, preview_path):
    """[(what, path)] of every file training reads."""
    weights = (st.weights_cache_files() if args.weights == "imagenet" else [args.weights])
    return ([("style image", args.style), ("preview photo", preview_path)]
            + [("training photo", p) for p in photos]
            + [("weights file", w) for w in weights])


def train(args):
    paths = training_paths(args.model)
    style = st.load_image(args.style, "style")
    photos = readable_photos(find_photos(args.photos), args.size)
    if not photos:
        raise FatalError(f"no readable image under --photos '{args.photos}'; give a folder "
                         "of photos (JPEG, PNG, WebP...)")
    preview_path = args.preview or photos[0]
    training = [p for p in photos if os.path.abspath(p) != os.path.abspath(preview_path)]
    if not training:
        raise FatalError(f"the only photo under '{args.photos}' is held out as the preview; "
                         "add photos or pass another --preview")
    if args.resume and not os.path.exists(paths["checkpoint"]):
        raise FatalError(f"--resume: no checkpoint '{paths['checkpoint']}' to resume from")
    if not args.resume and not args.overwrite and os.path.exists(args.model):
        raise FatalError(f"model '{args.model}' exists; pass --resume to continue its "
                         "training or --overwrite to train a new one in its place")
    preview = preview_pixels(st.load_image(preview_path, "preview"))
    st.check_outputs_are_not_inputs(
        [("model", paths["model"]), ("checkpoint", paths["checkpoint"]),
         ("training record", paths["record"]), ("training figure", paths["figure"])],
        training_inputs(args, training, preview_path), "another --model")
    os.makedirs(os.path.dirname(os.path.abspath(args.model)), exist_ok=True)
    st.check_output({"final": args.model})
    precision = st.resolve_precision(args.precision)
    weights_path, weights_line = st.resolve_weights(args.weights)
    vgg_weights = st.read_vgg19_h5(weights_path, st.layers_up_to(
        [args.content_layer, *args.style_layers]))
    strategy = choose_strategy()
    if args.batch_size % strategy.num_replicas_in_sync:
        raise FatalError(f"--batch-size {args.batch_size} does not split evenly across "
                         f"{strategy.num_replicas_in_sync} devices")
    print(weights_line)
    print(f"{len(training)} training photos, preview '{preview_path}', precision "
          f"{precision}, {strategy.num_replicas_in_sync} device(s)")
    with strategy.scope():
        loss = PerceptualLoss(vgg_weights, style, args.size, st.LossSettings.from_args(args),
                              args.style_size, precision, args.loss_height)
    trainer = Trainer(strategy, loss, args.filters, args.residual_blocks,
                      args.learning_rate, precision, args.seed, args.batch_size)
    record = new_record(args, weights_line, precision, training, preview_path, strategy)
    first = 0
    if args.resume:
        first = load_checkpoint(paths["checkpoint"], trainer)
        record = resumed_record(paths, first, record)
        print(f"resuming at step {first}")
    run = TrainingRun(args, paths, trainer, preview, record)
    batches = trainer.distribute(photo_dataset(PhotoCrops(training, args.size, args.seed),
                                               first, args.steps, args.batch_size))
    return run_steps(run, trainer, batches, first)


def run_steps(run, trainer, batches, step):
    """The training loop: one Adam step per batch, stopping cleanly on a signal."""
    with StopRequest() as stop:
        try:
            for batch in batches:
                if stop.signum is not None:
                    break
                values = trainer.step(batch).numpy()
                step += 1
                run.after_step(step, values)
        except st.Interrupted as e:
            stop.signum = e.signum
        if stop.signum is not None:
            name = signal.Signals(stop.signum).name
            run.checkpoint(step, f"interrupted by {name}")
            print(f"interrupted ({name}) at step {step}: saved {run.paths['checkpoint']}, "
                  f"{run.paths['model']} and {run.paths['figure']}; --resume continues",
                  file=sys.stderr)
            return 128 + stop.signum
    run.finish(step)
    return 0


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
    st.atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=80))
    plt.close(figure)


# ----------------------------------------------------------------------------- stylising
def expand_inputs(inputs):
    """Image files named, and those under folders named, in order; FatalError if none."""
    files = []
    for path in inputs:
        if os.path.isdir(path):
            found = find_photos(path)
            if not found:
                raise FatalError(f"folder '{path}' holds no image files")
            files += found
        elif os.path.exists(path):
            files.append(path)
        else:
            raise FatalError(f"input '{path}' does not exist")
    return files


def claim_result_path(args, photo):
    """Where photo's result goes: --output, or <output-dir>/<photo>_<model>.png. Without
    --overwrite the name is numbered past existing files and created empty with O_EXCL,
    so that runs started together each get their own; returns (path, claim), claim being
    the placeholder's (st_dev, st_ino) or None."""
    name = lambda p: os.path.splitext(os.path.basename(p))[0]  # noqa: E731
    stem, extension = (os.path.splitext(args.output) if args.output else
                       (os.path.join(args.output_dir, f"{name(photo)}_{name(args.model)}"),
                        ".png"))
    path, n = stem + extension, 1
    while not args.overwrite:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            path, n = f"{stem}_{n}{extension}", n + 1
            continue
        info = os.fstat(fd)
        os.close(fd)
        return path, (info.st_dev, info.st_ino)
    return path, None


def progress_bar(done, total, label, width=24):
    filled = round(width * done / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label}"


def stylize(args):
    photos = expand_inputs(args.inputs)
    if args.output and len(photos) > 1:
        raise FatalError(f"--output names one file, but there are {len(photos)} inputs; "
                         "use --output-dir")
    if args.output and os.path.splitext(args.output)[1].lower() not in \
            Image.registered_extensions():
        raise FatalError(f"--output '{args.output}': unknown image extension; "
                         "use .png, .jpg or .webp")
    # Every input is read and checked before the model loads, then read again when its
    # turn comes: a folder of video frames is never held in memory at once.
    sizes = [input_image(path, args.height).size for path in photos]
    check_memory(photos, sizes, st.available_memory_mb())
    net = load_transform_net(args.model, st.resolve_precision(args.precision))
    folder = os.path.dirname(os.path.abspath(args.output or os.path.join(args.output_dir,
                                                                         "x.png")))
    st.check_output({"final": os.path.join(folder, "x.png")})
    claims = []
    try:
        for photo in photos:
            claims.append(claim_result_path(args, photo))
        st.check_outputs_are_not_inputs(
            [("result", path) for path, _ in claims],
            [("input", p) for p in photos] + [("model", args.model)])
        for i, (photo, (out, _)) in enumerate(zip(photos, claims, strict=True), start=1):
            start = time.perf_counter()
            pixels = np.asarray(input_image(photo, args.height))
            try:
                result = stylise_pixels(net, pixels)
            except st.out_of_memory_errors() as e:
                raise FatalError(f"ran out of memory stylising '{photo}' "
                                 f"({type(e).__name__}); {i - 1} of {len(photos)} written; "
                                 "try a smaller --height") from None
            if args.preserve_color:
                result = st.preserve_color(result, pixels)
            st.save_image(result, out)
            print(progress_bar(i, len(photos), f"{out} ({time.perf_counter() - start:.2f}s)"),
                  flush=True)
    finally:
        for path, claim in claims:  # the placeholders of results never written
            st.release_claim({"final": path}, claim)
    return 0


def input_image(path, height):
    """The photo at path, at --height if given, checked to be large enough for fw."""
    image = st.load_image(path, "input")
    if height:
        width = max(1, round(image.size[0] * height / image.size[1]))
        image = image.resize((width, height), Image.BICUBIC)
    if min(image.size) < MIN_PHOTO_SIDE:
        raise FatalError(f"input '{path}' is {image.size[0]}x{image.size[1]}; fw needs "
                         f"at least {MIN_PHOTO_SIDE} px on each side")
    return image


# Stylising's peak resident memory: TensorFlow, the model and a cost per megapixel of the
# largest input, with room above what was measured (fw as a graph, 2000x1500 and
# 4000x3000: 290 MB per megapixel in bfloat16, 415 in float32, about 960 MB besides).
STYLIZE_MEMORY_BASE_MB = 1000
STYLIZE_MEMORY_MB_PER_MEGAPIXEL = 500


def check_memory(photos, sizes, have):
    """Refuse before any work an input too large for the memory available (have, MB),
    suggesting a --height that fits."""
    if have is None:
        return
    path, (width, height) = max(zip(photos, sizes, strict=True),
                                key=lambda item: item[1][0] * item[1][1])
    need = STYLIZE_MEMORY_BASE_MB + STYLIZE_MEMORY_MB_PER_MEGAPIXEL * width * height / 1e6
    if need <= have:
        return
    fits = math.sqrt(max(have - STYLIZE_MEMORY_BASE_MB, 0) * 1e6
                     / STYLIZE_MEMORY_MB_PER_MEGAPIXEL / (width * height))
    advice = (f"try --height {math.floor(height * fits)}" if height * fits >= MIN_PHOTO_SIDE
              else "close other programs")
    raise FatalError(f"input '{path}' at {width}x{height} needs about {need / 1024:.1f} GB "
                     f"of memory and {have / 1024:.1f} GB is available; {advice}")


# ----------------------------------------------------------------------------- command line
def _int_tuple(text):
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got "
                                         f"'{text}'") from None


def build_parser():
    p = st._Parser(description="Fast style transfer (Johnson et al. 2016): train an image "
                               "transform network once per style, then stylise photos "
                               "in one pass.",
                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True, parser_class=st._Parser)
    t = commands.add_parser("train", help="train fw on a style image and a photo folder",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("style", help="the painting whose style fw learns")
    t.add_argument("--photos", required=True, help="folder of training photos (recursive)")
    t.add_argument("--model", required=True, help="where to save fw (.keras); its record, "
                   "checkpoint, previews and figure go beside it")
    t.add_argument("--preview", default=None, help="photo held out of training and "
                   "stylised every --preview-every steps; default: the first photo found")
    loss = t.add_argument_group("loss")
    loss.add_argument("--content-layer", default=CONTENT_LAYER,
                      help="VGG19 layer of the content loss")
    loss.add_argument("--style-layers", type=st._layer_list, default=STYLE_LAYERS,
                      help="comma-separated VGG19 layers of the style loss")
    loss.add_argument("--content-weight", type=float, default=CONTENT_WEIGHT,
                      help="weight of the content loss")
    loss.add_argument("--style-weight", type=float, default=STYLE_WEIGHT,
                      help="weight of the style loss")
    loss.add_argument("--tv-weight", type=float, default=TV_WEIGHT,
                      help="weight of the total variation loss")
    loss.add_argument("--loss-height", type=int, default=LOSS_HEIGHT,
                      help="the weights hold for a photo this high: a crop's content and "
                      "TV losses count (LOSS_HEIGHT / --size)^2 times")
    loss.add_argument("--style-size", type=int, default=STYLE_SIZE,
                      help="height of the style image for its Gram matrices")
    loss.add_argument("--weights", default=st.WEIGHTS,
                      help="'imagenet' or a Keras VGG19 .h5 weights file")
    net = t.add_argument_group("network and training")
    net.add_argument("--filters", type=_int_tuple, default=FILTERS,
                     help="three widths of fw's convolutions")
    net.add_argument("--residual-blocks", type=int, default=RESIDUAL_BLOCKS,
                     help="residual blocks in fw")
    net.add_argument("--size", type=int, default=SIZE, help="side of the training crops")
    net.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="photos per step")
    net.add_argument("--steps", type=int, default=STEPS, help="total training steps")
    net.add_argument("--learning-rate", type=float, default=LEARNING_RATE,
                     help="Adam's learning rate")
    net.add_argument("--seed", type=int, default=SEED, help="seed of crops and fw's start")
    net.add_argument("--precision", choices=["auto", "float32", "bfloat16"],
                     default=PRECISION, help="as in style_transfer.py")
    net.add_argument("--resume", action="store_true",
                     help="continue from the checkpoint beside --model up to --steps")
    net.add_argument("--overwrite", action="store_true",
                     help="replace an existing --model by a new one")
    out = t.add_argument_group("progress")
    out.add_argument("--checkpoint-every", type=int, default=CHECKPOINT_EVERY,
                     help="save fw and Adam's state every K steps")
    out.add_argument("--preview-every", type=int, default=PREVIEW_EVERY,
                     help="stylise the preview photo every K steps")
    out.add_argument("--log-every", type=int, default=LOG_EVERY,
                     help="print a progress line every K steps")
    t.add_argument("--debug", action="store_true", help="show tracebacks on errors")

    s = commands.add_parser("stylize", help="stylise photos with a trained fw",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("model", help="a .keras file made by 'train'")
    s.add_argument("inputs", nargs="+", help="photos, or folders of photos")
    s.add_argument("--output-dir", default=OUTPUT_DIR, help="folder of the results")
    s.add_argument("--output", default=None, help="path of the result, for one input")
    s.add_argument("--height", type=int, default=None,
                   help="resize each photo to this height first; default: its own size")
    s.add_argument("--preserve-color", action=argparse.BooleanOptionalAction,
                   default=False, help="keep the photo's colours")
    s.add_argument("--precision", choices=["auto", "float32", "bfloat16"],
                   default=PRECISION, help="as in style_transfer.py")
    s.add_argument("--overwrite", action="store_true",
                   help="replace earlier results instead of numbering new names")
    s.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return p


def check_train_args(args):
    """Everything about train's flags that can be checked before any file is read."""
    if not args.model.endswith(".keras"):
        raise FatalError(f"--model '{args.model}' must end in .keras")
    if args.size < 32 or args.size % 4:
        raise FatalError(f"--size must be a multiple of 4 of at least 32, got {args.size}")
    for flag in ("batch_size", "steps", "checkpoint_every", "preview_every", "log_every",
                 "residual_blocks", "style_size", "loss_height"):
        if getattr(args, flag) < (0 if flag == "residual_blocks" else 1):
            raise FatalError(f"--{flag.replace('_', '-')} must be at least "
                             f"{0 if flag == 'residual_blocks' else 1}, "
                             f"got {getattr(args, flag)}")
    if len(args.filters) != 3 or min(args.filters) < 1:
        raise FatalError(f"--filters must be three positive widths, e.g. 16,32,64; got "
                         f"{','.join(map(str, args.filters))}")
    for flag in ("content_weight", "style_weight", "tv_weight"):
        value = getattr(args, flag)
        if not math.isfinite(value) or value < 0:
            raise FatalError(f"--{flag.replace('_', '-')} must be a number >= 0, got {value}")
    if not (math.isfinite(args.learning_rate) and args.learning_rate > 0):
        raise FatalError(f"--learning-rate must be a number > 0, got {args.learning_rate}")
    known = [name for name, _, _ in st.VGG19_CONV_LAYERS]
    for layer in [args.content_layer, *args.style_layers]:
        if layer not in known:
            raise FatalError(f"unknown VGG19 layer '{layer}'; choose from {', '.join(known)}")
    if not os.path.isdir(args.photos):
        raise FatalError(f"--photos '{args.photos}' is not a folder")
    if args.weights != "imagenet":
        st.check_regular_file(args.weights, "weights file", st.WEIGHTS_MAX_BYTES,
                              "; pass a Keras VGG19 .h5 file or 'imagenet'")


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            check_train_args(args)
            return train(args)
        if args.height is not None and args.height < MIN_PHOTO_SIDE:
            raise FatalError(f"--height must be at least {MIN_PHOTO_SIDE}, got {args.height}")
        return stylize(args)
    except FatalError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a write failing (disk full...): no half files remain
        if args.debug:
            raise
        print(f"error: {e.strerror or e}{': ' + e.filename if e.filename else ''}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
