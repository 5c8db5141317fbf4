"""The model: pretrained weights really load, shapes, per-prompt independence, PMHM heads."""
import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (pip install 'actiseg_ros[train]')")

from actiseg_ros.inference.preprocess import normalize  # noqa: E402
from actiseg_ros.training.modeling.actiseg_model import ActiSegSegmenter, ModelConfig  # noqa: E402
from actiseg_ros.training.modeling.image_encoder import build_efficientnet  # noqa: E402
from actiseg_ros.training.modeling.text_encoder import TextEncoder, load_tokenizer, sentence_embedding, tokenize  # noqa: E402

pytestmark = pytest.mark.training  # real torch models, exports or training steps

ESPRESSO, EGYPTIAN_CAT = 967, 285  # ImageNet-1k class indices


@pytest.mark.parametrize("image_name, expected", [("coffee", ESPRESSO), ("chelsea", EGYPTIAN_CAT)])
def test_efficientnet_lite0_weights_classify_sample_images(image_name, expected):
    import cv2
    from skimage import data

    net = build_efficientnet("efficientnet-lite0", pretrained=True).eval()
    rgb = cv2.resize(getattr(data, image_name)(), (224, 224), interpolation=cv2.INTER_AREA)
    with torch.no_grad():
        logits = net(torch.from_numpy(normalize(rgb[None])))
    assert int(logits.argmax()) == expected
    assert float(torch.softmax(logits, 1)[0, expected]) > 0.5


def test_minilm_sentence_vectors_are_semantic():
    tokenizer, encoder = load_tokenizer(), TextEncoder()
    ids, mask = tokenize(tokenizer, ["chef knife", "cleaver", "dish soap"])
    vectors = sentence_embedding(encoder(ids, mask), mask)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2]
    assert torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-5)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    config = ModelConfig(pretrained=False, dim=32, heads=2, aux_heads=1, input_hw=(64, 96))
    return ActiSegSegmenter(config).eval()


def test_output_shapes(small_model):
    images = torch.randn(2, 3, 64, 96)
    out = small_model(images, torch.randn(2, 3, 32, 384), torch.ones(2, 3, 32))
    assert out["mask_logits"].shape == (2, 3, 16, 24)
    assert out["positive_logits"].shape == (2, 3)


def test_each_prompt_is_decoded_independently_of_the_others(small_model):
    """The decoder is batched over K prompts; adding prompts must not change any prompt's result."""
    images = torch.randn(1, 3, 64, 96)
    tokens, mask = torch.randn(1, 4, 32, 384), torch.ones(1, 4, 32)
    mask[:, :, 20:] = 0
    with torch.no_grad():
        together = small_model(images, tokens, mask)
        alone = small_model(images, tokens[:, 2:3], mask[:, 2:3])
    assert torch.allclose(together["mask_logits"][:, 2], alone["mask_logits"][:, 0], atol=1e-5)
    assert torch.allclose(together["positive_logits"][:, 2], alone["positive_logits"][:, 0], atol=1e-5)


def test_padding_tokens_do_not_change_the_result(small_model):
    images = torch.randn(1, 3, 64, 96)
    tokens, mask = torch.randn(1, 1, 32, 384), torch.ones(1, 1, 32)
    mask[:, :, 10:] = 0
    other = tokens.clone()
    other[:, :, 10:] = 99.0  # garbage behind the mask
    with torch.no_grad():
        a = small_model(images, tokens, mask)["mask_logits"]
        b = small_model(images, other, mask)["mask_logits"]
    assert torch.allclose(a, b, atol=1e-5)


def test_pmhm_aux_heads_start_as_noisy_copies_and_are_training_only(small_model):
    main = dict(small_model.decoder.mask_head.named_parameters())
    aux = dict(small_model.aux_heads.heads[0].named_parameters())
    for name, parameter in main.items():
        difference = (aux[name] - parameter).abs()
        assert 0 < float(difference.max()) < 0.01  # N(0, 1e-3) noise
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        plain = small_model(images, torch.randn(1, 2, 32, 384), torch.ones(1, 2, 32))
        with_aux = small_model(images, torch.randn(1, 2, 32, 384), torch.ones(1, 2, 32), with_aux=True)
    assert "aux_mask_logits" not in plain
    assert len(with_aux["aux_mask_logits"]) == 1 and with_aux["aux_mask_logits"][0].shape == (2, 16, 24)


def test_zero_aux_heads_is_the_plain_model():
    config = ModelConfig(pretrained=False, dim=32, heads=2, aux_heads=0, input_hw=(64, 96))
    model = ActiSegSegmenter(config)
    assert len(model.aux_heads.heads) == 0
    out = model(torch.randn(1, 3, 64, 96), torch.randn(1, 1, 32, 384), torch.ones(1, 1, 32), with_aux=True)
    assert "aux_mask_logits" not in out
    with pytest.raises(ValueError, match="0 to 2"):
        ActiSegSegmenter(ModelConfig(pretrained=False, dim=32, heads=2, aux_heads=3))


# ------------------------------------------------------------------- factored mask features (no (N, D, H, W))
def factored_features(frames=2, prompts=3, dim=8, seed=0):
    from actiseg_ros.training.modeling.mask_decoder import MaskFeatures

    generator = torch.Generator().manual_seed(seed)
    return MaskFeatures(fine=torch.randn(frames, dim, 12, 20, generator=generator),
                        coarse=torch.randn(frames * prompts, dim, 3, 5, generator=generator))


