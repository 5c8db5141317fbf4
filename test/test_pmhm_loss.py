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


# --- the spec's remaining PMHM terms, checked against its numbers (spec section 6) -----------------------------

def test_spec_constants():
    # tau_m = Q0.20(M), tau_e = Q0.85(E), tau_h = Q0.60(M); Tversky 0.3 with a 0.7 -> 0.5, b 0.5; consistency 0.1
    # each; focal 2 + dice 5 on S; aux features: channel dropout 0.2, noise 0.2 x std; freeze 0.2; init N(0, 1e-3).
    assert (pmhm_loss.MARGIN_LOW_QUANTILE, pmhm_loss.EDGE_HIGH_QUANTILE, pmhm_loss.MARGIN_HIGH_QUANTILE) \
        == (0.20, 0.85, 0.60)
    assert (pmhm_loss.TVERSKY_WEIGHT, pmhm_loss.TVERSKY_ALPHA_START, pmhm_loss.TVERSKY_ALPHA_END,
            pmhm_loss.TVERSKY_BETA) == (0.3, 0.7, 0.5, 0.5)
    assert (pmhm_loss.HEAD_CONSISTENCY_WEIGHT, pmhm_loss.LAYER_CONSISTENCY_WEIGHT) == (0.1, 0.1)
    assert (losses.MASK_FOCAL_WEIGHT, losses.MASK_DICE_WEIGHT, losses.FOCAL_ALPHA, losses.FOCAL_GAMMA) \
        == (2.0, 5.0, 0.25, 2.0)
    assert (pmhm_loss.AUX_FEATURE_DROP, pmhm_loss.AUX_NOISE_STD_RATIO, pmhm_loss.AUX_FREEZE_PROBABILITY) \
        == (0.2, 0.2, 0.2)
    from actiseg_ros.training.modeling.mask_decoder import MaskHead
    from actiseg_ros.training.modeling.pmhm_heads import AuxiliaryMaskHeads

    heads = AuxiliaryMaskHeads(MaskHead(8))
    assert (len(heads.heads), heads.init_noise, heads.p_drop, heads.noise_ratio, heads.freeze_prob) \
        == (1, 1e-3, 0.2, 0.2, 0.2)


