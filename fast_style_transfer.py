"""Fast style transfer: train the chapter's image transform network fw once per style,
then stylise any photo in one pass.

    python fast_style_transfer.py stylize starry_night PHOTO [PHOTO or FOLDER ...]
    python fast_style_transfer.py models
    python fast_style_transfer.py train STYLE --photos DIR --model models/NAME.keras

The second system of Chollet's "Deep Learning with Python" 8.3, after Johnson, Alahi &
Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and Super-Resolution" (2016):
a feed-forward network fw turns a photo x into y = fw(x); y's VGG19 features give the
chapter's content loss (against x's) and Gram-matrix style loss (against the style
image's), plus the total variation loss, and their sum trains fw with Adam on many
photos. Afterwards one pass of fw stylises a photo of any size. The VGG19, its weights,
the losses and the image handling are style_transfer.py's own, imported from it; the
network and its training are in nst/transform_net.py and nst/training.py. The constants
below are the defaults of the command-line flags.
"""

import contextlib
import json
import math
import os
import sys
import time

from nst import runtime  # first: it quietens TensorFlow before anything imports it

if __name__ == "__main__":  # a signal while the libraries load: nothing to save, exit
    runtime.exit_on_signals_while_loading("while starting; nothing was written")

import numpy as np
from PIL import Image

import style_transfer as st
from nst import cli, memory, outputs, speed, training, transform_net, vgg_weights, video
from nst.inputs import find_photos, load_image
from nst.record import format_seconds
from nst.runtime import FatalError, tf

# ----------------------------------------------------------------------------- defaults
# The loss: the chapter's formulas, with this mode's own layer and weights (docs/fast_mode.md
# says how they were chosen).
CONTENT_LAYER = "block3_conv3"  # shallower than the chapter's block5_conv2, as Johnson et al.
STYLE_LAYERS = st.STYLE_LAYERS  # block1_conv1 ... block5_conv1, as the chapter
CONTENT_WEIGHT = 1e-1           # weight of the content loss
STYLE_WEIGHT = 1.0              # weight of the style loss
TV_WEIGHT = 1e-4                # weight of the total variation loss
WEIGHTS = st.WEIGHTS            # 'imagenet' or a Keras VGG19 .h5 weights file
# The chapter's loss is not free of the image's size: the content and TV losses sum over
# pixels, the style loss is normalised by the pixel count. So a weight means one balance
# at one size, and fw is trained on small crops but used on whole photos. The weights
# hold for a photo LOSS_HEIGHT high (the main script's height, and the benchmark's): a
# crop's content and TV losses count (LOSS_HEIGHT / crop side)^2 times, and the style's
# Gram matrices are taken with the style image that high, as the main script takes them.
LOSS_HEIGHT = st.IMG_HEIGHT     # the height of photo the loss weights are meant for
STYLE_SIZE = LOSS_HEIGHT        # the style image's height when its Gram matrices are taken

# The network fw (Johnson et al.'s shape, narrower: see docs/fast_mode.md).
FILTERS = (16, 32, 64)          # widths: first 9x9 convolution, then each stride-2 one
RESIDUAL_BLOCKS = 5             # residual blocks at the lowest resolution

# Training.
SIZE = 256                      # side of the square random crops fw ends its training on
SMALL_SIZE = 128                # side of the crops of the first steps (the crop-size schedule)
SMALL_STEPS = 0                 # the first steps, on SMALL_SIZE crops; 0: all at SIZE
COLOR_JITTER = 0.0              # brightness, contrast, saturation of each crop times 1 +- this
AUGMENT = False                 # crops at random scales (1 to 2), flipped: measured, no gain
BATCH_SIZE = 4                  # photos per step, split across devices
STEPS = 2000                    # total Adam steps (with --resume: up to this many)
LEARNING_RATE = 4e-3            # Adam's step size
WARMUP_STEPS = 200              # with --init-model: the step size rises from 0 over these
                                # (docs/fast_mode.md: without, the first steps undo the net)
SEED = 0                        # seeds the crops, flips and fw's initial weights
CHECKPOINT_EVERY = 100          # save fw and Adam's state every K steps
PREVIEW_EVERY = 200             # stylise the held-out preview photo every K steps
LOG_EVERY = 10                  # print a progress line every K steps
PRECISION = st.PRECISION        # as style_transfer.py: bfloat16 where native

