"""Privacy mode's clip and error feedback: what the clip cuts off a client's last pass goes back to
its memory (``PassOptions.keep_clipped``), so that memory + what the server decodes = gradient + the
old memory, as without a clip; with ``keep_clipped=False`` that part is lost."""

import pytest
import torch

from channels import AWGNChannel, block_clips, clip_blocks, clipped_off
from laser import LaserCompressor, PassOptions, transmit_round
from laser.baselines import RandomKCompressor


def _round(method, clip, keep, *, keep_unheard=False):
    torch.manual_seed(0)
    params = [torch.zeros(12, 9, dtype=torch.float64), torch.zeros(9, dtype=torch.float64)]
    server = method.make_server(params)
    client = method.make_client(params, 0)
    grads = [[torch.randn(12, 9, dtype=torch.float64), torch.randn(9, dtype=torch.float64)]]
    channel = AWGNChannel(noise_var=0.0, generator=torch.Generator().manual_seed(1))
    options = PassOptions(energy=10.0, clip=clip, keep_clipped=keep, keep_unheard=keep_unheard)
    out = transmit_round(channel, server, [client], grads, options)
    return grads[0], out.gradient, client


@pytest.mark.parametrize("clip", [0.05, 0.5, 100.0])
def test_laser_memory_plus_decoded_is_gradient_plus_old_memory(clip):
    grad, decoded, client = _round(LaserCompressor(rank=2), clip, True)
    # one client, noiseless: the server decodes Q P_clipped^T exactly; the memory holds G - Q P_clipped^T
    (memory,) = client.memory  # the compressed matrix's group (the bias is sent whole, no memory)
    torch.testing.assert_close(memory[0] + decoded[0], grad[0], rtol=0, atol=1e-12)


def test_without_keep_clipped_the_clipped_off_part_is_lost():
    grad, decoded, client = _round(LaserCompressor(rank=2), 0.05, False)
    (memory,) = client.memory
    lost = grad[0] - memory[0] - decoded[0]  # Q (P - P_clipped)^T, the part the clip cut off
    assert float(lost.norm()) > 0.1 * float(grad[0].norm())
    grad_kept, decoded_kept, client_kept = _round(LaserCompressor(rank=2), 0.05, True)
    torch.testing.assert_close(decoded_kept[0], decoded[0], rtol=0, atol=0)  # the same transmission
    torch.testing.assert_close(client_kept.memory[0][0] - client.memory[0][0], lost, rtol=0, atol=1e-12)


def test_a_sparse_method_with_error_feedback_keeps_it_too():
    method = RandomKCompressor(fraction=0.5, error_feedback=True)
    grad, decoded, client = _round(method, 0.05, True)
    residual = client._residual(0)  # noqa: SLF001 (the memory the next encode adds)
    # memory + the decoded part = the gradient, entry by entry (Random-K sends the kept entries scaled)
    torch.testing.assert_close(residual.reshape(grad[0].shape) + decoded[0], grad[0], rtol=0, atol=1e-12)


def test_clipped_off_is_the_complement_of_clip_blocks():
    blocks = [torch.tensor([3.0, 4.0]), torch.tensor([0.1, 0.0, 0.0])]
    clips = block_clips([2, 3], 1.0)
    (sent,) = clip_blocks([blocks], clips)
    off = clipped_off(blocks, clips)
    for u, c, o in zip(blocks, sent, off):
        torch.testing.assert_close(c + o, u)
    assert float(off[1].abs().sum()) == 0.0  # within its clip: nothing cut off
    assert float(sent[0].norm()) == pytest.approx(float(clips[0]), rel=1e-6)


def test_keep_clipped_is_checked():
    with pytest.raises(TypeError, match="keep_clipped"):
        PassOptions(energy=1.0, clip=1.0, keep_clipped="yes")


def test_a_method_that_takes_back_only_whole_messages_refuses_keep_clipped():
    from laser.adsgd import ADSGDCompressor

    with pytest.raises(ValueError, match="keep_clipped: ADSGDClient"):
        _round(ADSGDCompressor(fraction=0.5), 0.05, True)
    with pytest.raises(ValueError, match="keep_clipped needs a clip"):
        PassOptions(energy=1.0, keep_clipped=True)
