"""Audio-text data: sources -> TFRecord shards (writer) -> per-process numpy batches (reader).

The public reader API (what training and evaluation code against):
  train_batches(pattern_or_files, *, batch_size, clip_samples, seed, start_step=0, ...)
  eval_batches(pattern_or_files, *, batch_size, clip_samples, ...)
  to_global(batch, mesh_or_sharding)
  multitask_batches([TaskSource(name, pattern, num_labels, multi_label), ...], *, batch_size,
                    clip_samples, seed, start_step=0, sampling='proportional', ...)
Writing: `write_shards(sources.*(...), out_dir, WriterConfig(...))`, or launch/make_shards.py.
"""
from clap_jax.data import sources
from clap_jax.data.multitask import TaskSource, multitask_batches, sampling_probabilities
from clap_jax.data.reader import ShardSet, eval_batches, to_global, train_batches
from clap_jax.data.writer import WriterConfig, write_shards
