"""The exercises at the end of lessons 05a, 09, 10, 11 and 12: every checker they offer says right to the right answer
and "not yet" to a wrong one (the form of every lesson's exercises: tests/test_tutorials.py).

A checker is a function check_exercise_<k>(answer...) of the lesson, self-contained (it imports what it uses and
computes the right answer with graphnet, never from a global of the lesson), so the tests take it out of the source
and call it without running the lesson's training.
"""

import numpy as np
import pytest

from lesson_source import checkers


GREY_CONFUSION = np.array([[5, 9, 0],           # a confusion matrix: 0 and 1 mixed up 9 + 7 = 16 times
                           [7, 4, 1],
                           [2, 0, 8]])

# (lesson, checker, arguments of a right answer, arguments of a wrong one)
CASES = [
    ("05a_colour_images_cifar", "check_exercise_1", (448, 160), (432, 144)),          # forgot the biases
    ("05a_colour_images_cifar", "check_exercise_2", ((0, 1), GREY_CONFUSION), ((0, 2), GREY_CONFUSION)),
    ("05a_colour_images_cifar", "check_exercise_2", ((1, 0), GREY_CONFUSION), ((1, 1), GREY_CONFUSION)),
    ("09_famous_architectures", "check_exercise_1", (23_296,), (23_232,)),
    ("09_famous_architectures", "check_exercise_2", (12_544,), (9_216,)),
    ("10_mnist1d", "check_exercise_1", (325,), (250,)),
    ("10_mnist1d", "check_exercise_2", (17,), (11,)),
    ("11_cpu_vs_gpu", "check_exercise_1", (125, 16), (125, 15)),
    ("11_cpu_vs_gpu", "check_exercise_2", (10.2,), (3.4,)),        # 3 · 852,370 FLOPs · 4,000 = 10.2 GFLOP; not 1 ·
    ("12_data_parallel_sgd", "check_exercise_1", ((22 / 64, 21 / 64, 21 / 64),), ((1 / 3, 1 / 3, 1 / 3),)),
    ("12_data_parallel_sgd", "check_exercise_2", (0.4,), (0.05,)),                  # the global batch is 8x larger
    ("12_data_parallel_sgd", "check_exercise_3", (370_236,), (246_824,)),           # 2(N-1)/N of 4·61,706 bytes
]


@pytest.mark.parametrize("stem, name, right, wrong", CASES, ids=[f"{c[0][:3]}-{c[1][-1]}" for c in CASES])
def test_a_checker_says_right_to_the_right_answer_and_not_yet_to_a_wrong_one(stem, name, right, wrong, capsys):
    check = checkers(stem)[name]
    assert check(*right) is True
    assert capsys.readouterr().out.startswith("right")
    assert check(*wrong) is False
    assert capsys.readouterr().out.startswith("not yet")


def test_the_gflop_checker_takes_lenet5s_forward_flops_from_graphnet():
    """The right answer of lesson 11's exercise 2 is 3 · model.flops · 4000, whatever the FLOP count's convention."""
    from graphnet import nn
    model = nn.Sequential([
        nn.Conv2D(6, 5, padding=2, activation="relu"), nn.MaxPool2D(2), nn.Conv2D(16, 5, activation="relu"),
        nn.MaxPool2D(2), nn.Flatten(), nn.Dense(120, activation="relu"), nn.Dense(84, activation="relu"),
        nn.Dense(10)])
    model.build((1, 28, 28))
    check = checkers("11_cpu_vs_gpu")["check_exercise_2"]
    exact = 3 * model.flops * 4000 / 1e9
    assert check(exact * 1.08) and not check(exact * 1.2)
