"""A built dataset in the formats other people's code loads: Parquet (pandas, pyarrow, Hugging Face
`datasets`), WebDataset tar shards (PyTorch), TFRecord (tf.data) and NSynth's layout, and the loaders
that stream a split from them (docs/dataset-formats.md)."""