# Stylising.
MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
OUTPUT_DIR = "outputs"
STRENGTH = 1.0                  # 1: the net's output; 0: the photo; between: a blend
SMOOTH = 0.5                    # a clip's steadying: the previous output's share where the
                                # flow is reliable (benchmarks/VIDEO.md); 0: frame by frame
PROGRESS_SECONDS = 2.0          # a clip's progress line at most this often


# ----------------------------------------------------------------------------- the loss
def vgg_input(rgb):
    """keras.applications.vgg19.preprocess_input as a differentiable graph op."""
    return rgb[..., ::-1] - tf.constant([103.939, 116.779, 123.68])


class PerceptualLoss:
    """The chapter's loss of a batch of fw's outputs, averaged over the batch:
    content_weight * content loss + style_weight * style loss + tv_weight * TV loss,
    with the layers and weights of settings (a style_transfer.LossSettings).

    The style's Gram matrices are computed once, here, per pixel of the generated image,
    and scaled to each batch's crop size when it comes (the crop-size schedule trains on
    two). With loss_height, the content and TV losses of a crop count as those of a
    square photo that high (LOSS_HEIGHT says why); None counts them as they are. size is
    unused, kept for callers that name the crop size.
    """

    def __init__(self, weights, style_image, size, settings, style_size=STYLE_SIZE,
                 precision="float32", loss_height=LOSS_HEIGHT):
        self.settings, self.loss_height = settings, loss_height
        self.extractor = st.build_feature_extractor(weights, settings.layers, "max",
                                                    precision)
        # fw's input needs only the content layer: a shorter VGG19 for it
        self.content_extractor = st.build_feature_extractor(
            weights, [settings.content_layer], "max", precision)
        style_width = max(st.MIN_SIDE, round(style_image.size[0] * style_size
                                             / style_image.size[1]))
        style = st.preprocess_image(style_image, (style_width, style_size))
        self.grams_per_pixel = {layer: tf.constant(gram) for layer, gram in st.style_grams(
            self.extractor, [style], [1.0], settings.style_layers, 1).items()}

    def __call__(self, photos, generated, global_batch):
        """(total, [content, style, tv]) summed over this batch and divided by
        global_batch, so that replicas' sums add up to the mean over all photos."""
        settings, layer = self.settings, self.settings.content_layer
        img_size = int(photos.shape[1]) * int(photos.shape[2])
        pixel_scale = 1.0 if self.loss_height is None else self.loss_height ** 2 / img_size
        targets = self.content_extractor(vgg_input(photos))[layer]
        features = self.extractor(vgg_input(generated))
        content, style = [], []
        for i in range(photos.shape[0]):
            content.append(st.content_loss(targets[i], features[layer][i]))
            style.append(tf.add_n([st.style_loss(self.grams_per_pixel[name] * img_size,
                                                 features[name][i], img_size)
                                   for name in settings.style_layers]))
        per_layer = settings.style_weight / len(settings.style_layers)
        scale = pixel_scale / global_batch
        content = settings.content_weight * scale * tf.add_n(content)
        style = per_layer * tf.add_n(style) / global_batch
        tv = settings.tv_weight * scale * st.total_variation_loss(generated)
        return content + style + tv, [content, style, tv]


