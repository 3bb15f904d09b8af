"""The VAE module and its loss terms, run directly (no Ray)."""

import numpy as np
import pytest
import torch

from actors.images import deskew, image_jitter
from actors.vae import VAE
from actors.vae_net import kl_to_prior
from runtime import ModuleError
from runtime.module import UpdateContext

JITTER = "actors.images:image_jitter"
DESKEW = "actors.images:deskew"


class _Counting:
    def __init__(self):
        self.count = 0

    def update(self, n=1):
        self.count += n

    def close(self):
        pass


def context(round_=1, bars=None):
    def progress(total, description):
        bar = _Counting()
        if bars is not None:
            bars.append(bar)
        return bar

    return UpdateContext("module001_vae", round_, [], progress)


def test_kl_is_zero_at_the_prior_and_grows_with_the_distance_to_its_mean():
    mean = torch.tensor([[1.0, 2.0]])
    zero_logvar = torch.zeros(1, 2)
    assert kl_to_prior(mean, zero_logvar, mean).item() == pytest.approx(0.0)
    # With unit variance the KL is half the squared distance to the prior mean.
    assert kl_to_prior(mean, zero_logvar, torch.zeros(1, 2)).item() == pytest.approx(2.5)


def test_loss_goes_down_and_files_have_the_right_shapes(digits):
    bars = []
    vae = VAE(4, itr=15, batch_size=50, hidden=(32,))
    update = vae.learn([digits.images], None, context(bars=bars))
    losses = np.asarray(update.files["loss.txt"])
    assert losses.shape == (15,)
    assert losses[-1] < 0.8 * losses[0]
    assert update.forward.shape == (200, 4)
    assert update.files["x_hat_learn.npy"].shape == (200, 784)
    assert set(update.files["model.npz"]) >= {"encoder.0.weight", "decoder.2.bias"}
    assert bars[0].count == 15  # one progress step per epoch


def test_the_prior_mean_from_above_pulls_the_latent_variables(digits):
    target = np.full((200, 4), 3.0, dtype=np.float32)
    free = VAE(4, itr=30, batch_size=50, hidden=(32,), seed=1)
    pulled = VAE(4, itr=30, batch_size=50, hidden=(32,), seed=1)
    z_free = free.learn([digits.images], None, context()).forward
    z_pulled = pulled.learn([digits.images], target, context()).forward
    assert abs(z_free.mean()) < 1.0  # N(0, I) prior: centred
    assert z_pulled.mean() > 2.0  # N(3, I) prior: pulled towards 3


def test_weights_and_optimizer_carry_over_between_rounds(digits):
    vae = VAE(4, itr=3, batch_size=50, hidden=(32,))
    vae.learn([digits.images], None, context(1))
    network, optimizer = vae.net_, vae.optimizer_
    second = vae.learn([digits.images], None, context(2))
    assert vae.net_ is network and vae.optimizer_ is optimizer
    first_loss_round_2 = second.files["loss.txt"][0]
    assert (
        first_loss_round_2
        < VAE(4, itr=1, batch_size=50, hidden=(32,))
        .learn([digits.images], None, context())
        .files["loss.txt"][0]
    )


def test_bce_needs_data_in_unit_range(digits):
    with pytest.raises(ValueError, match=r"BCE reconstruction needs observations in \[0, 1\]"):
        VAE(4, itr=1).learn([digits.images * 255], None, context())
    VAE(4, itr=1, loss="mse").learn([digits.images * 255], None, context())


def test_priors_of_the_wrong_shape_or_variance_are_refused(digits):
    with pytest.raises(ValueError, match=r"class means \(200, 4\) or means and variances"):
        VAE(4, itr=1).learn([digits.images], np.zeros((200, 3), np.float32), context())
    with pytest.raises(ValueError, match="class variances from above must be positive"):
        VAE(4, itr=1).learn([digits.images], np.zeros((200, 8), np.float32), context())


def test_kl_to_a_class_gaussian():
    """With unit variances it is the tutorial's KL; otherwise the closed form by hand:
    KL(N(0, 1) || N(0, 2)) = (log 2 + 1/2 - 1) / 2 per dimension."""
    mean, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.2, -0.3]])
    prior_mean = torch.tensor([[1.0, 0.0]])
    unit = kl_to_prior(mean, logvar, prior_mean)
    assert kl_to_prior(mean, logvar, torch.cat([prior_mean, torch.ones(1, 2)], 1)).item() == (
        pytest.approx(unit.item())
    )
    zero = torch.zeros(1, 2)
    wide = kl_to_prior(zero, zero, torch.cat([zero, torch.full((1, 2), 2.0)], 1))
    assert wide.item() == pytest.approx(2 * 0.5 * (np.log(2) + 0.5 - 1))


