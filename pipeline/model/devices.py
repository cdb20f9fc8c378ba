"""Where training runs: the distribution strategy (one device, several local GPUs, or several
machines under TF_CONFIG), mixed precision, and the epochs of a multi-worker run."""

from __future__ import annotations

import os

import numpy as np

from pipeline.core.config import Config
from pipeline.model.networks import import_keras


def training_devices(cfg: Config):
    """(distribution strategy, whether mixed precision is on, GPUs seen).

    TF_CONFIG set (several machines, each running the same `pipeline train`):
    MultiWorkerMirroredStrategy; several local GPUs: MirroredStrategy; else the default.
    """
    keras = import_keras()  # first: it keeps TensorFlow's start-up lines off the terminal
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()  # first: it must precede other TF work
    gpus = tf.config.list_physical_devices("GPU")
    mixed = bool(gpus) and cfg.train.mixed_precision
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    if not os.environ.get("TF_CONFIG"):
        strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    return strategy, mixed, len(gpus)


def is_chief(strategy) -> bool:
    if not multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_id == 0)


def multi_worker(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def fit_multi_worker(network, strategy, dataset, plan: dict, first: int, callback) -> None:
    """The epochs of `fit`, by hand, under MultiWorkerMirroredStrategy: Keras 3's fit fails there
    (it averages its logged scalars along an axis they lack: keras-team/keras#20585). Each replica
    takes its slice of the global batch; Keras' loss divides a replica's mean by the number of
    replicas under tf.distribute, so the optimizer's all-reduced gradient sum is the global
    batch's mean gradient and the summed losses its mean loss, as in fit."""
    import tensorflow as tf

    loss_fn, optimizer = network.loss, network.optimizer

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, network(x, training=True))
            scaled = optimizer.scale_loss(loss)  # mixed precision's loss scale (identity otherwise)
        optimizer.apply_gradients(zip(tape.gradient(scaled, network.trainable_variables),
                                      network.trainable_variables))
        return loss

    @tf.function
    def step(iterator):
        return strategy.reduce("SUM", strategy.run(replica_step, args=next(iterator)), axis=None)

    batches = iter(strategy.experimental_distribute_dataset(dataset))
    network.stop_training = False
    callback.set_model(network)
    for epoch in range(first, plan["epochs"]):
        callback.on_epoch_begin(epoch)
        losses = [float(step(batches)) for _ in range(plan["steps"])]
        callback.on_epoch_end(epoch, {"loss": float(np.mean(losses))})
        if network.stop_training:
            break