def test_pmhm_terms_by_the_spec_formulas():
    """Each term recomputed from the spec's words with plain tensor code (no project helper)."""
    torch.manual_seed(11)
    logits = torch.randn(2, 12, 12) * 3
    aux = logits + torch.randn(2, 12, 12)
    layer = 0.7 * logits + 0.2
    target = (torch.rand(2, 12, 12) > 0.6).float()
    weight = torch.tensor([1.0, 2.0, 5.0])[torch.randint(0, 3, target.shape)]
    progress = 0.3
    total, parts = pmhm_loss.pmhm_mask_loss(logits, [aux], target, weight, progress, intermediate_logits_list=[layer])

    p = torch.sigmoid(logits)
    m = (p - 0.5).abs()
    gx = torch.nn.functional.pad(p[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    sx = (gx[:, :-2, :-2] + 2 * gx[:, 1:-1, :-2] + gx[:, 2:, :-2]
          - gx[:, :-2, 2:] - 2 * gx[:, 1:-1, 2:] - gx[:, 2:, 2:]) / 8  # 3x3 Sobel / 8, replicate padding
    sy = (gx[:, :-2, :-2] + 2 * gx[:, :-2, 1:-1] + gx[:, :-2, 2:]
          - gx[:, 2:, :-2] - 2 * gx[:, 2:, 1:-1] - gx[:, 2:, 2:]) / 8
    e = (sx ** 2 + sy ** 2).sqrt()
    q = torch.quantile
    tau_m = q(m.flatten(1), 0.2, dim=1).view(2, 1, 1)
    tau_e = q(e.flatten(1), 0.85, dim=1).view(2, 1, 1)
    tau_h = q(m.flatten(1), 0.6, dim=1).view(2, 1, 1)
    u = (m < tau_m) | (e > tau_e)
    s = ((logits > 0) == (aux > 0)) & (m >= tau_h)
    reliable, uncertain = pmhm_loss.pmhm_regions(logits, [aux])
    assert torch.equal(uncertain, u) and torch.equal(reliable, s)

    # focal on S: w * alpha_t * (1 - p_t)^2 * BCE with alpha 0.25, mean over each row's pixels, then rows
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = 0.25 * target + 0.75 * (1 - target)
    bce = -(target * torch.log(p) + (1 - target) * torch.log(1 - p))
    focal = (weight * s * alpha_t * (1 - p_t) ** 2 * bce).flatten(1).mean(1).mean()
    assert parts["focal"].item() == pytest.approx(focal.item(), rel=1e-4)
    # dice on S: 1 - (2 sum(p t) + 1) / (sum p + sum t + 1) over S
    ps, ts = p * s, target * s
    dice = (1 - (2 * (ps * ts).flatten(1).sum(1) + 1) / (ps.flatten(1).sum(1) + ts.flatten(1).sum(1) + 1)).mean()
    assert parts["dice"].item() == pytest.approx(dice.item(), rel=1e-5)
    # Tversky on U: 1 - TP / (TP + a FP + b FN), a = 0.7 - 0.2 * progress, b = 0.5 (smooth 1)
    a = 0.7 - 0.2 * progress
    pu, tu = p * u, target * u
    tp, fp, fn = (pu * tu).flatten(1).sum(1), (pu * (1 - tu)).flatten(1).sum(1), ((1 - pu) * tu).flatten(1).sum(1)
    tversky = (1 - (tp + 1) / (tp + a * fp + 0.5 * fn + 1)).mean()
    assert parts["tversky_alpha"].item() == pytest.approx(a)
    assert parts["tversky"].item() == pytest.approx(tversky.item(), rel=1e-5)

    # symmetric Bernoulli KL, KL(p||q) + KL(q||p), pooled over U
    def sym_kl(p1, p2):
        kl = p1 * torch.log(p1 / p2) + (1 - p1) * torch.log((1 - p1) / (1 - p2))
        kl_back = p2 * torch.log(p2 / p1) + (1 - p2) * torch.log((1 - p2) / (1 - p1))
        return ((kl + kl_back) * u).sum() / u.sum()

    head = sym_kl(p.double(), torch.sigmoid(aux).double())
    layer_term = sym_kl(p.double(), torch.sigmoid(layer).double())
    assert parts["head_consistency"].item() == pytest.approx(head.item(), rel=1e-4)
    assert parts["layer_consistency"].item() == pytest.approx(layer_term.item(), rel=1e-4)
    expected = 2 * focal + 5 * dice + 0.3 * tversky + 0.1 * head + 0.1 * layer_term
    assert total.item() == pytest.approx(expected.item(), rel=1e-4)


def _factored_features(b=2, k=3, d=16, size=(32, 32), coarse=(8, 8)):
    from actiseg_ros.training.modeling.mask_decoder import MaskFeatures

    fine = torch.randn(b, d, *size)
    coarse_maps = torch.randn(b * k, d, *coarse)
    dense = fine.repeat_interleave(k, dim=0) + torch.nn.functional.interpolate(
        coarse_maps, size=size, mode="bilinear", align_corners=False)
    return MaskFeatures(fine, coarse_maps), dense


def test_aux_head_logits_equal_the_head_on_perturbed_features():
    """The factored perturbation (pmhm_heads.perturbed_head_logits) is the spec's: channel dropout p 0.2 of
    the features, then Gaussian noise of std 0.2 x the dropped row's std, seen through the linear head."""
    from actiseg_ros.training.modeling.mask_decoder import MaskHead
    from actiseg_ros.training.modeling.pmhm_heads import channel_moments, perturbed_head_logits

    torch.manual_seed(2)
    features, dense = _factored_features()
    head = MaskHead(16)
    query = torch.randn(6, 16)
    moments = channel_moments(features)
    with torch.no_grad():
        kernel = head.kernels(query)
        # Dropout alone: the same keep draws (same generator) give the same logits as the dense computation.
        got = perturbed_head_logits(head, query, features, 0.2, 0.0, moments, torch.Generator().manual_seed(5))
        dropped = pmhm_loss.perturb_mask_features(dense, 0.2, 0.0, torch.Generator().manual_seed(5))
        assert (dropped.flatten(2).abs().sum(2) == 0).any(), "some channels must be dropped"
        assert torch.allclose(got, torch.einsum("nd,ndhw->nhw", kernel, dropped), atol=1e-4)
        # Noise: on top of the same dropout, the logits move by Gaussian noise of std 0.2 * std(row) * |kernel|.
        noisy = perturbed_head_logits(head, query, features, 0.2, 0.2, moments, torch.Generator().manual_seed(5))
        residual_std = (noisy - got).flatten(1).std(dim=1)
        expected = 0.2 * dropped.flatten(1).std(dim=1, correction=0) * kernel.norm(dim=1)
        assert torch.allclose(residual_std, expected, rtol=0.1)


def test_aux_heads_start_as_noisy_copies_and_freeze_one_step_in_five():
    from actiseg_ros.training.modeling.mask_decoder import MaskHead
    from actiseg_ros.training.modeling.pmhm_heads import AuxiliaryMaskHeads

    torch.manual_seed(4)
    main = MaskHead(64)
    heads = AuxiliaryMaskHeads(main, 1)
    differences = torch.cat([(a - m).flatten() for a, m in zip(heads.heads[0].parameters(), main.parameters())])
    assert differences.std().item() == pytest.approx(1e-3, rel=0.05) and differences.mean().abs() < 1e-4
    features, _ = _factored_features(b=1, k=1, d=64, size=(8, 8), coarse=(2, 2))
    query = torch.randn(1, 64)
    frozen = 0
    for _ in range(2000):
        heads(query, features)
        frozen += not next(heads.heads[0].parameters()).requires_grad
    assert frozen / 2000 == pytest.approx(0.2, abs=0.03)
    # A frozen head predicts (its vote counts) but gets no gradient; the query it reads still does.
    query.requires_grad_()
    while next(heads.heads[0].parameters()).requires_grad:
        logits = heads(query, features)[0]
    logits.sum().backward()
    assert all(p.grad is None for p in heads.heads[0].parameters()) and query.grad.abs().sum() > 0


def test_diagnostics_count_labelled_foreground_in_each_region():
    logits = torch.tensor([[[4.0, -4.0], [0.1, -0.1]]])  # (1, 2, 2)
    target = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])
    reliable = torch.tensor([[[True, False], [False, True]]])
    uncertain = torch.tensor([[[False, True], [True, True]]])
    aux = torch.tensor([[[3.0, 2.0], [-1.0, -1.0]]])
    found = pmhm_loss.pmhm_diagnostics(logits, [aux], target, reliable, uncertain, torch.tensor([True]))
    assert found["fg_in_reliable"].item() == pytest.approx(1 / 3)
    assert found["fg_in_uncertain"].item() == pytest.approx(2 / 3)
    assert found["head_iou"].item() == pytest.approx(1 / 3)  # main {00, 10}, aux {00, 01}
    expected = (torch.sigmoid(logits) - torch.sigmoid(aux)).abs().mean()
    assert found["head_prob_diff"].item() == pytest.approx(expected.item())
    none = pmhm_loss.pmhm_diagnostics(logits, [], torch.zeros_like(target), reliable, uncertain, torch.tensor([True]))
    assert all(torch.isnan(none[name]) for name in ("fg_in_reliable", "fg_in_uncertain", "head_iou"))
    skipped = pmhm_loss.pmhm_diagnostics(logits, [aux], target, reliable, uncertain, torch.tensor([False]))
    assert torch.isnan(skipped["fg_in_reliable"]) and skipped["head_iou"].item() == 1.0


