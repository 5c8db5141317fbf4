"""Unit tests of the PMHM regions, loss, annealing, feature perturbation and head freezing."""
import pytest
import torch

from actiseg_ros.training import losses, pmhm_loss

SIZE, LOW, HIGH = 24, 7, 17  # a 10x10 square [7, 17) in a 24x24 frame


def _square_distance():
    """(1, 24, 24) signed distance in pixels to the square's boundary: > 0 inside, < 0 outside."""
    coords = torch.arange(SIZE, dtype=torch.float32) + 0.5
    inside_y = torch.minimum(coords - LOW, HIGH - coords)  # > 0 inside the band of rows
    inside_x = torch.minimum(coords - LOW, HIGH - coords)
    return torch.minimum(inside_y[:, None], inside_x[None, :])[None]


def _square_logits():
    return _square_distance().clamp(-6, 6)  # soft near the border, confident far from it


def test_per_sample_quantile_matches_torch():
    torch.manual_seed(0)
    values = torch.rand(3, 7, 9)
    for q in (0.0, 0.2, 0.6, 0.85, 1.0):
        expected = torch.quantile(values.flatten(1), q, dim=1)
        assert torch.allclose(pmhm_loss.per_sample_quantile(values, q), expected, atol=1e-6)
    with pytest.raises(ValueError, match="quantile"):
        pmhm_loss.per_sample_quantile(values, 1.5)


def test_uncertain_region_concentrates_on_the_border_band():
    logits = _square_logits()
    distance = _square_distance()
    reliable, uncertain = pmhm_loss.pmhm_regions(logits, [])
    assert uncertain.any()
    # Every uncertain pixel lies within 2 px of the square's boundary; the centre and corners do not.
    assert (distance[uncertain].abs() <= 2.0).all()
    assert not uncertain[0, 12, 12] and not uncertain[0, 0, 0]
    # Reliable pixels are far from the boundary (high margin) and never in the thin band.
    assert reliable.any() and (distance[reliable].abs() >= 2.0).all()
    assert reliable[0, 12, 12] and reliable[0, 0, 0]


def test_reliable_region_without_aux_heads_is_the_high_margin_quantile():
    torch.manual_seed(3)
    logits = torch.randn(2, 8, 8) * 3
    reliable, uncertain = pmhm_loss.pmhm_regions(logits, [])
    prob = torch.sigmoid(logits)
    margin = (prob - 0.5).abs()
    tau_h = torch.quantile(margin.flatten(1), 0.6, dim=1).view(2, 1, 1)
    tau_m = torch.quantile(margin.flatten(1), 0.2, dim=1).view(2, 1, 1)
    edge = losses.sobel_magnitude(prob)
    tau_e = torch.quantile(edge.flatten(1), 0.85, dim=1).view(2, 1, 1)
    assert torch.equal(reliable, margin >= tau_h)
    assert torch.equal(uncertain, (margin < tau_m) | (edge > tau_e))


def test_reliable_region_excludes_pixels_where_aux_heads_disagree():
    logits = _square_logits()
    aux = logits.clone()
    aux[0, 0:3, 0:3] = 3.0  # the auxiliary head calls a background corner foreground
    reliable_alone, _ = pmhm_loss.pmhm_regions(logits, [])
    reliable, _ = pmhm_loss.pmhm_regions(logits, [aux])
    assert reliable_alone[0, 0:3, 0:3].all()
    assert not reliable[0, 0:3, 0:3].any()
    outside_patch = torch.ones_like(reliable)
    outside_patch[0, 0:3, 0:3] = False
    assert torch.equal(reliable[outside_patch], reliable_alone[outside_patch])
    # A second head that agrees everywhere changes nothing; one that disagrees elsewhere removes more.
    assert torch.equal(pmhm_loss.pmhm_regions(logits, [aux, logits.clone()])[0], reliable)
    other = logits.clone()
    other[0, 21:24, 21:24] = 3.0
    assert not pmhm_loss.pmhm_regions(logits, [aux, other])[0][0, 21:24, 21:24].any()


def test_tversky_alpha_is_annealed_linearly():
    assert pmhm_loss.tversky_alpha(0.0) == pytest.approx(0.7)
    assert pmhm_loss.tversky_alpha(0.5) == pytest.approx(0.6)
    assert pmhm_loss.tversky_alpha(1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="progress"):
        pmhm_loss.tversky_alpha(1.2)


def _noisy_case():
    logits = _square_logits()
    # The ground truth is the square shifted right by 2 px: boundary noise with both FP and FN pixels.
    target = torch.roll((_square_distance() > 0).float(), 2, dims=2)
    weight = torch.ones_like(target)
    return logits, target, weight


def test_loss_value_follows_training_progress():
    logits, target, weight = _noisy_case()
    start, start_parts = pmhm_loss.pmhm_mask_loss(logits, [], target, weight, progress=0.0)
    end, end_parts = pmhm_loss.pmhm_mask_loss(logits, [], target, weight, progress=1.0)
    assert start_parts["tversky_alpha"].item() == pytest.approx(0.7)
    assert end_parts["tversky_alpha"].item() == pytest.approx(0.5)
    assert start_parts["tversky"].item() != pytest.approx(end_parts["tversky"].item())
    # Only the Tversky term depends on progress, with weight 0.3.
    delta = 0.3 * (start_parts["tversky"] - end_parts["tversky"]).item()
    assert (start - end).item() == pytest.approx(delta, rel=1e-5)
    # The term itself is the region Tversky loss with the annealed alpha.
    _, uncertain = pmhm_loss.pmhm_regions(logits, [])
    halfway = pmhm_loss.pmhm_mask_loss(logits, [], target, weight, progress=0.5)[1]["tversky"]
    expected = losses.tversky_loss(torch.sigmoid(logits), target, uncertain, alpha=0.6, beta=0.5)
    assert halfway.item() == pytest.approx(expected.item(), rel=1e-6)


