"""Reproductions of the write-ups the project grew out of (issue 16).

    reference_reproduction  the original Conv2D f0 regressor against its own claims
    raw_audio_classifier    NSynth-post Conv1D on raw samples vs a spectrogram model
    learned_spectrogram     one Dense layer learns the STFT (and a 128-point DFT)
    effect_emulation        a network learns sox's lowpass + overdrive from dry/wet pairs

The entry point is `pipeline.experiments.runner.run_experiments(settings, names, out_root,
data_root)`, with settings from `pipeline.experiments.settings.load_settings(path, overrides)`;
it writes out_root/NAME/ (metrics.json, PNG figures, section.md) and out_root/report.md.
`pipeline experiments [--config configs/experiments.toml] [--only NAME,...]` does the
same from the command line. Importing the package imports nothing else (TensorFlow loads only
when an experiment runs).
"""
