"""Quiet for the calls that print what nobody asked for.

TensorFlow writes to the process's file descriptors from C++ (TFLite's
"Created TensorFlow Lite XNNPACK delegate", the converter's
"fully_quantize: 0, ...", the CUDA stub's "Could not find cuda drivers"),
Keras' export prints "Saved artifact at ..." with its endpoints, and absl
logs "Assets written to". `silenced` sends all of it to /dev/null for the
length of one call and puts everything back after: nothing of the
process's logging is changed beyond the call. Loads no TensorFlow.

`SHOW_TENSORFLOW = True` lets it all through (`kd-keras --verbose` sets
it).
"""

import contextlib
import io
import logging
import os
import sys

# Whether `silenced` lets TensorFlow's output through.
SHOW_TENSORFLOW = False


@contextlib.contextmanager
def silenced(streams=(1, 2)):
    """Silences the output streams for the duration of the block.

    The file descriptors `streams` (1: stdout, 2: stderr), the matching
    `sys` streams and the logs of absl and TensorFlow (below errors) are
    silenced, unless `SHOW_TENSORFLOW`.

    Args:
        streams: The file descriptors to silence. Defaults to `(1, 2)`.

    Example:

    ```python
    with kd_keras.quiet.silenced():
        flatbuffer = converter.convert()
    ```
    """
    if SHOW_TENSORFLOW:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = {fd: os.dup(fd) for fd in streams}
    # Their handlers hold the streams they started with: not redirected.
    loggers = [logging.getLogger(name) for name in ("absl", "tensorflow")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    python_streams = {1: "stdout", 2: "stderr"}
    try:
        with open(os.devnull, "w") as devnull, contextlib.ExitStack() as stack:
            for fd in streams:
                os.dup2(devnull.fileno(), fd)
                stack.enter_context(
                    getattr(contextlib, f"redirect_{python_streams[fd]}")(
                        io.StringIO()
                    )
                )
            yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


__all__ = ["SHOW_TENSORFLOW", "silenced"]
