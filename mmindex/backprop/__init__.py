"""The lecture's back-propagation engine in NumPy: modules, losses, SGD, recurrent nets, word2vec.

A readable teaching engine, checked against PyTorch autograd and finite differences (tests/backprop);
PyTorch stays the production path. See docs/backprop.md, "from the slides to the code".

>>> from mmindex.backprop import Sequential, Linear, ReLU, SoftmaxCrossEntropy, SGD, fit
>>> net = Sequential(Linear(784, 256), ReLU(), Linear(256, 10))
"""

from __future__ import annotations

from mmindex.backprop.gradcheck import GradcheckError, gradcheck
from mmindex.backprop.graph import Add, Concat, Graph, Sequential
from mmindex.backprop.losses import LOSSES, MSE, Loss, SigmoidCrossEntropy, SoftmaxCrossEntropy
from mmindex.backprop.modules import (
    MODULES,
    AvgPool2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    PReLU,
    ReLU,
    Sigmoid,
    Tanh,
)
from mmindex.backprop.optim import SGD, EpochStats, History, Penalty, evaluate, fit, step_lr
from mmindex.backprop.rnn import Elman, Jordan
from mmindex.backprop.word2vec import CBOW, SkipGram, Vocab

__all__ = [
    "LOSSES", "MODULES", "MSE", "SGD", "Add", "AvgPool2d", "CBOW", "Concat", "Conv2d", "Dropout", "Elman",
    "EpochStats", "Flatten", "GradcheckError", "Graph", "History", "Jordan", "Linear", "Loss", "MaxPool2d",
    "Module", "PReLU", "Penalty", "ReLU", "Sequential", "Sigmoid", "SigmoidCrossEntropy", "SkipGram",
    "SoftmaxCrossEntropy", "Tanh", "Vocab", "evaluate", "fit", "gradcheck", "step_lr",
]
