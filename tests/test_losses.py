"""The ring-chunked contrastive losses equal the dense losses, on one device and on eight."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clap_jax.train import losses
import multidevice

B, D = 16, 8


def dense_loss(audio, text, log_scale, bias, mix, kind):
  """The textbook losses on the whole (B, B) logit matrix."""
  audio, text = losses.l2_normalize(audio), losses.l2_normalize(text)
  logits = jnp.exp(log_scale) * audio @ text.T + bias
  targets = losses.pair_targets(mix)  # soft targets with mixup, else the identity
  if kind == "softmax":
    return -0.5 * (jnp.sum(targets * jax.nn.log_softmax(logits, 1)) +
                   jnp.sum(targets * jax.nn.log_softmax(logits, 0))) / audio.shape[0]
  return -jnp.sum(targets * jax.nn.log_sigmoid(logits) +
                  (1 - targets) * jax.nn.log_sigmoid(-logits)) / audio.shape[0]


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  audio = rng.normal(size=(B, D)).astype(np.float32)
  text = (audio + rng.normal(size=(B, D))).astype(np.float32)
  mix = np.repeat(rng.uniform(0.2, 1.0, B // 2), 2).astype(np.float32)
  return audio, text, mix


def _mesh1():
  return jax.make_mesh((1,), ("data",), (jax.sharding.AxisType.Auto,))


@pytest.mark.parametrize("kind", losses.KINDS)
@pytest.mark.parametrize("mixup", [False, True])
def test_one_device_equals_dense(kind, mixup):
  audio, text, mix = _inputs()
  mix = mix if mixup else None
  args = (audio, text, jnp.float32(2.5), jnp.float32(-1.5))
  ring = lambda *a: losses.contrastive_loss(*a, mix, kind=kind, mesh=_mesh1(), axes=("data",))[0]
  dense = lambda *a: dense_loss(*a, jnp.ones(B) if mix is None else mix, kind)
  value, grads = jax.value_and_grad(ring, argnums=(0, 1, 2, 3))(*args)
  want, want_grads = jax.value_and_grad(dense, argnums=(0, 1, 2, 3))(*args)
  np.testing.assert_allclose(value, want, rtol=1e-6)
  for g, w in zip(grads, want_grads):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_metrics():
  audio, _, _ = _inputs()
  # Text = audio: every true pair scores highest.
  _, metrics = losses.contrastive_loss(audio, audio, 3.0, kind="softmax", mesh=_mesh1(),
                                       axes=("data",))
  assert metrics["accuracy"] == 1.0
  np.testing.assert_allclose(metrics["temperature"], np.exp(-3.0), rtol=1e-6)


def test_pair_targets():
  targets = losses.pair_targets(jnp.array([0.7, 0.7, 1.0, 1.0]))
  np.testing.assert_allclose(targets, [[0.7, 0.3, 0, 0], [0.3, 0.7, 0, 0], [0, 0, 1, 0],
                                       [0, 0, 0, 1]], atol=1e-7)


def test_mix_pairs():
  waveforms = jnp.arange(12.0).reshape(4, 3)
  mixed, mix = losses.mix_pairs(jax.random.key(0), waveforms, 0.5)
  assert mix[0] == mix[1] and mix[2] == mix[3]
  np.testing.assert_allclose(mixed[0], mix[0] * waveforms[0] + (1 - mix[0]) * waveforms[1],
                             rtol=1e-6)
  with pytest.raises(ValueError, match="odd"):
    losses.mix_pairs(jax.random.key(0), waveforms[:3], 0.5)


def test_unknown_kind():
  audio, text, _ = _inputs()
  with pytest.raises(ValueError, match="unknown contrastive loss"):
    losses.contrastive_loss(audio, text, 1.0, kind="infonce", mesh=_mesh1(), axes=("data",))


def test_eight_devices_equal_dense():
  """2 x 4 mesh, the batch split over both axes: each device holds 2 rows and sees 2 x 2 blocks."""
  results = multidevice.run("""
    import json
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from clap_jax.train import losses
    from test_losses import _inputs, dense_loss, B
    mesh = jax.make_mesh((2, 4), ("data", "fsdp"), (jax.sharding.AxisType.Auto,) * 2)
    axes = ("data", "fsdp")
    audio, text, mix = _inputs()
    shard = lambda x: jax.device_put(x, NamedSharding(mesh, P(axes)))
    errors = {}
    for kind in losses.KINDS:
      ring = jax.jit(jax.value_and_grad(lambda a, t, s, b: losses.contrastive_loss(
          a, t, s, b, shard(mix), kind=kind, mesh=mesh, axes=axes)[0], argnums=(0, 1, 2, 3)))
      value, grads = ring(shard(audio), shard(text), jnp.float32(2.5), jnp.float32(-1.5))
      want, want_grads = jax.value_and_grad(lambda *a: dense_loss(*a, mix, kind),
                                            argnums=(0, 1, 2, 3))(audio, text, 2.5, -1.5)
      errors[kind] = [abs(float(value) - float(want)) / abs(float(want))] + [
          float(np.max(np.abs(np.asarray(g) - np.asarray(w)))) for g, w in zip(grads, want_grads)]
    print(json.dumps(errors))
  """, devices=8)
  for kind, (value_error, *grad_errors) in results.items():
    assert value_error < 1e-6, kind
    assert max(grad_errors) < 1e-5, (kind, grad_errors)
