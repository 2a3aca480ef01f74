"""`kd-keras` run in the test's own process: a subprocess would pay
seconds of TensorFlow start-up per command."""

import contextlib
import io
import os
import subprocess

from kd_keras.app import cli


def kd_keras(*args, cwd):
    """`kd-keras args` run in folder `cwd`: its exit status and what it
    printed, as `subprocess.run` reports them."""
    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = cli.main([str(arg) for arg in args])
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(
        args, status, out.getvalue(), err.getvalue()
    )
