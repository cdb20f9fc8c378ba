"""A progress bar over each training epoch's steps (tqdm on stderr, on a terminal or when asked:
pipeline.core.progress), with the running loss; cleared when the epoch ends, so that the epoch's
one log line (training.format_epoch) stays the record."""

from __future__ import annotations

from pipeline.core import progress


def epoch_bar(label: str, plan: dict):
    """A Keras callback showing `[label] epoch E/N` over plan["steps"] steps."""
    import keras

    class EpochBar(keras.callbacks.Callback):
        bar = None

        def on_epoch_begin(self, epoch, logs=None):
            desc = f"[{label}] epoch {epoch + 1}/{plan['epochs']}"
            self.bar = progress.bar(total=plan["steps"], unit="step", desc=desc, leave=False)

        def on_train_batch_end(self, batch, logs=None):
            if self.bar is not None:
                self.bar.update(1)
                if logs and "loss" in logs and batch % 20 == 0:
                    self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}", refresh=False)

        def on_epoch_end(self, epoch, logs=None):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return EpochBar()
