"""Serket's own tutorial and example scripts, with only their import lines changed, and
the data files they read.

Texts from Serket's documentation (docs/tutorials/*.md, docs/getting_started.md) and
examples (examples/*/ *.py): the tutorials' `vae.VAE(18, itr=200, batch_size=500)`, the
examples' VAE subclasses with `build_encoder` / `build_decoder` defined in the script
(PyTorch style, built as `vae_model(18, ...)` on our VAE or `vae_model(784, 18, ...)` on
Serket's TorchVAE). `write_data` makes the files each reads: the tutorial digits, their
spoken counterparts (espeak-ng's recordings as HAC histograms, `launch.spoken_digits`),
HAC-like synthetic views for the multilayered MLDA (`launch.spoken_features`) and a
small synthetic set for the HMM. The test suite runs them on small data; `serket-ray
bench-serket` at Serket's sizes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from launch.data import tutorial_digits
from launch.spoken_digits import spoken_histograms, synthesise
from launch.spoken_features import hac_like_histograms

_PYTORCH_VAE = """
encoder_dim = 128
decoder_dim = 128

class vae_model({base}):
    def build_encoder(self, input_dim, latent_dim):
        class Encoder(nn.Module):
            def __init__(self):
                super(Encoder, self).__init__()
                self.fc = nn.Linear(input_dim[0], encoder_dim)
                self.fc_mu = nn.Linear(encoder_dim, latent_dim)
                self.fc_var = nn.Linear(encoder_dim, latent_dim)

            def forward(self, x):
                h = torch.relu(self.fc(x))
                mu = self.fc_mu(h)
                log_var = self.fc_var(h)
                return mu, log_var
        return Encoder()

    def build_decoder(self, input_dim, latent_dim):
        model = nn.Sequential(
            nn.Linear( latent_dim, decoder_dim ),
            nn.ReLU(),
            nn.Linear( decoder_dim, input_dim[0] ),
            nn.Sigmoid()
        )
        return model
"""

SCRIPTS: dict[str, str] = {
    # docs/tutorials/vae-gmm.md: the images alone, the baseline of the multimodal ones
    "vae_gmm": """
import runtime as srk
from actors import vae
from actors import gmm
import numpy as np

obs = srk.Observation( np.loadtxt( "data.txt" ) )
data_category = np.loadtxt( "category.txt" )

vae1 = vae.VAE( 18, itr=200, batch_size=500 )
gmm1 = gmm.GMM( 10, category=data_category )

vae1.connect( obs )
gmm1.connect( vae1 )

for i in range(5):
    vae1.update()
    gmm1.update()
""",
    # examples/VAE+GMM+MM, with Serket's PyTorch VAE (examples/VAE+GMM+NN_pytorch.py's)
    "vae_gmm_mm": """
import runtime as srk
from actors import torch_vae
from actors import gmm
from actors import mm
import numpy as np
import torch
import torch.nn as nn
"""
    + _PYTORCH_VAE.format(base="torch_vae.TorchVAE")
    + """
def main():
    obs = srk.Observation( np.loadtxt("data.txt") )
    data_category = np.loadtxt( "category.txt" )

    vae1 = vae_model( 784, 18, epoch=200, batch_size=500 )
    gmm1 = gmm.GMM( 10, category=data_category )
    mm1 = mm.MarkovModel()

    vae1.connect( obs )
    gmm1.connect( vae1 )
    mm1.connect( gmm1 )

    for i in range(5):
        print( i )
        vae1.update()
        gmm1.update()
        mm1.update()

if __name__=="__main__":
    main()
""",
    # docs/tutorials/vae-gmm-mlda.md
    "vae_gmm_mlda": """
import runtime as srk
from actors import vae
from actors import gmm
from actors import mlda
import numpy as np

obs1 = srk.Observation( np.loadtxt( "data1.txt" ) )  # image data
obs2 = srk.Observation( np.loadtxt( "data2.txt" ) )  # speech data
data_category = np.loadtxt( "category.txt" )

vae1 = vae.VAE( 18, itr=200, batch_size=500 )
gmm1 = gmm.GMM( 10, category=data_category )
mlda1 = mlda.MLDA( 10, [200,200], category=data_category )

vae1.connect( obs1 )  # connect obs1 to vae1
gmm1.connect( vae1 )  # connect vae1 to gmm1
mlda1.connect( obs2, gmm1 )  # connect obs2 and gmm1 to mlda1

