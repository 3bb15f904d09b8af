"""Serket's PyTorch VAE, `torch_vae.TorchVAE(input_dim, latent_dim, ...)`, for scripts
written against it: a subclass defines `build_encoder` and `build_decoder` (see
`actors.vae.VAE.build_networks`), and only the import line changes.
"""

from __future__ import annotations

from actors.vae import VAE


class TorchVAE(VAE):
    """The VAE with Serket's TorchVAE signature and defaults (5,000 epochs, the whole data
    set in each step, KLD_weight 1, RE="BCE").

    input_dim: the number of features, checked against the connected observation's.
    loss_step: accepted as Serket's signature has it; Serket records the loss of every
    epoch whatever its value, and so does this module (loss.txt).
    """

    def __init__(
        self,
        input_dim: int,
        latent_dim: int,
        lr: float = 1e-3,
        device: str | None = None,
        epoch: int = 5000,
        name: str | None = None,
        batch_size: int | None = None,
        KLD_weight: float = 1.0,  # Serket's name
        RE: str = "BCE",  # Serket's name
        load_dir: str | None = None,
        loss_step: int = 50,
        mode: str | None = None,
        seed: int = 0,
        shards: int = 1,
    ) -> None:
        super().__init__(
            latent_dim, lr=lr, device=device, epoch=epoch, name=name, batch_size=batch_size,
            KLD_weight=KLD_weight, RE=RE, load_dir=load_dir, mode=mode, seed=seed,
            shards=shards,
        )  # fmt: skip
        self.input_dim = input_dim
        self.loss_step = loss_step
        self.require_positive_integers(input_dim=input_dim)

    def output_shape(self, input_shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        shape = super().output_shape(input_shapes)
        if input_shapes[0][1] != self.input_dim:
            raise ValueError(
                f"input_dim is {self.input_dim}, but its input has {input_shapes[0][1]} features"
            )
        return shape
