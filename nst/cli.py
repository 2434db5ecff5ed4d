"""The command-line pieces both scripts use: the parser that answers in one line, the loss
flags and their checks, and the wrapper that turns whatever stops a command into one line
and an exit status.

Promises: bad input is one line on stderr, exit status 2, no traceback (a traceback only
with --debug); a signal exits with 128 + its number; a bug is one line and exit status 1.
"""
import argparse
import contextlib
import math
import os
import sys

from PIL import Image

from nst.inputs import check_regular_file
from nst.runtime import FatalError, interrupted_by, out_of_memory_errors
from nst.vgg_weights import VGG19_CONV_LAYERS, WEIGHTS_MAX_BYTES


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's default in --help, except where there is none to show: '(default:
    None)' tells a user nothing, the flag's help says what happens without it."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, formatter_class=HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message):  # one line, exit 2, as for every other bad input
        self.exit(2, f"error: {message} (see --help)\n")


def number_list(text):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got '{text}'") from e


def int_tuple(text):
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got "
                                         f"'{text}'") from None


def layer_list(text):
    return [v.strip() for v in text.split(",") if v.strip()]


# What add_flags' second column may say besides a type: a switch is off unless given
# (--debug); a toggle has a --no- form too (--preserve-color / --no-preserve-color).
SWITCH, TOGGLE = "switch", "toggle"
PRECISIONS = ["auto", "float32", "bfloat16"]


def add_flags(group, table):
    """Add the flags of table, one row each: (flag, kind, default, help). kind is a
    type (int, float, a parser such as number_list), SWITCH, TOGGLE, a list of the
    values allowed, or (type, '+') for one or more values; the default is shown in --help."""
    for flag, kind, default, text in table:
        if kind == SWITCH:
            group.add_argument(flag, action="store_true", help=text)
        elif kind == TOGGLE:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                               help=text)
        elif isinstance(kind, list):
            group.add_argument(flag, choices=kind, default=default, help=text)
        elif isinstance(kind, tuple):
            group.add_argument(flag, type=kind[0], nargs=kind[1], default=default, help=text)
        else:
            group.add_argument(flag, type=kind, default=default, help=text)


def add_loss_flags(group, *, content_weight, style_weight, tv_weight, content_layer,
                   style_layers, weights):
    """The loss flags, their defaults the calling script's constants."""
    add_flags(group, [
        ("--content-weight", float, content_weight, "weight of the content loss"),
        ("--style-weight", float, style_weight, "weight of the style loss"),
        ("--tv-weight", float, tv_weight, "weight of the total variation loss"),
        ("--content-layer", str, content_layer, "VGG19 layer of the content loss"),
        ("--style-layers", layer_list, style_layers,
         "comma-separated VGG19 layers of the style loss"),
        ("--weights", str, weights, "'imagenet' or a Keras VGG19 .h5 weights file"),
    ])


def check_loss_flags(args):
    """The loss flags' values: weights finite and >= 0, layers that VGG19 has (the weights
    file is check_weights_flag's)."""
    for flag in ("content_weight", "style_weight", "tv_weight"):
        value = getattr(args, flag)
        if not math.isfinite(value) or value < 0:
            raise FatalError(f"--{flag.replace('_', '-')} must be a number >= 0, got {value}")
    known = [name for name, _, _ in VGG19_CONV_LAYERS]
    for layer in [args.content_layer, *args.style_layers]:
        if layer not in known:
            raise FatalError(f"unknown VGG19 layer '{layer}'; choose from {', '.join(known)}")


def check_weights_flag(args):
    if args.weights != "imagenet":
        check_regular_file(args.weights, "weights file", WEIGHTS_MAX_BYTES,
                           "; pass a Keras VGG19 .h5 file or 'imagenet'")


def check_output_extension(output):
    """An --output whose extension names no image format Pillow writes is refused."""
    if output and os.path.splitext(output)[1].lower() not in Image.registered_extensions():
        raise FatalError(f"--output '{output}': unknown image extension; "
                         "use .png, .jpg or .webp")


def first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else ""


def internal_error(error):
    """The last resort's one line for an exception nobody expected."""
    message = first_line(error)
    return (f"internal error ({type(error).__name__}{': ' + message if message else ''}); "
            "rerun with --debug to see where")


def exit_status(command, debug, out_of_memory, interrupted):
    """Run command() and return its exit status; whatever stops it is one line on stderr
    (a traceback only with debug): 2 for what the user can act on (FatalError, a failing
    write, memory: out_of_memory(error) says what to try), 128 + the signal's number for
    Ctrl-C, SIGTERM or SIGHUP (interrupted(name) says what was kept), 1 for a bug."""
    try:
        return command()
    except FatalError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a write failing (disk full...): no half files remain
        if debug:
            raise
        print(f"error: {e.strerror or e}{': ' + e.filename if e.filename else ''}",
              file=sys.stderr)
        return 2
    except out_of_memory_errors() as e:
        if debug:
            raise
        print(f"error: {out_of_memory(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # outside the loops that save on a signal themselves
        if debug:
            raise
        status, name = interrupted_by(e)
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            print(interrupted(name), file=sys.stderr)
        return status
    except Exception as e:  # the last resort: one line, never a traceback
        if debug:
            raise
        print(f"error: {internal_error(e)}", file=sys.stderr)
        return 1
