"""The one pair builder: every pair i < j once, tile by tile without an N x N matrix, sampled impostors that keep
every genuine pair, and the same pairs for numpy labels and a training batch's tensor."""

import numpy as np
import torch

from metric.scoring.pairs import count_pairs, label_pairs, pair_scores, sample_pairs


def test_pair_scores_match_brute_force_over_tiles():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(157, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = rng.integers(0, 20, 157)
    scores, genuine = pair_scores(emb, labels, tile=16)  # many tiles, none square with the end
    i, j = np.triu_indices(157, k=1)
    brute = (emb @ emb.T)[i, j]
    assert scores.size == brute.size
    np.testing.assert_allclose(np.sort(scores), np.sort(brute), atol=1e-6)
    assert genuine.sum() == count_pairs(labels)[0] == (labels[i] == labels[j]).sum()


def test_pair_scores_sampling_keeps_every_genuine_pair():
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(600, 4)).astype(np.float32)
    labels = np.repeat(np.arange(60), 10)
    scores, genuine = pair_scores(emb, labels, tile=64, max_impostor_pairs=10_000)
    assert genuine.sum() == 60 * 45
    assert 9_000 < (~genuine).sum() < 11_000


def test_label_pairs_are_the_same_for_numpy_and_torch():
    labels = np.array([3, 1, 3, 2, 1])
    first, second, genuine = label_pairs(labels)
    t_first, t_second, t_genuine = label_pairs(torch.from_numpy(labels))
    assert first.tolist() == t_first.tolist() and second.tolist() == t_second.tolist()
    assert (
        genuine.tolist() == t_genuine.tolist() == [False, True, False, False, False, False, True, False, False, False]
    )
    assert (first < second).all() and len(first) == 5 * 4 // 2


def test_sampled_pairs_are_of_one_kind_without_repeats():
    labels = np.repeat(np.arange(10), 4)
    impostor = sample_pairs(labels, False, 50, seed=0)
    genuine = sample_pairs(labels, True, 1000, seed=0)
    assert len(impostor) == 50 and len({tuple(p) for p in impostor}) == 50
    assert (labels[impostor[:, 0]] != labels[impostor[:, 1]]).all()
    assert len(genuine) == count_pairs(labels)[0] and (labels[genuine[:, 0]] == labels[genuine[:, 1]]).all()
    assert (sample_pairs(labels, False, 50, seed=0) == impostor).all()  # seeded