def test_total_is_the_weighted_sum_of_its_parts():
    torch.manual_seed(5)
    logits, target, _ = _noisy_case()
    weight = torch.tensor([1.0, 2.0, 5.0])[torch.randint(0, 3, target.shape)]
    aux = logits + 0.5 * torch.randn_like(logits)
    layer = 0.5 * logits
    total, parts = pmhm_loss.pmhm_mask_loss(logits, [aux], target, weight, 0.25, intermediate_logits_list=[layer])
    expected = (2 * parts["focal"] + 5 * parts["dice"] + 0.3 * parts["tversky"]
                + 0.1 * parts["head_consistency"] + 0.1 * parts["layer_consistency"])
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    reliable, uncertain = pmhm_loss.pmhm_regions(logits, [aux])
    focal_s = losses.weighted_sigmoid_focal(logits, target, weight * reliable.float())
    assert parts["focal"].item() == pytest.approx(focal_s.item(), rel=1e-6)
    assert parts["dice"].item() == pytest.approx(losses.dice_loss(logits, target, region=reliable).item(), rel=1e-6)
    head = losses.symmetric_bernoulli_kl(torch.sigmoid(logits), torch.sigmoid(aux), uncertain)
    assert parts["head_consistency"].item() == pytest.approx(head.item(), rel=1e-6)
    assert parts["head_consistency"].item() > 0 and parts["layer_consistency"].item() > 0
    assert 0 < parts["reliable_fraction"].item() < 1 and 0 < parts["uncertain_fraction"].item() < 1


def test_gradients_reach_main_aux_and_intermediate_logits():
    logits, target, weight = _noisy_case()
    main = logits.clone().requires_grad_()
    aux = (logits + 0.3).requires_grad_()
    layer = (0.5 * logits).requires_grad_()
    total, _ = pmhm_loss.pmhm_mask_loss(main, [aux], target, weight, 0.5, intermediate_logits_list=[layer])
    total.backward()
    for tensor in (main, aux, layer):
        assert torch.isfinite(tensor.grad).all()
        assert tensor.grad.abs().sum() > 0
    # The auxiliary head learns only through head consistency, i.e. only on uncertain pixels.
    _, uncertain = pmhm_loss.pmhm_regions(logits, [logits + 0.3])
    assert (aux.grad[~uncertain] == 0).all()


def test_zero_aux_heads_and_invalid_rows():
    logits, target, weight = _noisy_case()
    logits2 = torch.cat([logits, torch.full_like(logits, 9.0)]).requires_grad_()
    target2 = torch.cat([target, torch.zeros_like(target)])
    weight2 = torch.cat([weight, weight])
    valid = torch.tensor([True, False])
    total, parts = pmhm_loss.pmhm_mask_loss(logits2, [], target2, weight2, 0.0, valid=valid)
    single, _ = pmhm_loss.pmhm_mask_loss(logits, [], target, weight, 0.0)
    assert total.item() == pytest.approx(single.item(), rel=1e-6)
    assert parts["head_consistency"].item() == 0.0 and parts["layer_consistency"].item() == 0.0
    total.backward()
    assert (logits2.grad[1] == 0).all() and logits2.grad[0].abs().sum() > 0


def test_perturb_mask_features_drops_channels_and_scales_noise():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(4, 32, 16, 16) * 3 + 1
    assert torch.equal(pmhm_loss.perturb_mask_features(features, 0.0, 0.0, generator), features)
    dropped = pmhm_loss.perturb_mask_features(features, 0.5, 0.0, generator)
    zero_channels = dropped.flatten(2).abs().sum(2) == 0  # (4, 32)
    assert 0 < zero_channels.sum() < zero_channels.numel()
    kept = ~zero_channels
    assert torch.allclose(dropped[kept], features[kept] * 2.0)  # survivors scaled by 1 / (1 - 0.5)
    noisy = pmhm_loss.perturb_mask_features(features, 0.0, 0.2, generator)
    noise_std = (noisy - features).flatten(1).std(dim=1)
    feature_std = features.flatten(1).std(dim=1)
    assert torch.allclose(noise_std, 0.2 * feature_std, rtol=0.05)


def test_perturb_mask_features_is_reproducible_and_differentiable():
    features = torch.randn(2, 8, 4, 4, requires_grad=True)
    first = pmhm_loss.perturb_mask_features(features, generator=torch.Generator().manual_seed(7))
    second = pmhm_loss.perturb_mask_features(features, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, second)
    first.sum().backward()
    assert torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="N, C, H, W"):
        pmhm_loss.perturb_mask_features(torch.randn(8, 4, 4))


def test_aux_head_frozen_mask():
    generator = torch.Generator().manual_seed(1)
    mask = pmhm_loss.aux_head_frozen_mask(2, generator=generator)
    assert mask.shape == (2,) and mask.dtype == torch.bool
    assert not pmhm_loss.aux_head_frozen_mask(3, p=0.0).any()
    assert pmhm_loss.aux_head_frozen_mask(3, p=1.0).all()
    assert pmhm_loss.aux_head_frozen_mask(0).shape == (0,)
    rate = pmhm_loss.aux_head_frozen_mask(20000, generator=generator).float().mean().item()
    assert rate == pytest.approx(0.2, abs=0.015)
