"""Deprecated name of `kd_keras.app.cli`, kept for one release."""

from kd_keras._deprecated import moved

cli = moved(__name__, "kd_keras.app.cli")

if __name__ == "__main__":
    raise SystemExit(cli.main())
