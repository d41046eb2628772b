"""The classifier: network (model), inputs (dataset, augment, mixing), loss and scores (losses,
metrics), folds, the run (optim, history, distributed, train), and what uses a run (evaluate, tune,
predict, figures)."""