for i in range(5):
    vae1.update()  # train vae1
    gmm1.update()  # train gmm1
    mlda1.update()  # train mlda1
""",
    # examples/VAE+GMM+MLDA+MM, its VAE subclass in PyTorch style on our VAE
    "vae_gmm_mlda_mm": """
import runtime as srk
from actors import vae
from actors import gmm
from actors import mlda
from actors import mm
import numpy as np
import torch
import torch.nn as nn
"""
    + _PYTORCH_VAE.format(base="vae.VAE")
    + """
def main():
    obs1 = srk.Observation( np.loadtxt("data1.txt") )
    obs2 = srk.Observation( np.loadtxt("data2.txt") )
    data_category = np.loadtxt( "category.txt" )

    vae1 = vae_model( 18, epoch=200, batch_size=500 )
    gmm1 = gmm.GMM( 10, category=data_category )
    mlda1 = mlda.MLDA( 10, [200,200], category=data_category )
    mm1 = mm.MarkovModel()

    vae1.connect( obs1 )
    gmm1.connect( vae1 )
    mlda1.connect( obs2, gmm1 )
    mm1.connect( mlda1 )

    for i in range(5):
        print( i )
        vae1.update()
        gmm1.update()
        mlda1.update()
        mm1.update()

if __name__=="__main__":
    main()
""",
    # examples/HMM/hmm.py
    "hmm": """
from actors import gmm
from actors import mm
import runtime as srk
import numpy as np

def main():
    obs = srk.Observation( np.loadtxt("data.txt") )
    correct_classes = np.loadtxt( "correct.txt" )

    # GMM alone
    g = gmm.GMM( 4, category=correct_classes )
    g.connect( obs )
    g.update()

    # GMM and Markov model together
    g = gmm.GMM( 4, category=correct_classes )
    m = mm.MarkovModel()

    g.connect( obs )
    m.connect( g )

    for itr in range(5):
        g.update()
        m.update()

if __name__=="__main__":
    main()
""",
    # examples/mMLDA/mMLDA.py
    "mmlda": """
from actors import mlda
import runtime as srk
import numpy as np


def main():
    obs1 = srk.Observation( np.loadtxt("dsift.txt") )       # vision
    obs2 = srk.Observation( np.loadtxt("mfcc.txt") )        # hearing
    obs3 = srk.Observation( np.loadtxt("tactile.txt") )     # touch
    obs4 = srk.Observation( np.loadtxt("angle.txt") )       # joint angles

    object_category = np.loadtxt( "object_category.txt" )
    motion_category = np.loadtxt( "motion_category.txt" )

    mlda1 = mlda.MLDA(10, [200,200,200], category=object_category)
    mlda2 = mlda.MLDA(10, [200], category=motion_category)
    mlda3 = mlda.MLDA(10, [100,100])

    mlda1.connect( obs1, obs2, obs3 )
    mlda2.connect( obs4 )
    mlda3.connect( mlda1, mlda2 )

    for it in range(5):
        print( it )
        mlda1.update()
        mlda2.update()
        mlda3.update()

if __name__=="__main__":
    main()
""",
    # docs/getting_started.md
    "getting_started": """
import runtime as srk
from actors import mlda

data = [
    [10, 2, 1],
    [8, 1, 1],
    [2, 7, 0],
    [1, 11, 2],
    [1, 1, 8],
    [2, 1, 1]
]
data_category = [0, 0, 1, 1, 2, 2]

obs = srk.Observation( data )
mlda1 = mlda.MLDA( 3 , category=data_category )

mlda1.connect( obs )
mlda1.update()
""",
    # docs/modules/hac.md: nine recordings, three spoken digits (espeak-ng's, made here)
    "hac_lda": """
from actors import hac
from actors import mlda

wavs = ["./data00.wav", "./data01.wav", "./data02.wav",
            "./data03.wav", "./data04.wav", "./data05.wav",
            "./data06.wav", "./data07.wav", "./data08.wav"]

obs = hac.HACFeatureExtractor( wavs, [10,10,10], lags=[5] )  # convert wav data into hac features
mlda1 = mlda.MLDA( 3, [100], category=[0,0,0,1,1,1,2,2,2] )  # classify into three classes

mlda1.connect( obs )  # connect obs to mlda1