def test_user_networks_by_import_path(digits):
    vae = VAE(
        3, itr=2, batch_size=100, encoder="tests.networks:encoder", decoder="tests.networks:decoder"
    )
    update = vae.learn([digits.images], None, context())
    assert update.forward.shape == (200, 3)
    assert "encoder.1.weight" in update.files["model.npz"]  # the user's layer names


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latent_dim": 0}, "latent_dim must be a positive integer"),
        ({"latent_dim": 2, "batch_size": 0}, "batch_size must be a positive integer"),
        ({"latent_dim": 2, "loss": "xent"}, "loss must be one of"),
        ({"latent_dim": 2, "alpha": -1}, "alpha"),
        ({"latent_dim": 2, "augment_copies": 0}, "augment_copies must be a positive integer"),
    ],
)
def test_bad_parameters_name_the_module(kwargs, message):
    with pytest.raises(ModuleError, match=message) as caught:
        VAE(**kwargs)
    assert "_vae" in caught.value.module


def test_image_jitter_moves_each_image_its_own_way_and_keeps_its_ink(digits):
    images = torch.tensor(digits.images[:50])
    jittered = image_jitter(images, torch.Generator().manual_seed(0))
    again = image_jitter(images, torch.Generator().manual_seed(0))
    assert jittered.shape == images.shape
    assert torch.equal(jittered, again)  # reproducible from the generator
    moved = (jittered - images).abs().sum(dim=1)
    assert (moved > 1.0).all() and len(set(moved.tolist())) == 50
    # Small rotations, scalings and shifts keep a digit's ink within about 25%.
    ink = jittered.sum(dim=1) / images.sum(dim=1)
    assert ((ink > 0.75) & (ink < 1.25)).all()
    with pytest.raises(ValueError, match="square images"):
        image_jitter(torch.zeros(2, 10), torch.Generator())