# ----------------------------------------------------------------------------- training
def train(args):
    """Train fw on args.style and the photos under args.photos; the exit status. Every
    file is checked before TensorFlow loads."""
    paths = training.training_paths(args.model)
    style = load_image(args.style, "style")
    photos = training.readable_photos(find_photos(args.photos), args.size)
    if not photos:
        raise FatalError(f"no readable image under --photos '{args.photos}'; give a folder "
                         "of photos (JPEG, PNG, WebP...)")
    preview_path = args.preview or photos[0]
    photos = [p for p in photos if os.path.abspath(p) != os.path.abspath(preview_path)]
    if not photos:
        raise FatalError(f"the only photo under '{args.photos}' is held out as the preview; "
                         "add photos or pass another --preview")
    if args.resume and not os.path.exists(paths["checkpoint"]):
        raise FatalError(f"--resume: no checkpoint '{paths['checkpoint']}' to resume from")
    if not args.resume and not args.overwrite and os.path.exists(args.model):
        raise FatalError(f"model '{args.model}' exists; pass --resume to continue its "
                         "training or --overwrite to train a new one in its place")
    resumed = training.check_resume(paths) if args.resume else None
    if args.warmup_steps is None:  # a resumed run keeps its own
        kept = ((resumed or {}).get("settings") or {}).get("warmup_steps")
        args.warmup_steps = kept if kept is not None else (
            WARMUP_STEPS if args.init_model is not None else 0)
    if args.init_model is not None and not args.resume:
        transform_net.check_model_file(args.init_model, "--init-model")
    preview = training.preview_pixels(load_image(preview_path, "preview"))
    outputs.check_outputs_are_not_inputs(
        [("model", paths["model"]), ("checkpoint", paths["checkpoint"]),
         ("training record", paths["record"]), ("training figure", paths["figure"])],
        training_inputs(args, photos, preview_path), "another --model")
    os.makedirs(os.path.dirname(os.path.abspath(args.model)), exist_ok=True)
    outputs.check_output(args.model)
    runtime.load_tensorflow()  # every check above runs without it
    init_net = None
    if args.init_model is not None and not args.resume:  # a resumed run has its weights
        init_net = initial_net(args)
    precision = speed.resolve_precision(args.precision)
    weights_path, weights_line = vgg_weights.resolve_weights(args.weights)
    vgg = vgg_weights.read_vgg19_h5(weights_path, st.layers_up_to(
        [args.content_layer, *args.style_layers]))
    strategy = training.choose_strategy()
    if args.batch_size % strategy.num_replicas_in_sync:
        raise FatalError(f"--batch-size {args.batch_size} does not split evenly across "
                         f"{strategy.num_replicas_in_sync} devices")
    print(weights_line)
    print(f"{len(photos)} training photos, preview '{preview_path}', precision "
          f"{precision}, {strategy.num_replicas_in_sync} device(s)")
    with strategy.scope():
        loss = PerceptualLoss(vgg, style, args.size, st.LossSettings.from_args(args),
                              args.style_size, precision, args.loss_height)
    trainer = training.Trainer(strategy, loss, args.filters, args.residual_blocks,
                               args.learning_rate, precision, args.seed, args.batch_size,
                               warmup_steps=args.warmup_steps)
    if init_net is not None:
        trainer.net.set_weights(init_net.get_weights())
    record = training.new_record(args, weights_line, precision, photos, preview_path,
                                 strategy)
    first = 0
    if args.resume:
        first = training.load_checkpoint(paths["checkpoint"], trainer)
        record = training.resumed_record(paths, first, record, resumed)
        print(f"resuming at step {first}")
    run = training.TrainingRun(args, paths, trainer, preview, record)
    batches = trainer.distribute(training.photo_dataset(
        training.PhotoCrops(photos, args.size, args.seed, jitter=args.color_jitter,
                            augment=args.augment), first, args.steps, args.batch_size,
        training.PhotoCrops(photos, args.small_size, args.seed, args.size, args.color_jitter,
                            args.augment), args.small_steps))
    return training.run_steps(run, trainer, batches, first)


def initial_net(args):
    """The --init-model net, whose widths the new one takes: args.filters and
    args.residual_blocks are set to them (given otherwise, they are refused)."""
    net = transform_net.load_transform_net(args.init_model, what="--init-model")
    widths, blocks = transform_net.architecture_of(net)
    if (tuple(args.filters), args.residual_blocks) not in ((widths, blocks),
                                                           (FILTERS, RESIDUAL_BLOCKS)):
        raise FatalError(f"--init-model '{args.init_model}' has --filters "
                         f"{','.join(map(str, widths))} and --residual-blocks {blocks}; "
                         "leave those flags out to train with its widths")
    args.filters, args.residual_blocks = widths, blocks
    return net


def training_inputs(args, photos, preview_path):
    """[(what, path)] of every file training reads."""
    weights = (vgg_weights.weights_cache_files() if args.weights == "imagenet"
               else [args.weights])
    initial = [] if args.init_model is None else [("initial model", args.init_model)]
    return ([("style image", args.style), ("preview photo", preview_path)]
            + [("training photo", p) for p in photos]
            + [("weights file", w) for w in weights] + initial)


# ----------------------------------------------------------------------------- stylising
def find_model(name):
    """The model file a stylize names: a path to a .keras file, or the name of a bundled
    model (models/NAME.keras); FatalError listing the bundled ones for an unknown name."""
    if os.path.exists(name) or os.path.splitext(name)[1] or os.sep in name:
        return name  # a path: checked as a model file when its turn comes
    path = os.path.join(MODELS_DIR, name + ".keras")
    if os.path.exists(path):
        return path
    known = ", ".join(bundled_models()) or "none"
    raise FatalError(f"no model named '{name}': give a .keras file or one of the bundled "
                     f"models ({known})")


