#!/usr/bin/env sh
# Trains the teachers that the tutorials load, with fixed seeds, and the
# student that 05_deploy exports (distilled from the Fashion-MNIST teacher).
# Run from the repository root: sh saved_models/train_teachers.sh [--overwrite]
set -e
kd-keras train-teacher --dataset digits --architecture mlp --epochs 30 \
    --seed 0 --output saved_models/digits_mlp_teacher.h5 "$@"
kd-keras train-teacher --dataset fashion_mnist --architecture cnn \
    --epochs 8 --seed 0 --output saved_models/fashion_mnist_cnn_teacher.h5 "$@"
kd-keras distill --teacher saved_models/fashion_mnist_cnn_teacher.h5 \
    --student cnn --dataset fashion_mnist --method kd --temperature 2 \
    --alpha 0.5 --epochs 10 --seed 0 \
    --output saved_models/fashion_mnist_cnn_student.h5 "$@"
