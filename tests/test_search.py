"""clap_jax.index.top_k and ClapEncoder.search against a brute-force ranking written out by hand,
on Clotho's captions (a random model: the index holds caption embeddings, not audio)."""
import csv
import os

import numpy as np
import pytest

from clap_jax import embed, encode, index, text, weights
from clap_jax.data import sources
from clap_jax.models import config as model_config


def _brute_force(queries, embeddings, k):
  """Per query, the rows by (-cosine, row), from float64 dot products one pair at a time."""
  out = []
  for q in queries.astype(np.float64):
    cosine = [float(q @ e / np.linalg.norm(q) / np.linalg.norm(e))
              for e in embeddings.astype(np.float64)]
    out.append(sorted(range(len(embeddings)), key=lambda i: (-cosine[i], i))[:k])
  return np.array(out)


@pytest.mark.parametrize("device", [False, True])
def test_top_k_is_the_brute_force_ranking_with_ties_in_row_order(device):
  rng = np.random.default_rng(0)
  embeddings = rng.normal(size=(40, 8)).astype(np.float32)
  embeddings[[7, 21, 33]] = embeddings[3]  # exact ties with row 3
  queries = np.concatenate([embeddings[3:4] * 5, rng.normal(size=(4, 8)).astype(np.float32)])
  scores, rows = index.top_k(queries, embeddings, k=6, device=device, chunk=9)  # 5 chunks, padded
  expected = _brute_force(queries, embeddings, 6)
  np.testing.assert_array_equal(rows, expected)
  np.testing.assert_array_equal(rows[0, :4], [3, 7, 21, 33])
  unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
  q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  np.testing.assert_allclose(scores, np.take_along_axis(q @ unit.T, rows, axis=1), atol=1e-6)
  # Every row: the padding of the last chunk (rows 40-44) must never be ranked.
  np.testing.assert_array_equal(index.top_k(queries, embeddings, k=40, device=device, chunk=9)[1],
                                _brute_force(queries, embeddings, 40))
  assert index.top_k(queries, embeddings[:4], k=10, device=device)[1].shape == (5, 4)


@pytest.fixture(scope="module")
def clap():
  config = model_config.tiny()
  return encode.ClapEncoder(config, weights.random_variables(config, seed=1),
                            text.for_model(config))


def _clotho(shared_data):
  with open(shared_data / "audio" / "clotho" / "captions.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  return {r["file_name"]: [r[f"caption_{i}"] for i in range(1, 6)] for r in rows}


def _write_index(directory, clap, ids, embeddings, part_size=3):
  directory.mkdir()
  index.write_json(directory / index.INFO_FILE, embed.index_info(clap))
  for start in range(0, len(ids), part_size):
    index.write_part(directory, f"part-{start:04d}", ids[start:start + part_size],
                     embeddings[start:start + part_size], [])


@pytest.mark.parametrize("device", [False, True])
def test_search_returns_each_caption_its_own_clip(clap, shared_data, tmp_path, device):
  """Each clip's index row is the text embedding of one of its captions plus noise; that caption
  must find it first, and every ranking is the brute-force one over the stored rows."""
  captions = _clotho(shared_data)
  clips = sorted(captions)
  assert len(clips) == 7
  query_texts = [captions[c][2] for c in clips]
  rng = np.random.default_rng(0)
  own = clap.text_embeddings(query_texts)
  others = clap.text_embeddings([t for c in clips for t in captions[c][:2]])
  # Noise well below the spread of the captions' embeddings: the row still points at its text.
  spread = np.linalg.norm(own - own.mean(axis=0), axis=1).min()
  rows = np.concatenate([own + 0.01 * spread * rng.normal(size=own.shape), others]).astype(np.float32)
  ids = clips + [f"{c}#{i}" for c in clips for i in range(2)]
  _write_index(tmp_path / "index", clap, ids, rows)
  found = clap.search(query_texts, tmp_path / "index", k=5, device=device)
  assert [hits[0][0] for hits in found] == clips
  expected = _brute_force(own, rows, 5)
  assert [[h[0] for h in hits] for hits in found] == [[ids[r] for r in row] for row in expected]
  assert all(hits[0][1] > hits[1][1] for hits in found)


def test_search_refuses_an_index_of_another_model(clap, tmp_path):
  other = encode.ClapEncoder(clap.config, {"params": {}, "batch_stats": {}}, clap.tokenizer)
  _write_index(tmp_path / "index", other, ["a"], np.ones((1, clap.config.embed_dim), np.float32))
  with pytest.raises(ValueError, match="another model"):
    clap.search(["a dog"], tmp_path / "index")


@pytest.mark.skipif(not os.environ.get("CLAP_JAX_WEIGHTS_2023"),
                    reason="set CLAP_JAX_WEIGHTS_2023 to msclap's CLAP_weights_2023.pth")
def test_real_weights_find_clotho_clips_by_their_captions(shared_data, tmp_path):
  clap = encode.load("2023", os.environ["CLAP_JAX_WEIGHTS_2023"])
  audio_dir = shared_data / "audio" / "clotho" / "audio"
  collection = embed.ListCollection(list(sources.clotho(
      shared_data / "audio" / "clotho" / "captions.csv", audio_dir)))
  embed.embed_collection(clap, collection, tmp_path / "index", batch_size=8, progress=False)
  captions = _clotho(shared_data)
  texts = [(clip, t) for clip, ts in captions.items() for t in ts]
  found = clap.search([t for _, t in texts], tmp_path / "index", k=3)
  top3 = np.mean([clip in [h[0] for h in hits] for (clip, _), hits in zip(texts, found)])
  assert top3 >= 0.6, top3
