"""TensorFlow imported lazily, signals, and the error types every part raises.

TensorFlow and Keras take seconds and hundreds of MB to import: `tf` and `keras` here stand
for them and import both on first use, so that a script can check its inputs, refuse a bad
one in a fraction of a second and only then call load_tensorflow(). Promises: a signal
while the libraries load exits at once with 128 + its number (there is nothing to save);
Ctrl-C, SIGTERM and SIGHUP otherwise raise Interrupted, a KeyboardInterrupt, so that
whoever catches KeyboardInterrupt saves what it has; FatalError is the one exception whose
message is meant for the user, as one line with exit status 2.
"""
import contextlib
import os
import signal
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up chatter off the console

STOP_SIGNALS = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))
                if s is not None]

_loaded = None  # (tensorflow, keras) once imported
GPUS = []       # TensorFlow's physical GPUs, found by load_tensorflow


def load_tensorflow():
    """Import TensorFlow and Keras (once) and find the GPUs; returns (tf, keras)."""
    global _loaded, GPUS
    if _loaded is None:
        with quiet_stderr(), exit_on_signals():
            import keras as keras_module
            import tensorflow as tf_module
            gpus = tf_module.config.list_physical_devices("GPU")  # logs to fd 2 too
        _loaded, GPUS = (tf_module, keras_module), gpus
    return _loaded


class _Lazy:
    """Stands for tensorflow (index 0) or keras (1): the first attribute read imports both."""

    def __init__(self, index):
        self._index = index

    def __getattr__(self, name):
        return getattr(load_tensorflow()[self._index], name)


tf, keras = _Lazy(0), _Lazy(1)


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2: TF's C++ start-up logging ignores TF_CPP_MIN_LOG_LEVEL
    until absl is initialised, and would bury our one-line errors under its notices."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    global _stderr
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    _stderr = saved
    try:
        yield
    finally:
        _stderr = 2
        os.dup2(saved, 2)
        os.close(saved)


_said_on_exit = None   # what exit_at_once says, if anything (exit_on_signals_while_loading)
_stderr = 2           # the real stderr, while quiet_stderr has silenced fd 2


_before_exit_at_once = []  # cleanups exit_at_once runs (outputs: claimed placeholders)


def before_exit_at_once(cleanup):
    """Have exit_at_once call cleanup() first: os._exit skips every finally."""
    _before_exit_at_once.append(cleanup)


def exit_at_once(signum, frame):
    for cleanup in _before_exit_at_once:
        with contextlib.suppress(Exception):
            cleanup()
    if _said_on_exit:
        name = "interrupted" if signum == signal.SIGINT else \
            f"interrupted by {signal.Signals(signum).name}"
        with contextlib.suppress(OSError):
            os.write(_stderr, f"{name} {_said_on_exit}\n".encode())
    os._exit(128 + signum)


def exit_on_signals_while_loading(say=None):
    """For a script's first lines: a signal while the libraries load has nothing to save,
    and an exception raised inside a C extension's import would print its own story. The
    process exits at once with 128 + the signal's number, saying `say` after the
    signal's name if given (e.g. 'while starting; nothing was written')."""
    global _said_on_exit
    _said_on_exit = say
    for signum in STOP_SIGNALS:
        signal.signal(signum, exit_at_once)


@contextlib.contextmanager
def handled_by(handler):
    """Ctrl-C, SIGTERM and SIGHUP go to handler in the block, their handlers before it
    back after; yields those ({signum: handler}), or None outside the main thread, where
    signals are not ours to handle."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield previous
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


def exit_on_signals():
    """While libraries load there is nothing to save, and an exception raised inside a C
    extension's import prints a page of its own: a signal exits at once, 128 + its number."""
    return handled_by(exit_at_once)


def out_of_memory_errors():
    """The exceptions that mean memory ran out: TensorFlow's too, once it is loaded."""
    if _loaded is None:
        return (MemoryError,)
    return (MemoryError, _loaded[0].errors.ResourceExhaustedError)


class FatalError(Exception):
    """A reason to stop that the user can act on (bad input, no weights, a loss that
    became NaN): reported as one line, exit status 2, no traceback."""


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite during optimisation."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM (kill, a job scheduler, a container stop) or SIGHUP (the terminal
    closed): the run saves as for Ctrl-C and exits with 128 + the signal's number."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum, frame):
    for other in STOP_SIGNALS:  # a second signal must not cut the saving short
        signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


def install_signal_handlers():
    """SIGINT, SIGTERM and SIGHUP raise Interrupted, caught where KeyboardInterrupt is."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _interrupt)


def interrupted_by(error):
    """(exit status, what to call it) for a KeyboardInterrupt: Ctrl-C's is 'interrupted'
    and 130, as ever; the others name their signal."""
    signum = getattr(error, "signum", signal.SIGINT)
    name = "interrupted" if signum == signal.SIGINT else \
        f"interrupted by {signal.Signals(signum).name}"
    return 128 + signum, name


@contextlib.contextmanager
def signals_deferred():
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block is done, then act on the first one
    as it would have been: a file being written is never left half-made by a signal
    arriving at the wrong moment (between creating a temporary file and the cleanup that
    would remove it, say)."""
    arrived = []
    try:
        with handled_by(lambda signum, frame: arrived.append(signum)) as previous:
            yield
    finally:
        if arrived:
            handler = previous[arrived[0]]
            if callable(handler):
                handler(arrived[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), arrived[0])


def signals_ignored():
    """Ctrl-C, SIGTERM and SIGHUP are ignored in the block: the last save of a run that
    is already stopping is not cut in half by an impatient second signal."""
    return handled_by(signal.SIG_IGN)


class StopRequest:
    """Turns Ctrl-C, SIGTERM and SIGHUP into a request that a loop honours between steps,
    so that what it saves is always whole; a second signal stops at once."""

    def __init__(self):
        self.signum = None
        self.previous = {}

    def __enter__(self):
        for signum in STOP_SIGNALS:
            self.previous[signum] = signal.signal(signum, self.request)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def request(self, signum, frame):
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum
        # on stdout, with the progress lines: stderr gets the one line of how it ended
        print(f"\n{signal.Signals(signum).name}: stopping after this step "
              "(again to stop now)", flush=True)


def note(message):
    print(f"note: {message}", file=sys.stderr)