def _slant_and_centre(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: the regression of x on y over the ink, and the centre of ink (y, x)."""
    ink = images.reshape(-1, 28, 28)
    ys, xs = np.mgrid[:28, :28]
    total = ink.sum(axis=(1, 2))
    cy = (ink * ys).sum(axis=(1, 2)) / total
    cx = (ink * xs).sum(axis=(1, 2)) / total
    dy, dx = ys - cy[:, None, None], xs - cx[:, None, None]
    slant = (ink * dx * dy).sum(axis=(1, 2)) / (ink * dy * dy).sum(axis=(1, 2))
    return slant, cy, cx


def test_deskew_straightens_slanted_strokes_and_centres_the_ink():
    bar = np.zeros((28, 28), dtype=np.float32)
    for y in range(4, 24):
        bar[y, 4 + y // 2] = 1.0  # a stroke leaning right, left of centre
    slant, cy, cx = _slant_and_centre(bar.ravel()[None])
    assert slant[0] > 0.4 and abs(cx[0] - 13.5) >= 3

    straight = deskew(torch.from_numpy(bar.reshape(1, -1))).numpy()
    slant, cy, cx = _slant_and_centre(straight)
    assert abs(slant[0]) < 0.05
    assert abs(cy[0] - 13.5) < 0.2 and abs(cx[0] - 13.5) < 0.2
    assert straight.sum() == pytest.approx(bar.sum(), rel=0.05)  # the ink is kept
    assert deskew(torch.zeros(1, 784)).abs().sum() == 0  # a blank image stays blank
    with pytest.raises(ValueError, match="deskew needs square images, got 10 features"):
        deskew(torch.zeros(2, 10))


def test_deskew_matches_scipy_on_real_digits(digits):
    from scipy import ndimage

    def reference(image: np.ndarray) -> np.ndarray:
        slant, cy, cx = _slant_and_centre(image[None])
        shear = np.array([[1.0, 0.0], [slant[0], 1.0]])  # (row, column) = (y, x)
        centre_of_ink = np.array([cy[0], cx[0]])
        offset = centre_of_ink - shear @ np.array([13.5, 13.5])
        return ndimage.affine_transform(image.reshape(28, 28), shear, offset=offset, order=1)

    images = digits.images[:100]
    ours = deskew(torch.from_numpy(images)).numpy().reshape(-1, 28, 28)
    theirs = np.stack([reference(image) for image in images])
    assert np.abs(ours - theirs).mean() < 1e-4
    assert np.abs(_slant_and_centre(ours.reshape(100, -1))[0]).max() < 0.05


def test_preprocessing_applies_to_learning_and_recognition_alike(digits):
    raw = VAE(4, itr=3, batch_size=50, hidden=(32,))
    deskewing = VAE(4, itr=3, batch_size=50, hidden=(32,), preprocess=DESKEW)
    raw_update = raw.learn([digits.images], None, context())
    update = deskewing.learn([digits.images], None, context())
    assert not np.allclose(update.forward, raw_update.forward)
    # Recognition of the same raw digits deskews them too, so it gives the same z.
    again = deskewing.recognize([digits.images], None, context()).forward
    np.testing.assert_allclose(again, update.forward, atol=1e-6)
    # The reconstructions are of the deskewed digits.
    deskewed = deskew(torch.from_numpy(digits.images)).numpy()
    x_hat = update.files["x_hat_learn.npy"]
    assert np.abs(x_hat - deskewed).mean() < np.abs(x_hat - digits.images).mean()


PREPROCESSED: list[int] = []  # rows of each call of `counted_deskew`


def counted_deskew(x):
    PREPROCESSED.append(len(x))
    return deskew(x)


def test_learning_preprocesses_its_data_once_while_the_data_stays_the_same(digits):
    PREPROCESSED.clear()
    vae = VAE(4, itr=2, batch_size=50, hidden=(32,), preprocess="tests.test_vae:counted_deskew")
    images = digits.images[:200]
    first = vae.learn([images], None, context())
    # A copy, as an actor decodes each round's message into a new array: same content.
    vae.learn([images.copy()], first.forward, context(2))
    assert PREPROCESSED == [200]
    changed = images.copy()
    changed[0, 0] += 0.5
    vae.learn([changed], first.forward, context(3))
    assert PREPROCESSED == [200, 200]
    vae.recognize([images[:30]], None, context())  # novel data: preprocessed, not kept
    vae.learn([changed], first.forward, context(4))
    assert PREPROCESSED == [200, 200, 30]


def test_augmented_training_reconstructs_the_clean_digits(digits):
    plain = VAE(4, itr=15, batch_size=50, hidden=(32,))
    jittered = VAE(4, itr=15, batch_size=50, hidden=(32,), augment=JITTER, augment_copies=2)
    plain_update = plain.learn([digits.images], None, context())
    update = jittered.learn([digits.images], None, context())
    losses = np.asarray(update.files["loss.txt"])
    assert losses[-1] < 0.8 * losses[0]
    # The encoder saw other inputs, so it learned other weights and other z.
    assert not np.allclose(update.forward, plain_update.forward)
    # Encoding (and recognition) never jitters: the same digits give the same z.
    again = jittered.recognize([digits.images], None, context()).forward
    np.testing.assert_array_equal(again, update.forward)


class _KnownCounts:
    """A collective standing in for two shards of 151 and 150 elements."""

    def allreduce(self, arrays):
        return {"counts": np.array([151.0, 150.0])}


@pytest.mark.parametrize("index, own", [(0, 151), (1, 150)])
def test_sharded_batches_take_the_single_actors_steps_and_global_batch_means(index, own):
    """Each shard splits its elements into ceil(301 / 50) = 7 steps; the divisors make
    DDP's average over 2 shards of (summed loss / divisor) the mean over the step's
    global batch."""
    from actors.vae import _Batches
    from runtime.module import Shard

    start = 0 if index == 0 else 151
    shard = Shard(index, 2, start, start + own, 301)
    ctx = UpdateContext("module001_vae", 1, [], lambda *_: _Counting(), shard=shard,
                        collective=_KnownCounts())  # fmt: skip
    batches = _Batches.of(own, 50, ctx).split(torch.randperm(own))
    assert len(batches) == 7
    assert sorted(torch.cat([rows for rows, _ in batches]).tolist()) == list(range(own))
    first_step = 151 // 7 + 1 + 150 // 7 + 1  # both shards' first batch: 22 + 22 rows
    assert batches[0][1] == first_step / 2
    assert sum(2 * divisor for _, divisor in batches) == 301


def test_unsharded_batches_are_batch_size_rows_divided_by_their_count():
    from actors.vae import _Batches

    batches = _Batches.of(120, 50, context()).split(torch.arange(120))
    assert [(len(rows), divisor) for rows, divisor in batches] == [(50, 50), (50, 50), (20, 20)]