def bundled_models():
    """The names of the models in MODELS_DIR, sorted."""
    if not os.path.isdir(MODELS_DIR):
        return []
    return sorted(os.path.splitext(f)[0] for f in os.listdir(MODELS_DIR)
                  if f.endswith(".keras") and not f.startswith("."))


def list_models(args):
    """`models`: each bundled model with its style image, training steps and size."""
    names = bundled_models()
    if not names:
        print(f"no bundled models in {MODELS_DIR}")
        return 0
    print(f"{'model':<14} {'style image':<26} {'steps':>6} {'MB':>5}")
    for name in names:
        path = os.path.join(MODELS_DIR, name + ".keras")
        try:
            with open(os.path.splitext(path)[0] + ".json") as f:
                record = json.load(f)
            style, steps = os.path.basename(record["style"]), record["step"]
        except (OSError, ValueError, KeyError, TypeError):
            style, steps = "(no record)", "?"
        print(f"{name:<14} {style:<26} {steps:>6} {os.path.getsize(path) / 2 ** 20:>5.1f}")
    return 0


def result_path(args, source, model, clip=False):
    """(path, claim) of a result: --output, or <output-dir>/<source>_<model>_fast.png (a
    clip's: .mp4, or its own .mov or .mkv), a name the optimisation's results
    (<photo>_<style>.png) never take. Without --overwrite the name is numbered past
    existing files and claimed (nst/outputs.py)."""
    name = lambda p: os.path.splitext(os.path.basename(p))[0]  # noqa: E731
    stem, extension = (os.path.splitext(args.output) if args.output else
                       (os.path.join(args.output_dir, f"{name(source)}_{name(model)}_fast"),
                        video.output_extension(source) if clip else ".png"))
    if args.overwrite:
        return stem + extension, None
    return outputs.claim_first_free(outputs.numbered(stem, extension))


def blend(result, photo, strength):
    """The net's output blended with the photo: strength 1 is the output, 0 the photo."""
    if strength >= 1:
        return result
    mixed = strength * result.astype(np.float32) + (1 - strength) * photo.astype(np.float32)
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def stylize(args):
    """Stylise every input, photo or clip, with the model; the exit status. Every input
    is checked, and every result's name claimed, before TensorFlow loads."""
    model = find_model(args.model)
    inputs = expand_inputs(args.inputs)
    if args.output and len(inputs) > 1:
        raise FatalError(f"--output names one file, but there are {len(inputs)} inputs; "
                         "use --output-dir")
    clips = {path: video.probe(path) for path in inputs if is_clip(path)}
    check_output_kind(args.output, bool(clips))
    # Every input is read and checked before the model loads, then read again when its
    # turn comes: a folder of video frames is never held in memory at once.
    sizes = [clip_size(path, clips[path], args.height) if path in clips else
             input_image(path, args.height).size for path in inputs]
    memory.check_stylize_memory(inputs, sizes, memory.available_memory_mb(),
                                transform_net.MIN_PHOTO_SIDE)
    transform_net.check_model_file(model)
    outputs.check_output(args.output or os.path.join(args.output_dir, "x.png"))
    claims, written = [], 0
    try:
        for path in inputs:
            claims.append(result_path(args, path, model, path in clips))
        outputs.check_outputs_are_not_inputs(
            [("result", out) for out, _ in claims],
            [("input", p) for p in inputs] + [("model", model)])
        runtime.load_tensorflow()  # every check above runs without it
        net = transform_net.load_transform_net(model, speed.resolve_precision(args.precision))
        for i, (path, (out, _)) in enumerate(zip(inputs, claims, strict=True), start=1):
            start = time.perf_counter()
            done = f"{i - 1} of {len(inputs)} written"
            if path in clips:
                frames = stylise_clip(net, path, out, args, done)
                written = i
                label = f"{out} ({frames} frames, {format_seconds(time.perf_counter() - start)})"
            else:
                with runtime.signals_deferred():  # a photo is written whole, or not begun
                    stylise_file(net, path, out, args, done)
                    written = i  # before a signal held meanwhile is acted on
                label = f"{out} ({time.perf_counter() - start:.2f}s)"
            print(progress_bar(i, len(inputs), label), flush=True)
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM or SIGHUP: what is written is whole
        status, name = runtime.interrupted_by(e)
        clip = getattr(e, "clip_kept", None)  # a clip cut short is kept, playable
        kept = (f", and '{clip[2]}' keeps the first {clip[1]} frames of '{clip[0]}'" if clip
                else f"; the first {written} kept" if written else "; nothing was written")
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            print(f"{name}: {written} of {len(inputs)} results written{kept}",
                  file=sys.stderr)
        return status
    finally:
        for out, claim in claims:  # the placeholders of results never written
            outputs.release_claim(out, claim)
    return 0