mlda1.update()  # train mlda1
""",
    # examples/VAE+GMM+NN/VAE+GMM+NN_pytorch.py (its data files in the working folder)
    "vae_gmm_nn": """
import runtime as srk
from actors import torch_vae
from actors import torch_nn
from actors import gmm
import numpy as np
import torch
import torch.nn as nn
"""
    + _PYTORCH_VAE.format(base="torch_vae.TorchVAE")
    + """
class NN_model(torch_nn.TorchNN):
    def build_model( self, input_dim, output_dim ):
        h_dim = 64

        model = nn.Sequential(
            nn.Linear( input_dim, h_dim ),
            nn.ReLU(),
            nn.Linear( h_dim, output_dim ),
            nn.Sigmoid()
        )
        return model


def main():
    obs1 = srk.Observation( np.loadtxt("data1.txt") )
    obs2 = srk.Observation( np.loadtxt("data2.txt") )
    category = np.loadtxt("category.txt")

    vae1 = vae_model(784, 10, device="cpu", epoch=200, batch_size=500)
    gmm1 = gmm.GMM(10, category=category)
    nn1 = NN_model(itr1=500, itr2=2000, batch_size1=500, batch_size2=500)

    vae1.connect( obs1 )
    gmm1.connect( vae1 )
    nn1.connect( gmm1, obs2 )

    for i in range(10):
        print( i )
        vae1.update()
        gmm1.update()
        nn1.update()

if __name__=="__main__":
    main()
""",
}


def script_text(name: str) -> str:
    return textwrap.dedent(SCRIPTS[name]).lstrip()


def _save(folder: Path, name: str, values: np.ndarray) -> None:
    integers = np.array_equal(values, np.round(values))
    np.savetxt(folder / name, values, fmt="%d" if integers else "%.4f")


def write_data(name: str, folder: Path, per_class: int = 300, seed: int = 0) -> None:
    """The files script `name` reads, in `folder`: the tutorial's digits (`per_class` of
    each digit, ordered 0, 1, ..., 9, 0, ...), the same digits spoken (espeak-ng, as HAC
    histograms), recordings, or synthetic sets of as many elements."""
    folder.mkdir(parents=True, exist_ok=True)
    digits = tutorial_digits(per_class)[0]
    if name in ("vae_gmm", "vae_gmm_mm"):
        _save(folder, "data.txt", digits.images)
        _save(folder, "category.txt", digits.labels)
    elif name in ("vae_gmm_mlda", "vae_gmm_mlda_mm", "vae_gmm_nn"):
        _save(folder, "data1.txt", digits.images)
        _save(folder, "data2.txt", spoken_histograms(digits.labels, folder / "speech", seed=seed))
        _save(folder, "category.txt", digits.labels)
    elif name == "hac_lda":
        names = [f"data{i:02d}.wav" for i in range(9)]
        # One speaker's takes, as Serket's recordings are (launch.bench_modules)
        synthesise(folder, [0, 0, 0, 1, 1, 1, 2, 2, 2], seed, names=names, voice=("en-us", "m3"))
    elif name == "hmm":
        points, states = _markov_points(4 * per_class, seed)
        _save(folder, "data.txt", points)
        _save(folder, "correct.txt", states)
    elif name == "mmlda":
        rng = np.random.default_rng(seed)
        objects = np.tile(np.arange(10), per_class)
        motions = rng.permutation(objects)
        for index, (file, bins) in enumerate(
            (("dsift.txt", 500), ("mfcc.txt", 300), ("tactile.txt", 150))
        ):  # each sense: a noisy view of the object
            views = hac_like_histograms(objects, seed + index, bins, background=0.8)
            _save(folder, file, views)
        _save(folder, "angle.txt", hac_like_histograms(motions, seed + 3, 150, background=0.6))
        _save(folder, "object_category.txt", objects)
        _save(folder, "motion_category.txt", motions)


def _markov_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """2-D points from 4 overlapping Gaussians visited by a Markov chain that mostly
    moves 0 -> 1 -> 2 -> 3 -> 0: the transitions tell what the points alone blur."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]])
    states = np.zeros(n, dtype=np.int64)
    for t in range(1, n):
        states[t] = (states[t - 1] + 1) % 4 if rng.random() < 0.9 else rng.integers(4)
    return centres[states] + 0.8 * rng.standard_normal((n, 2)), states
