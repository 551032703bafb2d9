"""Tensor fusion's post-fusion network against a hand computation."""
import torch
from mmbench_baselines.tensor_fusion import TensorFusion, post_fusion


def test_post_fusion_is_dropout_then_two_relu_layers_then_linear():
    torch.manual_seed(0)
    net = post_fusion(6, 5, 2, 3, dropout=0.0)
    first, second, out = [m for m in net if isinstance(m, torch.nn.Linear)]
    x = torch.randn(4, 6)
    expected = torch.relu(torch.relu(x @ first.weight.T + first.bias) @ second.weight.T + second.bias)
    assert torch.allclose(net(x), expected @ out.weight.T + out.bias, atol=1e-6)
    assert isinstance(net[0], torch.nn.Dropout)  # on the fused tensor, as in the released code
    assert TensorFusion.params_["hidden_layers"].default == 2  # the paper's two 128-unit layers
    assert sum(isinstance(m, torch.nn.Linear) for m in post_fusion(6, 5, 1, 3, 0.0)) == 2
