import math

import torch

from vae import VAE, Config


def test_architecture_is_the_seeds():
    model = VAE.from_config(Config())
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters() if name.endswith("weight")}
    assert shapes == {
        "enc.weight": (200, 784),
        "enc_mu.weight": (20, 200),
        "enc_logvar.weight": (20, 200),
        "dec.weight": (200, 20),
        "dec_out.weight": (784, 200),
    }
    expected = (784 * 200 + 200) + 2 * (200 * 20 + 20) + (20 * 200 + 200) + (200 * 784 + 784)
    assert sum(p.numel() for p in model.parameters()) == expected == 326_824


def test_shapes():
    model = VAE(hidden_dim=32, latent_dim=4)
    x = torch.rand(5, 784)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 4)
    logits, mu2, _ = model(x)
    assert logits.shape == (5, 784)
    torch.testing.assert_close(mu, mu2)
    probs = torch.sigmoid(model.decode(torch.zeros(3, 4)))
    assert probs.shape == (3, 784) and probs.min() >= 0 and probs.max() <= 1


def test_gradients_reach_mu_and_logvar_through_the_sample():
    mu = torch.zeros(4, 3, requires_grad=True)
    logvar = torch.zeros(4, 3, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    z = VAE().reparameterize(mu, logvar, g)
    z.pow(2).sum().backward()
    eps = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    # d/dmu (mu + sigma eps)^2 = 2 z ; d/dlogvar = 2 z * eps * sigma / 2
    torch.testing.assert_close(mu.grad, 2 * z.detach())
    torch.testing.assert_close(logvar.grad, z.detach() * eps)


def test_reparameterize_samples_the_right_gaussian():
    mu = torch.full((200_000, 1), 1.5)
    logvar = torch.full((200_000, 1), math.log(0.25))
    z = VAE().reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    assert abs(z.mean().item() - 1.5) < 0.01
    assert abs(z.std().item() - 0.5) < 0.01


def test_same_generator_seed_gives_same_sample():
    model = VAE(hidden_dim=8, latent_dim=2)
    x = torch.rand(3, 784)
    a = model(x, torch.Generator().manual_seed(7))[0]
    b = model(x, torch.Generator().manual_seed(7))[0]
    c = model(x, torch.Generator().manual_seed(8))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