def stylised(net, pixels, args):
    """fw's output for uint8 RGB pixels, with --preserve-color and --strength."""
    result = transform_net.stylise_pixels(net, pixels)
    if args.preserve_color:
        result = st.preserve_color(result, pixels)
    return blend(result, pixels, args.strength)


def stylise_file(net, photo, out, args, done):
    """One photo stylised, saved to out; done says what was written before it, for the
    message if memory runs out."""
    pixels = np.asarray(input_image(photo, args.height))
    try:
        result = stylised(net, pixels, args)
    except runtime.out_of_memory_errors() as e:
        raise FatalError(f"ran out of memory stylising '{photo}' ({type(e).__name__}); "
                         f"{done}; try a smaller --height") from None
    outputs.save_image(result, out)


def stylise_clip(net, clip, out, args, done):
    """One clip stylised frame by frame, steadied by --smooth, written to out with its
    sound (nst/video.py); the number of frames. Interrupted, the frames done are kept as
    a playable clip, and the exception says so (clip_kept) for the one line."""
    shown = [0.0, 0]  # when progress was last printed, frames done

    def progress(frames, total, fps, left):
        shown[1] = frames
        if time.perf_counter() - shown[0] >= PROGRESS_SECONDS or frames == total:
            shown[0] = time.perf_counter()
            of = f"/{total}" if total else ""
            eta = f", {format_seconds(left)} left" if left is not None else ""
            print(f"  {os.path.basename(clip)}: frame {frames}{of}, {fps:.1f} frames/s{eta}",
                  flush=True)

    try:
        return video.stylize_clip(lambda frame: stylised(net, frame, args), clip, out,
                                  args.height, args.smooth, progress)
    except KeyboardInterrupt as e:
        e.clip_kept = (clip, shown[1], out) if shown[1] else None
        raise
    except runtime.out_of_memory_errors() as e:
        raise FatalError(f"ran out of memory stylising '{clip}' ({type(e).__name__}); "
                         f"{done}, and its first {shown[1]} frames in '{out}'; try a smaller "
                         "--height") from None


def is_clip(path):
    """Whether an input is a clip: a video file, or a GIF with more than one frame."""
    if not video.is_video(path):
        return False
    if os.path.splitext(path)[1].lower() != ".gif":
        return True
    with contextlib.suppress(OSError, ValueError, SyntaxError), Image.open(path) as image:
        return getattr(image, "n_frames", 1) > 1
    return False


def clip_size(path, info, height):
    """A clip's frames' size as stylised, checked to be large enough for fw."""
    width, high = video.output_size(info, height)
    if min(width, high) < transform_net.MIN_PHOTO_SIDE:
        raise FatalError(f"video '{path}' would be {width}x{high}; fw needs at least "
                         f"{transform_net.MIN_PHOTO_SIDE} px on each side")
    return width, high


def check_output_kind(output, any_clip):
    """--output names an image file for a photo, a .mp4, .mov or .mkv for a clip."""
    if output and any_clip:
        if os.path.splitext(output)[1].lower() not in video.OUTPUT_FORMATS:
            raise FatalError(f"--output '{output}': a clip is written as "
                             f"{', '.join(sorted(video.OUTPUT_FORMATS))}")
    else:
        cli.check_output_extension(output)


def expand_inputs(inputs):
    """Files named, and the images and clips under folders named, in order; FatalError
    if a folder holds none."""
    files = []
    for path in inputs:
        if os.path.isdir(path):
            found = find_photos(path, video.VIDEO_EXTENSIONS)
            if not found:
                raise FatalError(f"folder '{path}' holds no image files")
            files += found
        elif os.path.exists(path):
            files.append(path)
        else:
            raise FatalError(f"input '{path}' does not exist")
    return files


