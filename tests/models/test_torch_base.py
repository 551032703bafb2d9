"""Building blocks of the torch base: FastDropout."""
import pytest
import torch

from mmbench.models import FastDropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_fast_dropout_drops_its_share_keeps_the_expectation_and_is_seeded(p):
    d = FastDropout(p)
    x = torch.ones(1000, 1000, requires_grad=True)
    torch.manual_seed(3)
    y = d(x)
    kept = (y != 0).double().mean().item()
    assert abs(kept - (1 - p)) < 0.003  # 1e6 Bernoulli draws: sd ~ 0.0005
    assert abs(y.double().mean().item() - 1.0) < 0.01  # inverted dropout: unbiased
    scale = 1 / (1 - (round(p * 65536)) / 65536)
    assert torch.equal(y.unique().sort().values, torch.tensor([0.0, scale]).to(y.dtype))
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).to(x.dtype) * torch.tensor(scale, dtype=x.dtype))  # the same mask
    torch.manual_seed(3)
    assert torch.equal(d(x), y)  # torch's generator decides the mask
    d.eval()
    assert d(x) is x


def test_fast_dropout_refuses_a_probability_outside_0_1():
    with pytest.raises(ValueError, match="dropout probability"):
        FastDropout(1.0)