def test_masked_row_quantile_matches_torch_on_the_members():
    torch.manual_seed(1)
    values = torch.randn(4, 6, 5)
    members = torch.rand(4, 6, 5) > 0.4
    members[3] = False  # a row without members
    for q in (0.0, 0.2, 0.6, 0.85, 1.0):
        result = pmhm_loss.masked_row_quantile(values, members, q)
        for row in range(3):
            assert result[row] == pytest.approx(torch.quantile(values[row][members[row]], q).item(), abs=1e-6)
        assert torch.isnan(result[3])


def _object_scene():
    """(1, 24, 24) logits of a confident model: far background saturated (-30), a ring of 2 px around the
    square less sure (-4), the square's border +2 and its interior +8 (an object learnt, not saturated)."""
    distance = _square_distance()
    logits = torch.full_like(distance, -30.0)
    logits[distance > -2.0] = -4.0
    logits[distance > 0.0] = 2.0
    logits[distance > 2.0] = 8.0
    return logits, distance


def test_spec_split_degenerates_on_saturated_background_and_the_variant_does_not():
    """What the standard grid's PMHM logs showed (docs/robustness/standard/README.md): with most pixels'
    sigmoids saturated, the spec's tau_h is the saturation margin 0.5, so S is the saturated background and
    the object is never reliable; the balanced_logit variant puts the object's confident interior in S and
    keeps the unsure ring around it (where a dilated label lies) out of S."""
    logits, distance = _object_scene()
    reliable, uncertain = pmhm_loss.pmhm_regions(logits, [])
    inside, ring = distance > 0, (distance > -2) & (distance <= 0)
    assert torch.equal(reliable, distance <= -2)  # S is exactly the saturated background
    assert uncertain[(distance > 0) & (distance <= 2)].all()
    reliable_v, _ = pmhm_loss.pmhm_regions_balanced_logit(logits, [])
    assert reliable_v[distance > 2].all()  # the interior: the object's most confident 40%+
    assert not reliable_v[ring].any()
    assert reliable_v[inside].float().mean() >= 0.4
    # the per-class split without the logit margin keeps S = saturated background (ties at 0.5 in p-space)
    reliable_b, _ = pmhm_loss.pmhm_regions_balanced(logits, [])
    assert reliable_b[distance > 2].all()
    # the logit margin alone: S is the top 40% |logit| over the whole frame, still the background only
    reliable_l, _ = pmhm_loss.pmhm_regions_logit(logits, [])
    assert not reliable_l[inside].any()


def test_region_variant_is_chosen_by_name_and_unknown_names_fail():
    from actiseg_ros.training.config import PMHM_REGIONS

    assert PMHM_REGIONS == tuple(pmhm_loss.REGIONS)
    logits, distance = _object_scene()
    target = (distance > 0).float()
    spec = pmhm_loss.pmhm_mask_loss(logits, [logits + 0.1], target, None, 0.5)[1]
    variant = pmhm_loss.pmhm_mask_loss(logits, [logits + 0.1], target, None, 0.5, regions="balanced_logit")[1]
    assert spec["fg_in_reliable"] == 0.0 and variant["fg_in_reliable"] > 0.5
    with pytest.raises(ValueError, match="PMHM regions must be one of"):
        pmhm_loss.pmhm_mask_loss(logits, [], target, None, 0.5, regions="nope")