def input_image(path, height):
    """The photo at path, at --height if given, checked to be large enough for fw."""
    image = load_image(path, "input")
    if height:
        width = max(1, round(image.size[0] * height / image.size[1]))
        image = image.resize((width, height), Image.BICUBIC)
    if min(image.size) < transform_net.MIN_PHOTO_SIDE:
        raise FatalError(f"input '{path}' is {image.size[0]}x{image.size[1]}; fw needs "
                         f"at least {transform_net.MIN_PHOTO_SIDE} px on each side")
    return image


def progress_bar(done, total, label, width=24):
    filled = round(width * done / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label}"


# ----------------------------------------------------------------------------- command line
def build_parser():
    p = cli.Parser(description="Fast style transfer (Johnson et al. 2016): train an image "
                               "transform network once per style, then stylise photos "
                               "in one pass.")
    commands = p.add_subparsers(dest="command", required=True, parser_class=cli.Parser)
    t = commands.add_parser("train", help="train fw on a style image and a photo folder")
    t.add_argument("style", help="the painting whose style fw learns")
    t.add_argument("--photos", required=True, help="folder of training photos (recursive)")
    t.add_argument("--model", required=True, help="where to save fw (.keras); its record, "
                   "checkpoint, previews and figure go beside it")
    t.add_argument("--preview", default=None, help="photo held out of training and "
                   "stylised every --preview-every steps; default: the first photo found")
    loss = t.add_argument_group("loss")
    cli.add_loss_flags(loss, content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT,
                       tv_weight=TV_WEIGHT, content_layer=CONTENT_LAYER,
                       style_layers=STYLE_LAYERS, weights=WEIGHTS)
    cli.add_flags(loss, [
        ("--loss-height", int, LOSS_HEIGHT, ("the weights hold for a photo this high: a crop's "
         "content and TV losses count (LOSS_HEIGHT / crop side)^2 times")),
        ("--style-size", int, STYLE_SIZE, "height of the style image for its Gram matrices"),
    ])
    cli.add_flags(t.add_argument_group("network and training"), [
        ("--filters", cli.int_tuple, FILTERS, "three widths of fw's convolutions"),
        ("--residual-blocks", int, RESIDUAL_BLOCKS, "residual blocks in fw"),
        ("--init-model", str, None, ("start from this trained fw (.keras) instead of random "
         "weights: a new style fine-tuned from an old one; its widths are used")),
        ("--size", int, SIZE, "side of the training crops of the last steps"),
        ("--small-size", int, SMALL_SIZE, "side of the crops of the first --small-steps"),
        ("--small-steps", int, SMALL_STEPS,
         "how many of the first steps train on the cheaper --small-size crops; 0: none"),
        ("--color-jitter", float, COLOR_JITTER, ("scale each crop's brightness, contrast and "
         "saturation by a random factor in 1 +- this")),
        ("--augment", cli.TOGGLE, AUGMENT, ("crop photos at random scales (1 to 2 times the "
         "crop side on the short side) and flip half; --no-augment: one scale, unflipped")),
        ("--batch-size", int, BATCH_SIZE, "photos per step"),
        ("--steps", int, STEPS, "total training steps"),
        ("--learning-rate", float, LEARNING_RATE, "Adam's learning rate"),
        ("--warmup-steps", int, None, (f"raise the learning rate from 0 over the first N "
         f"steps; default: {WARMUP_STEPS} with --init-model, else 0")),
        ("--seed", int, SEED, "seed of crops and fw's start"),
        ("--precision", cli.PRECISIONS, PRECISION, "as in style_transfer.py"),
        ("--resume", cli.SWITCH, False,
         "continue from the checkpoint beside --model up to --steps"),
        ("--overwrite", cli.SWITCH, False, "replace an existing --model by a new one"),
    ])
    cli.add_flags(t.add_argument_group("progress"), [
        ("--checkpoint-every", int, CHECKPOINT_EVERY, "save fw and Adam's state every K steps"),
        ("--preview-every", int, PREVIEW_EVERY, "stylise the preview photo every K steps"),
        ("--log-every", int, LOG_EVERY, "print a progress line every K steps"),
        ("--debug", cli.SWITCH, False, "show tracebacks on errors"),
    ])

    s = commands.add_parser("stylize", help="stylise photos with a trained fw")
    s.add_argument("model", help="a bundled model's name (see 'models') or a .keras file "
                   "made by 'train'")
    s.add_argument("inputs", nargs="+", help="photos, clips, or folders of them")
    cli.add_flags(s, [
        ("--output-dir", str, OUTPUT_DIR, "folder of the results"),
        ("--output", str, None, "path of the result, for one input"),
        ("--height", int, None,
         "resize each photo to this height first; default: its own size"),
        ("--strength", float, STRENGTH, ("how much of the style: 1 the net's output, 0 the "
         "photo, between them a blend")),
        ("--smooth", float, SMOOTH, ("for clips: how much of the previous output frame, "
         "carried along the optical flow, steadies the next (0: each frame alone)")),
        ("--preserve-color", cli.TOGGLE, False, "keep the photo's colours"),
        ("--precision", cli.PRECISIONS, PRECISION, "as in style_transfer.py"),
        ("--overwrite", cli.SWITCH, False,
         "replace earlier results instead of numbering new names"),
        ("--debug", cli.SWITCH, False, "show tracebacks on errors"),
    ])
    m = commands.add_parser("models", help="list the bundled models")
    m.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return p


