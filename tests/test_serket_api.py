"""Serket's constructor parameters, recognition-mode checks and the sparse MLDA, run
directly in this process (no Ray)."""

import numpy as np
import pytest
import torch
from scipy.special import psi
from torch import nn

import runtime as srk
from actors.gmm import GMM
from actors.mlda import MLDA
from actors.mm import MarkovModel
from actors.torch_vae import TorchVAE
from actors.vae import VAE
from runtime.module import UpdateContext, no_progress

CONTEXT = UpdateContext("test", 1, [], no_progress)


def test_serket_names_set_our_settings():
    serket = VAE(18, epoch=7, KL_param=0.5, RE="MSE", batch_size=None)
    assert (serket.itr, serket.alpha, serket.loss, serket.batch_size) == (7, 0.5, "mse", None)
    assert VAE(18, KLD_weight=0.3).alpha == 0.3
    assert VAE(18).itr == 200 and VAE(18).alpha == 1.0 and VAE(18).loss == "bce"
    # Both names with one value is one setting; a copy rebuilt from the parameters agrees.
    rebuilt = VAE(**serket.get_params())
    assert (rebuilt.itr, rebuilt.alpha, rebuilt.loss) == (7, 0.5, "mse")
    layers = VAE(4, hidden_encoder_dim=100, hidden_decoder_dim=60).build_networks(784)
    assert layers.encoder[0].weight.shape == (100, 784)
    assert layers.decoder[0].weight.shape == (60, 4)
    assert MarkovModel(num_samp=100).prior == pytest.approx(0.001)
    # Serket's device decides what the actor asks Ray for (default: a GPU if there is one).
    assert VAE(4, device="cpu")._handle.resources.num_gpus == 0
    assert VAE(4, device="cuda")._handle.resources.num_gpus == 1
    assert VAE(4)._handle.resources.num_gpus == "auto"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: VAE(18, itr=200, epoch=100), "itr=200, epoch=100 name one setting"),
        (lambda: VAE(18, KL_param=1, KLD_weight=2), "KL_param=1, KLD_weight=2 name one"),
        (lambda: VAE(18, loss="bce", RE="MSE"), "loss='bce', RE='mse' name one setting"),
        (lambda: VAE(18, RE="bce"), 'RE must be "BCE" or "MSE"'),
        (lambda: VAE(18, hidden=(64,), hidden_encoder_dim=100), "not both"),
        (lambda: VAE(18, device="gpu"), "device must be one of"),
        (lambda: GMM(10, mode="recg"), "mode must be 'learn' or 'recog'"),
        (lambda: MLDA(10, mode="recog"), "mode='recog' needs load_dir="),
        (lambda: MarkovModel(prior=1.0, num_samp=100), "give one of them"),
    ],
)
def test_conflicting_or_unknown_settings_name_the_module(build, message):
    with pytest.raises(srk.ModuleError, match=r"module\d{3}_\w+: .*" + message.replace("(", r"\(")):
        build()


def test_recognition_mode_follows_serket_mode_and_load_dir():
    assert GMM(3, load_dir="module001_gmm").recognizing  # Serket's code: load_dir alone
    assert GMM(3, mode="recog", load_dir="module001_gmm").recognizing
    assert not GMM(3, mode="learn", load_dir="module001_gmm").recognizing  # learns on
    assert not GMM(3).recognizing


class SerketStyleVAE(TorchVAE):
    """Serket's PyTorch VAE subclass: an encoder returning (mu, log_var) and a decoder
    ending in a sigmoid, both built from the observation's shape."""

    def build_encoder(self, input_dim, latent_dim):
        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(input_dim[0], 32)
                self.fc_mu = nn.Linear(32, latent_dim)
                self.fc_var = nn.Linear(32, latent_dim)

            def forward(self, x):
                h = torch.relu(self.fc(x))
                return self.fc_mu(h), self.fc_var(h)

        return Encoder()

    def build_decoder(self, input_dim, latent_dim):
        return nn.Sequential(
            nn.Linear(latent_dim, 32), nn.ReLU(), nn.Linear(32, input_dim[0]), nn.Sigmoid()
        )