def test_mask_head_on_factored_features_equals_the_written_out_features():
    from actiseg_ros.training.modeling.mask_decoder import MaskHead

    torch.manual_seed(1)
    features, head = factored_features(), MaskHead(8)
    query = torch.randn(6, 8)
    reference = torch.einsum("nd,ndhw->nhw", head.kernels(query), features.materialize())
    assert torch.allclose(head(query, features), reference, atol=1e-5)
    assert features.materialize().shape == (6, 8, 12, 20)


def test_aux_head_perturbation_matches_the_spec_perturbation_in_distribution():
    """Channel dropout: identical to perturbing the written-out features with the same random keep mask.
    Noise: the logits' noise has the std of <kernel, N(0, s^2)>, s = 0.2 x the dropped row's feature std."""
    from actiseg_ros.training import pmhm_loss
    from actiseg_ros.training.modeling.mask_decoder import MaskHead
    from actiseg_ros.training.modeling.pmhm_heads import channel_moments, perturbed_head_logits

    torch.manual_seed(2)
    features, head = factored_features(frames=2, prompts=2, dim=16), MaskHead(16)
    query = torch.randn(4, 16)
    moments = channel_moments(features)
    dropped = perturbed_head_logits(head, query, features, 0.5, 0.0, moments, torch.Generator().manual_seed(5))
    reference = pmhm_loss.perturb_mask_features(features.materialize(), 0.5, 0.0, torch.Generator().manual_seed(5))
    assert torch.allclose(dropped, torch.einsum("nd,ndhw->nhw", head.kernels(query), reference), atol=1e-4)

    clean = perturbed_head_logits(head, query, features, 0.0, 0.0, moments)
    noisy = torch.stack([perturbed_head_logits(head, query, features, 0.0, 0.2, moments) for _ in range(50)])
    expected = 0.2 * features.materialize().flatten(1).std(dim=1, correction=0) * head.kernels(query).norm(dim=1)
    measured = (noisy - clean).transpose(0, 1).flatten(1).std(dim=1)
    assert torch.allclose(measured, expected, rtol=0.05)


def test_frozen_backbone_has_no_gradient_and_keeps_its_batch_norm_statistics():
    config = ModelConfig(pretrained=False, dim=32, heads=2, aux_heads=1, input_hw=(64, 96), backbone_trainable=False)
    model = ActiSegSegmenter(config).train()
    assert not model.image_encoder.training and model.decoder.training
    statistics = {k: v.clone() for k, v in model.image_encoder.state_dict().items() if "running" in k}
    out = model(torch.randn(2, 3, 64, 96), torch.randn(2, 2, 32, 384), torch.ones(2, 2, 32), with_aux=True)
    (out["mask_logits"].sum() + out["aux_mask_logits"][0].sum()).backward()
    assert all(p.grad is None and not p.requires_grad for p in model.image_encoder.parameters())
    assert model.pixel_decoder.lateral[0].weight.grad is not None
    assert all(torch.equal(v, model.image_encoder.state_dict()[k]) for k, v in statistics.items())


def test_activity_gate_is_the_product_of_probabilities_and_stays_finite():
    from actiseg_ros.training.modeling.mask_decoder import gate_by_activity

    a = torch.tensor([[[3.0, -2.0, 0.0], [40.0, -40.0, 5.0]]])
    b = torch.tensor([1.5])
    expected = torch.logit(torch.sigmoid(a.double()) * torch.sigmoid(b.double()))
    assert torch.allclose(gate_by_activity(a, b).double(), expected, atol=1e-4)
    extreme = gate_by_activity(torch.tensor([[[200.0, -200.0]]]), torch.tensor([-300.0]))
    assert torch.isfinite(extreme).all() and (extreme < -150).all()  # an inactive object has an empty mask
    assert torch.allclose(gate_by_activity(torch.tensor([[[2.0, -3.0]]]), torch.tensor([60.0])),
                          torch.tensor([[[2.0, -3.0]]]))  # a surely active object keeps its own mask


def test_object_logits_are_the_mask_before_the_gate(small_model):
    from actiseg_ros.training.modeling.mask_decoder import gate_by_activity

    with torch.no_grad():
        out = small_model(torch.randn(2, 3, 64, 96), torch.randn(2, 3, 32, 384), torch.ones(2, 3, 32))
    assert out["object_logits"].shape == (6, 16, 24)
    gated = gate_by_activity(out["object_logits"], out["positive_logits"].reshape(-1)).reshape(2, 3, 16, 24)
    assert torch.allclose(gated, out["mask_logits"], atol=1e-6)
    assert not torch.allclose(out["object_logits"].reshape(2, 3, 16, 24), out["mask_logits"], atol=1e-3)


def test_mask_loss_trains_the_positive_head_through_the_gate(small_model):
    small_model.zero_grad()
    out = small_model(torch.randn(1, 3, 64, 96), torch.randn(1, 2, 32, 384), torch.ones(1, 2, 32))
    out["mask_logits"].sum().backward()
    assert small_model.decoder.positive_head[0].weight.grad.abs().sum() > 0
    small_model.zero_grad()
