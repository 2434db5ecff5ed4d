"""The run's books: its record (a JSON file), its progress line, the images it saves as
it goes, and what is kept when it ends, however it ends.

Promises: the record says how the run ended (completed, interrupted by which signal,
stopped by a NaN loss or by memory, or an internal error), and it and the latest
generated image are saved in each case; a record holds no absolute path of the machine
that made it where a relative one or ~ will do (portable), so records can be committed.
"""
import contextlib
import os
import platform
import sys
import time

from nst.cli import first_line
from nst.outputs import save_image, save_json
from nst.runtime import FatalError, interrupted_by, keras, tf


def library_versions():
    import matplotlib
    import numpy
    import PIL
    import scipy
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "pillow": PIL.__version__,
            "matplotlib": matplotlib.__version__}


def format_seconds(seconds):
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def portable(value):
    """What a record says of a path (or of a line naming one): inside the working folder
    relative to it, inside the home folder with ~ for it, so that a committed record tells
    nothing of the machine that wrote it. Other values are returned as they are."""
    if isinstance(value, list | tuple):
        return [portable(v) for v in value]
    if not isinstance(value, str):
        return value
    value = value.replace(os.getcwd() + os.sep, "")
    home = os.path.expanduser("~")
    return value.replace(home + os.sep, "~" + os.sep) if home.strip(os.sep) else value


class Bookkeeper:
    """The run's books, kept beside the loop as its callback: the record, one progress
    line per iteration, the images saved as it goes, and what is saved when the run
    ends, however it ends. pixels(image) turns a generated image into what is saved."""

    def __init__(self, args, paths, pixels, size, weights_line, precision):
        self.args, self.paths, self.pixels = args, paths, pixels
        self.iterations = args.iterations * len(args.scales)
        self.record = {
            "status": "running", "target": portable(args.target),
            "style": portable(args.style),
            "settings": {k: portable(v) for k, v in vars(args).items()
                         if k not in ("debug", "show", "summary")},
            "weights": portable(weights_line), "precision": precision,
            "libraries": library_versions(), "size": list(size),
            "outputs": {k: portable(v) for k, v in paths.items()}, "history": [],
            "total_seconds": None,
        }
        self.start = time.time()

    def __call__(self, step):
        """Record an Iterate; after a real iteration, print its line and save."""
        height, width = step.image.shape[1:3]
        content, style, tv = step.parts
        self.record["history"].append({
            "iteration": step.iteration, "scale": step.scale, "size": [width, height],
            "evaluations": step.evaluations, "loss": step.loss, "content": content,
            "style": style, "tv": tv, "seconds": round(time.time() - self.start, 3)})
        if step.iteration == 0:  # the starting image: recorded, not printed or saved
            return
        elapsed = time.time() - self.start
        eta = elapsed / step.iteration * (self.iterations - step.iteration)
        print(f"iteration {step.iteration}/{self.iterations}  loss {step.loss:.3g} (content "
              f"{content:.3g}, style {style:.3g}, tv {tv:.3g})  {step.evaluations} evals  "
              f"{elapsed:.1f}s  ETA {format_seconds(eta)}", flush=True)
        if self.args.save_every and step.iteration % self.args.save_every == 0:
            save_image(self.pixels(step.image), self.paths["iteration"].format(step.iteration))
        save_json(self.record, self.paths["record"])

    def finish(self, status, image, **extra):
        """Save the final image (if there is one yet) and the record, marked status."""
        self.record.update(status=status, total_seconds=round(time.time() - self.start, 3),
                           **extra)
        if image is not None:
            save_image(self.pixels(image), self.paths["final"])
        save_json(self.record, self.paths["record"])

    def interrupted(self, image, error):
        """After Ctrl-C, SIGTERM or SIGHUP (error): the books closed, the exit status."""
        status, name = interrupted_by(error)
        self.finish(name, image)
        saved = (f"the latest generated image to {self.paths['final']} and "
                 if image is not None else "")
        with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
            print(f"{name}: saved {saved}the run record to {self.paths['record']}",
                  file=sys.stderr)
        return status

    def stopped(self, image, evaluation):
        """After a NaN or infinite loss: the books closed, the FatalError to raise."""
        self.finish("stopped: non-finite loss", image, non_finite_at_evaluation=evaluation)
        kept = (f"kept the last good image in {self.paths['final']}" if image is not None
                else "no image was saved")
        return FatalError(f"the loss became NaN or infinite at evaluation {evaluation}; "
                          f"{kept}; try smaller --style-weight/--content-weight/--tv-weight "
                          "or a smaller --height")

    def out_of_memory(self, image, message):
        """After a MemoryError or ResourceExhaustedError: the books closed, the
        FatalError to raise, message(what was kept) saying what ran out and what to try."""
        self.finish("stopped: out of memory", image)
        kept = (f"kept the last good image in {self.paths['final']} and the record in "
                f"{self.paths['record']}" if image is not None else
                f"kept the record in {self.paths['record']}")
        return FatalError(message(kept))

    def failed(self, image, error):
        """After an exception nobody expected, which main reports: the record says what
        happened. Not after a failing write (OSError): writing more would fail too."""
        if isinstance(error, OSError):
            return
        with contextlib.suppress(Exception):  # main reports the first error, not this one
            self.finish(f"failed: internal error ({type(error).__name__})", image,
                        error=first_line(error))

    def completed(self, image, draw):
        """After the last iteration: the final image, the record, and draw(pixels of the
        final image) to make the figure."""
        self.finish("completed", image)
        draw(self.pixels(image))
        print(f"saved {self.paths['final']}, {self.paths['figure']} and "
              f"{self.paths['record']} ({format_seconds(time.time() - self.start)})")
        return 0