def test_a_serket_style_subclass_trains_and_checks_its_input_dim(digits):
    vae = SerketStyleVAE(784, 4, epoch=20, batch_size=50)
    update = vae.learn([digits.images], None, CONTEXT)
    losses = update.files["loss.txt"]
    assert losses[-1] < 0.8 * losses[0]
    assert update.forward.shape == (200, 4)
    reconstructions = update.files["x_hat_learn.npy"]  # the decoder's probabilities
    assert reconstructions.min() >= 0 and reconstructions.max() <= 1
    assert "encoder.encoder.fc_mu.weight" in update.files["model.npz"]
    with pytest.raises(ValueError, match="input_dim is 784, but its input has 100 features"):
        vae.output_shape([(200, 100)])


def test_learned_states_that_do_not_fit_are_refused(digits):
    learned = VAE(4, itr=1, batch_size=100)
    learned.learn([digits.images], None, CONTEXT)
    state = VAE(4).learned_state(learned.weights())
    VAE(4).check_learned(state, [(200, 784)])
    wrong = r"100 features and latent_dim=4: decoder.2.bias is \(784,\) there, \(100,\) here"
    with pytest.raises(ValueError, match=wrong):
        VAE(4).check_learned(state, [(200, 100)])
    gmm = GMM(3, algorithm="em")
    gmm.learn([digits.images[:, :5]], None, CONTEXT)
    with pytest.raises(ValueError, match="3 classes of 5 dimensions; this GMM has K=4"):
        GMM(4).check_learned(gmm.state(), [(200, 5)])


def _dense_e_step(words, topics, gamma, alpha, bias, steps):
    """Reference: the same variational updates on dense (N, V) arrays, every element for
    `steps` steps."""
    exp_log_phi = [np.exp(psi(t) - psi(t.sum(axis=1, keepdims=True))) for t in topics]
    for _ in range(steps):
        theta = np.exp(psi(gamma) - psi(gamma.sum(axis=1, keepdims=True))) * bias
        ratios = [c / (theta @ p + 1e-100) for c, p in zip(words, exp_log_phi, strict=True)]
        gamma = alpha + theta * sum(r @ p.T for r, p in zip(ratios, exp_log_phi, strict=True))
    return gamma


def test_the_sparse_e_step_equals_dense_arithmetic_and_uses_the_message_from_above():
    rng = np.random.default_rng(0)
    counts = [rng.poisson(0.05, (40, 300)) * 3.0, rng.dirichlet(np.ones(4), 40)]
    counts[0][:, 0] += 1  # no empty element
    mlda = MLDA(4, weights=[50, 20], itr=1)
    mlda.topics_ = [rng.gamma(100.0, 0.01, (4, c.shape[1])) for c in counts]
    bias = rng.dirichlet(np.ones(4), 40)
    words = mlda._words(counts)
    gamma, _ = mlda._e_step(words, np.ones((40, 4)), bias)
    dense = [w.toarray() for w in words]
    assert dense[0].sum(axis=1) == pytest.approx(50) and dense[1].sum(axis=1) == pytest.approx(20)
    # One step at a time: a converged element stops, so compare a single step exactly.
    mlda_one = _dense_e_step(dense, mlda.topics_, np.ones((40, 4)), 1.0, bias, 1)
    import actors.mlda as module

    saved, module._E_STEPS = module._E_STEPS, 1
    try:
        one, _ = mlda._e_step(words, np.ones((40, 4)), bias)
    finally:
        module._E_STEPS = saved
    np.testing.assert_allclose(one, mlda_one, rtol=1e-10)
    # A message from above that is sure of class 2 for every element moves them there.
    sure = np.tile([0.01, 0.01, 0.97, 0.01], (40, 1))
    pulled, _ = mlda._e_step(words, np.ones((40, 4)), sure)
    assert (pulled.argmax(axis=1) == 2).mean() > (gamma.argmax(axis=1) == 2).mean()
    assert (pulled.argmax(axis=1) == 2).all()


def test_the_markov_models_message_takes_the_message_from_above():
    probabilities = np.eye(3)[np.tile([0, 1, 2], 20)] * 0.9 + 0.1 / 3
    mm = MarkovModel()
    free = mm.learn([probabilities], None, CONTEXT).forward
    above = np.tile([0.98, 0.01, 0.01], (60, 1))
    biased = mm.learn([probabilities], above, CONTEXT).forward
    np.testing.assert_allclose(biased.sum(axis=1), 1, atol=1e-5)
    assert (biased.argmax(axis=1) == 0).all() and not (free.argmax(axis=1) == 0).all()