def check_train_args(args):
    """Everything about train's flags that can be checked before any file is read."""
    if not args.model.endswith(".keras"):
        raise FatalError(f"--model '{args.model}' must end in .keras")
    for flag in ("size", "small_size"):
        value = getattr(args, flag)
        if value < 32 or value % 4:
            raise FatalError(f"--{flag.replace('_', '-')} must be a multiple of 4 of at "
                             f"least 32, got {value}")
    if args.small_steps < 0:
        raise FatalError(f"--small-steps must be 0 or more, got {args.small_steps}")
    if args.warmup_steps is not None and args.warmup_steps < 0:
        raise FatalError(f"--warmup-steps must be 0 or more, got {args.warmup_steps}")
    if not 0 <= args.color_jitter < 1:
        raise FatalError(f"--color-jitter must be from 0 to below 1, got {args.color_jitter}")
    for flag in ("batch_size", "steps", "checkpoint_every", "preview_every", "log_every",
                 "residual_blocks", "style_size", "loss_height"):
        if getattr(args, flag) < (0 if flag == "residual_blocks" else 1):
            raise FatalError(f"--{flag.replace('_', '-')} must be at least "
                             f"{0 if flag == 'residual_blocks' else 1}, "
                             f"got {getattr(args, flag)}")
    if len(args.filters) != 3 or min(args.filters) < 1:
        raise FatalError(f"--filters must be three positive widths, e.g. 16,32,64; got "
                         f"{','.join(map(str, args.filters))}")
    cli.check_loss_flags(args)
    if not (math.isfinite(args.learning_rate) and args.learning_rate > 0):
        raise FatalError(f"--learning-rate must be a number > 0, got {args.learning_rate}")
    if not os.path.isdir(args.photos):
        raise FatalError(f"--photos '{args.photos}' is not a folder")
    cli.check_weights_flag(args)


def check_stylize_args(args):
    if args.height is not None and args.height < transform_net.MIN_PHOTO_SIDE:
        raise FatalError(f"--height must be at least {transform_net.MIN_PHOTO_SIDE}, "
                         f"got {args.height}")
    for flag in ("strength", "smooth"):
        if not 0 <= getattr(args, flag) <= 1:
            raise FatalError(f"--{flag} must be from 0 to 1, got {getattr(args, flag)}")


def main(argv=None, handle_signals=False):
    """The fast mode from the command line; whatever stops it is one line (a traceback
    only with --debug) and an exit status: 2 for what the user can act on, 128 + the
    signal's number for a signal, 1 for a bug. handle_signals: Ctrl-C, SIGTERM and SIGHUP
    stop the command cleanly (as a script; tests calling main leave the handlers be)."""
    args = build_parser().parse_args(argv)
    if handle_signals:
        runtime.install_signal_handlers()

    def run():
        if args.command == "models":
            return list_models(args)
        if args.command == "train":
            check_train_args(args)
            return train(args)
        check_stylize_args(args)
        return stylize(args)

    def out_of_memory(error):
        advice = ("a smaller --batch-size or --size" if args.command == "train" else
                  "a smaller --height")
        return f"ran out of memory ({type(error).__name__}); try {advice}"

    return cli.exit_status(run, args.debug, out_of_memory,
                           lambda name: f"{name} before any result was written; nothing "
                           "was changed")


if __name__ == "__main__":
    sys.exit(main(handle_signals=True))
