"""The Markov model and multimodal LDA modules, called in this process (no Ray)."""

import numpy as np
import pytest

import runtime as srk
from actors.mlda import MLDA
from actors.mm import MarkovModel
from runtime.module import UpdateContext, no_progress

CONTEXT = UpdateContext("test", 1, [], no_progress)
SERKET_EXAMPLE = np.array([[10, 2, 1], [8, 1, 1], [2, 7, 0], [1, 11, 2], [1, 1, 8], [2, 1, 1]])


def test_markov_model_learns_a_cycle_and_predicts_each_successor():
    classes = np.tile(np.arange(4), 50)  # 0,1,2,3,0,1,...
    probabilities = np.eye(4)[classes] * 0.9 + 0.025  # confident, not certain
    mm = MarkovModel(prior=0.1)
    update = mm.learn([probabilities], None, CONTEXT)
    assert np.array_equal(mm.transitions_.argmax(axis=1), [1, 2, 3, 0])
    assert np.allclose(mm.transitions_.sum(axis=1), 1)
    # Element n's prior names the successor of element n-1's class.
    assert np.array_equal(update.backward[0][1:].argmax(axis=1), classes[1:])
    assert update.backward[0].shape == (200, 4)
    novel = mm.recognize([np.eye(4)[[2, 3, 0]]], None, CONTEXT)
    assert np.array_equal(novel.forward[1:].argmax(axis=1), [3, 0])
    assert mm.transitions_ is not None and "trans_prob_learn.txt" in update.files


def test_markov_model_state_round_trip_and_bad_input():
    mm = MarkovModel()
    mm.learn([np.full((10, 3), 1 / 3)], None, CONTEXT)
    restored = MarkovModel()
    restored.load_state(mm.state())
    np.testing.assert_array_equal(restored.transitions_, mm.transitions_)
    with pytest.raises(ValueError, match="class probabilities"):
        mm.learn([np.full((10, 3), 0.5)], None, CONTEXT)
    with pytest.raises(srk.ModuleError, match="prior must be a positive number"):
        MarkovModel(prior=0)


def test_mlda_on_serket_getting_started_example():
    mlda = MLDA(3, category=[0, 0, 1, 1, 2, 2])
    update = mlda.learn([SERKET_EXAMPLE], None, CONTEXT)
    classes = update.forward.argmax(axis=1)
    # The first five go to their classes. The sixth, [2, 1, 1], has word 0 as its main
    # word, like class 0: every model fitted here (and the exact posterior mode of a
    # mixture of multinomials) puts it there; Serket's sampler reaches 1.0 only by chance.
    assert len(set(classes[[0, 2, 4]])) == 3
    assert classes[1] == classes[0] and classes[3] == classes[2]
    assert update.metrics["acc"] == pytest.approx(5 / 6)
    assert update.backward[0].shape == (6, 3)
    np.testing.assert_allclose(update.backward[0].sum(axis=1), 1, atol=1e-6)


def test_mlda_classifies_from_two_modalities_and_recognises():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    words = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    first = np.stack([rng.multinomial(20, words[c]) for c in labels])
    second = np.stack([rng.multinomial(20, words[(c + 1) % 3]) for c in labels])
    mlda = MLDA(3, weights=[50, 50], category=labels)
    update = mlda.learn([first, second], None, CONTEXT)
    assert update.metrics["acc"] > 0.95
    assert [b.shape for b in update.backward] == [(120, 3), (120, 3)]
    novel = mlda.recognize([first[:9], second[:9]], None, UpdateContext(
        "test", 1, [], no_progress, category=labels[:9]))  # fmt: skip
    assert "acc_recog.txt" in novel.files and novel.forward.shape == (9, 3)
    restored = MLDA(3, weights=[50, 50])
    restored.load_state(mlda.state())
    again = restored.recognize([first[:9], second[:9]], None, CONTEXT)
    np.testing.assert_allclose(again.forward, novel.forward, atol=1e-6)


def test_mlda_refuses_negative_counts_and_wrong_weight_count():
    with pytest.raises(ValueError, match="negative values"):
        MLDA(2).learn([-SERKET_EXAMPLE], None, CONTEXT)
    with pytest.raises(ValueError, match="has 1 weights for 2 connected inputs"):
        MLDA(2, weights=[1]).output_shape([(6, 3), (6, 4)])
